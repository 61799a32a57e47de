package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a NetworkPolicyTranslation.
const (
	// ConditionReady is True when the generated AuthorizationPolicies match
	// the latest translation of the NetworkPolicy.
	ConditionReady = "Ready"
	// ConditionExact is True when the translation has no finding of
	// Warning or Error severity: Istio allows exactly what the
	// NetworkPolicy allows, for TCP.
	ConditionExact = "Exact"
	// ConditionIstioAccepted is True when Istio accepted every generated
	// AuthorizationPolicy: the API server (and istiod's validating webhook)
	// admitted it, and istiod's own status conditions on it (such as
	// ZtunnelAccepted, in ambient meshes) are True. Unknown when no istiod
	// writes status on them (sidecar-only meshes, older Istio).
	ConditionIstioAccepted = "IstioAccepted"
)

// Bounds of the lists in the status. The counts are always exact; the lists
// are cut at these lengths.
const (
	MaxAuthorizationPolicies = 256
	MaxFindings              = 100
	MaxFindingObjects        = 32
	MaxPendingIdentities     = 64
	MaxIdentitySources       = 16
)

// IdentityMode says whether a label change alone may add an identity to the
// generated policies.
// +kubebuilder:validation:Enum=review;follow
type IdentityMode string

// Mode says whether the generated AuthorizationPolicies are enforced or only
// evaluated by Istio.
// +kubebuilder:validation:Enum=enforce;dry-run
type Mode string

// Fidelity says which way an inexact translation errs.
// +kubebuilder:validation:Enum=permissive;strict
type Fidelity string

// Severity of a finding.
// +kubebuilder:validation:Enum=Info;Warning;Error
type Severity string

// NetworkPolicyTranslationStatus reports how one NetworkPolicy was translated
// into Istio AuthorizationPolicies, and where the translation is not exact.
type NetworkPolicyTranslationStatus struct {
	// conditions are Ready (the generated policies are in place and Istio
	// did not refuse them), Exact (no finding of Warning or Error severity)
	// and IstioAccepted (what Istio said of the generated policies).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the metadata.generation of the NetworkPolicy
	// that this status describes.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// mode in force for the NetworkPolicy's namespace: enforce, or dry-run
	// (policies carry istio.io/dry-run and are only logged by Istio).
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// fidelity in force: permissive (never deny what the NetworkPolicy
	// allows) or strict (never allow what it denies).
	// +optional
	Fidelity Fidelity `json:"fidelity,omitempty"`

	// identity in force: review (an identity that selection adds after the
	// first translation waits for approval) or follow (every resolved
	// identity is written at once).
	// +optional
	Identity IdentityMode `json:"identity,omitempty"`

	// authorizationPolicies are the names of the AuthorizationPolicies
	// generated for the NetworkPolicy, in its namespace, sorted.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	AuthorizationPolicies []string `json:"authorizationPolicies,omitempty"`

	// principals is the number of distinct ServiceAccount principals in the
	// generated policies.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Principals int32 `json:"principals"`

	// rules is the number of rules in the generated policies.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Rules int32 `json:"rules"`

	// findingsCount is the number of findings, including any cut from the
	// findings list.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FindingsCount int32 `json:"findingsCount"`

	// findings are the places where the translation is not exact, and what
	// a person should know, sorted by type. At most 100 are listed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Findings []Finding `json:"findings,omitempty"`

	// pending is the number of identities the NetworkPolicy's selectors
	// resolve to that are not approved, and so left out of the generated
	// policies.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Pending int32 `json:"pending"`

	// pendingIdentities are the identities waiting for approval, sorted,
	// with what brought each. At most 64 are listed.
	// +optional
	// +listType=map
	// +listMapKey=identity
	// +kubebuilder:validation:MaxItems=64
	PendingIdentities []PendingIdentity `json:"pendingIdentities,omitempty"`
}

// Finding is one place where the translation is not exact.
type Finding struct {
	// type is the stable name of the finding, such as SharedIdentity or
	// SourceNotInMesh. docs/findings.md says what to do about each.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z]*$`
	Type string `json:"type"`

	// severity is Info (the translation is still exact), Warning (it is
	// wider or narrower than the NetworkPolicy) or Error (nothing could be
	// generated).
	// +required
	Severity Severity `json:"severity"`

	// message says what is inexact and what to do about it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message"`

	// objects involved, sorted. At most 32 are listed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Objects []ObjectReference `json:"objects,omitempty"`
}

// PendingIdentity is an identity that selection added after the first
// translation and that nobody approved yet.
type PendingIdentity struct {
	// identity is serviceaccount/NAMESPACE/NAME or namespace/NAME, as
	// listed in an IdentityApproval to approve it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Identity string `json:"identity"`

	// peers of the NetworkPolicy that select it, such as ingress[0].from[1].
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	Peers []string `json:"peers,omitempty"`

	// sources are the pods and namespaces whose labels brought it. At most
	// 16 are listed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Sources []IdentitySource `json:"sources,omitempty"`
}

// IdentitySource is an object whose labels brought a pending identity: a pod
// or namespace a peer selects by its labels, or the pod, Service or
// namespace whose istio.io/use-waypoint label routes traffic through a
// waypoint (whose ServiceAccount is then the identity).
type IdentitySource struct {
	// kind is Pod, Namespace or Service.
	// +required
	// +kubebuilder:validation:Enum=Pod;Namespace;Service
	Kind string `json:"kind"`

	// namespace of the pod or Service; empty for a namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// name of the pod or namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// labels of the object that the peer's selector reads, with their
	// values: what made it match.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Labels map[string]string `json:"labels,omitempty"`

	// fieldManagers last wrote those labels, as recorded in the object's
	// managedFields when the identity appeared (kubectl-label, kubelet, a
	// controller's name…); a manager that wrote them through the status
	// subresource is suffixed with " (status)".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=128
	FieldManagers []string `json:"fieldManagers,omitempty"`
}

// ObjectReference names an object a finding is about.
type ObjectReference struct {
	// kind of the object, such as Pod, ServiceAccount or Namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`

	// namespace of the object; empty for cluster-scoped objects.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// NetworkPolicyTranslation reports how the NetworkPolicy of the same name and
// namespace was translated into Istio AuthorizationPolicies. The operator
// creates and owns it; it has no spec.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=npt,categories=netpol2authz
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.status.mode`
// +kubebuilder:printcolumn:name="Fidelity",type=string,JSONPath=`.status.fidelity`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Exact",type=string,JSONPath=`.status.conditions[?(@.type=="Exact")].status`
// +kubebuilder:printcolumn:name="Findings",type=integer,JSONPath=`.status.findingsCount`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`
// +kubebuilder:printcolumn:name="Identity",type=string,JSONPath=`.status.identity`,priority=1
// +kubebuilder:printcolumn:name="Istio",type=string,JSONPath=`.status.conditions[?(@.type=="IstioAccepted")].status`,priority=1
// +kubebuilder:printcolumn:name="Principals",type=integer,JSONPath=`.status.principals`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Exact")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkPolicyTranslation struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata; the name and namespace are
	// those of the NetworkPolicy.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is written by the operator.
	// +optional
	Status NetworkPolicyTranslationStatus `json:"status,omitempty"`
}

// NetworkPolicyTranslationList contains a list of NetworkPolicyTranslation.
// +kubebuilder:object:root=true
type NetworkPolicyTranslationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkPolicyTranslation `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NetworkPolicyTranslation{}, &NetworkPolicyTranslationList{})
}
