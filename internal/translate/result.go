package translate

import (
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Result is everything one Translate call decided.
type Result struct {
	// Translations holds one entry per NetworkPolicy of the snapshot,
	// sorted by namespace and name.
	Translations []Translation
}

// Translation is the outcome for one NetworkPolicy.
type Translation struct {
	NetworkPolicy types.NamespacedName
	// Generation of the NetworkPolicy that was translated.
	Generation int64
	// Action says what the caller does with the translation, in one value.
	Action   Action
	Mode     Mode
	Fidelity Fidelity
	// Identity is the identity mode in force (review or follow).
	Identity IdentityMode
	// Identities are every identity the selectors resolved, approved or
	// not, sorted.
	Identities []Identity
	// Baseline is set in review mode when the snapshot holds no approval
	// record for the NetworkPolicy: this is its first translation, which
	// approves every identity it resolves. The caller records Identities
	// as approved before it applies Policies, so that the next
	// translation reviews what selection adds.
	Baseline bool
	// Pending are the resolved identities that are not approved, sorted:
	// they are left out of Policies, each reported IdentityPending.
	Pending []PendingIdentity
	// Policies are the AuthorizationPolicies to exist for this
	// NetworkPolicy, sorted by name. Nothing else owned by it may remain.
	Policies []*securityv1.AuthorizationPolicy
	// Principals is the number of distinct principals in Policies.
	Principals int
	// Rules is the number of rules in Policies.
	Rules int
	// Findings are sorted by type, then by message.
	Findings []Finding
}

// Action is what a caller does with a translation.
type Action string

const (
	// ActionRemove: the policy is not translated at all (its namespace is
	// not opted in, or is Istio's root namespace): whatever was generated
	// for it goes, status included. Policies is empty.
	ActionRemove Action = "remove"
	// ActionKeep: the NetworkPolicy or its namespace's annotations are
	// invalid. Policies is empty, and the caller neither creates nor
	// deletes AuthorizationPolicies for it: what was generated from the
	// last valid input stays in force, so that a typo never widens what
	// Istio enforces (deleting the only ALLOW policy of a workload would
	// allow everything). The findings say why.
	ActionKeep Action = "keep"
	// ActionApply: Policies are exactly the AuthorizationPolicies to exist
	// for the NetworkPolicy.
	ActionApply Action = "apply"
)

// Severity of a finding.
type Severity string

const (
	// SeverityInfo: worth knowing, the translation is still exact.
	SeverityInfo Severity = "Info"
	// SeverityWarning: the translation is wider or narrower than the
	// NetworkPolicy, or part of it is not translated.
	SeverityWarning Severity = "Warning"
	// SeverityError: nothing could be generated for the policy.
	SeverityError Severity = "Error"
)

// FindingType is the stable name of a kind of finding.
type FindingType string

// The finding types of the translation contract.
const (
	EgressNotTranslated  FindingType = "EgressNotTranslated"
	SelectorOverreach    FindingType = "SelectorOverreach"
	PortRangeTooLarge    FindingType = "PortRangeTooLarge"
	NamedPortVaries      FindingType = "NamedPortVaries"
	NonTCPNotEnforced    FindingType = "NonTCPNotEnforced"
	SharedIdentity       FindingType = "SharedIdentity"
	SourceNotInMesh      FindingType = "SourceNotInMesh"
	TargetNotInMesh      FindingType = "TargetNotInMesh"
	RootNamespaceSkipped FindingType = "RootNamespaceSkipped"
	Conflict             FindingType = "Conflict"
	AmbientPortBlocked   FindingType = "AmbientPortBlocked"
	DryRunNotEvaluated   FindingType = "DryRunNotEvaluated"
	NoPodsSelected       FindingType = "NoPodsSelected"
	// NamespaceUnknown: a namespace the policy depends on is known only by
	// name, so selectors over its other labels may be wrong (offline input).
	NamespaceUnknown FindingType = "NamespaceUnknown"
	// InvalidAnnotation: the namespace's mode or fidelity annotation has a
	// value netpol2authz does not know; nothing is generated there.
	InvalidAnnotation FindingType = "InvalidAnnotation"
	// InvalidPolicy: the NetworkPolicy itself is invalid (a selector, CIDR
	// or port the API server would reject); nothing is generated for it.
	InvalidPolicy FindingType = "InvalidPolicy"
	// IdentityPending: in review mode, an identity that selection added
	// after the first translation waits for approval and is left out.
	IdentityPending FindingType = "IdentityPending"
	// AdminPolicyApplies: an admin network policy selects the policy's
	// pods; what it changes was translated exactly.
	AdminPolicyApplies FindingType = "AdminPolicyApplies"
	// AdminPolicyAllows: an admin Allow (Accept) rule admits traffic the
	// generated policies cannot allow exactly.
	AdminPolicyAllows FindingType = "AdminPolicyAllows"
	// AdminPolicyDenies: an admin Deny rule blocks traffic the generated
	// policies do not deny exactly (permissive: not at all).
	AdminPolicyDenies FindingType = "AdminPolicyDenies"
	// AdminPolicyConflict: admin policies of one tier and priority select
	// the same pods; the API leaves their order undefined.
	AdminPolicyConflict FindingType = "AdminPolicyConflict"
	// AdminPolicyInvalid: an admin policy could not be read; it was left
	// out.
	AdminPolicyInvalid FindingType = "AdminPolicyInvalid"
	// WaypointApplies: traffic to the policy's pods passes a waypoint (or
	// a label names one without effect); what it changes was translated
	// exactly.
	WaypointApplies FindingType = "WaypointApplies"
	// WaypointInPath: traffic to the policy's pods passes a waypoint in a
	// way the generated policies cannot follow exactly.
	WaypointInPath FindingType = "WaypointInPath"
)

// Finding is one place where the translation is not exact, or something a
// person should know.
type Finding struct {
	Type     FindingType
	Severity Severity
	Message  string
	// Objects involved, sorted.
	Objects []ObjectRef
}

// ObjectRef names an object a finding is about.
type ObjectRef struct {
	Kind      string // Pod, ServiceAccount, Namespace, NetworkPolicy, AuthorizationPolicy, Deployment…
	Namespace string
	Name      string
}
