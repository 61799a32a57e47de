package verify

import (
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Direction says which way Istio and the NetworkPolicies disagree.
type Direction string

const (
	// IstioAllowsMore: Istio allows connections the NetworkPolicies deny.
	IstioAllowsMore Direction = "IstioAllowsMore"
	// IstioDeniesMore: Istio denies connections the NetworkPolicies allow.
	IstioDeniesMore Direction = "IstioDeniesMore"
)

// IPBlockPods says whether NetworkPolicy ipBlock peers match pod addresses,
// which Kubernetes leaves to the network plugin.
type IPBlockPods string

const (
	// IPBlockPodsUnknown, the default: both readings are checked; a
	// connection that only one of them allows is a difference explained
	// by IPBlockPodAddress.
	IPBlockPodsUnknown IPBlockPods = "unknown"
	// IPBlockPodsMatch: the plugin applies ipBlock to pod addresses
	// (Calico, Cilium and most others).
	IPBlockPodsMatch IPBlockPods = "match"
	// IPBlockPodsNoMatch: ipBlock only ever matches addresses outside the
	// cluster, as the Kubernetes documentation intends it.
	IPBlockPodsNoMatch IPBlockPods = "no-match"
)

// Valid says whether v is a known value.
func (v IPBlockPods) Valid() bool {
	return v == IPBlockPodsUnknown || v == IPBlockPodsMatch || v == IPBlockPodsNoMatch
}

// IPBlockPodAddress is verify's own explanation: the NetworkPolicy verdict
// depends on whether ipBlock matches pod addresses.
const IPBlockPodAddress = "IPBlockPodAddress"

// Explained-by values of Explanation.By.
const (
	ByTranslation = "translation"
	ByVerify      = "verify"
)

// Input is what one verification decides from.
type Input struct {
	// Snapshot is the cluster: namespaces, pods, NetworkPolicies, mesh.
	Snapshot translate.Snapshot
	// Translation is translate.Translate of the snapshot: its findings
	// explain differences, its policies are what netpol2authz generates.
	Translation translate.Result
	// CheckExisting checks Existing instead of the generated policies.
	CheckExisting bool
	// Existing are the AuthorizationPolicies in force (generated or not).
	Existing []*securityv1.AuthorizationPolicy
	// Namespaces, when not empty, limits the destinations checked.
	Namespaces []string
	// IPBlockPods: empty means IPBlockPodsUnknown.
	IPBlockPods IPBlockPods
}

// Result is what a verification found.
type Result struct {
	Stats Stats
	// Differences, unexplained first, then by direction, destination,
	// ports and sources.
	Differences []Difference
	// Notes say where verify read a policy differently from its text: as
	// Istio does for TCP, or because verify does not model a field.
	Notes []Note
}

// Stats count what was checked and found.
type Stats struct {
	Pods               int
	SourceClasses      int
	DestinationClasses int
	// ExternalSources are the parts of the addresses outside the cluster
	// evaluated as sources, one address each.
	ExternalSources       int
	DestinationsChecked   int
	NetworkPolicies       int
	AuthorizationPolicies int
	Unexplained           int
	Explained             int
	// Connections are pairs of a source and a destination pod, summed
	// over the differences (each with its ports); a range of addresses
	// outside the cluster counts as one source.
	UnexplainedConnections int64
	ExplainedConnections   int64
}

// Difference is a group of connections Istio and the NetworkPolicies
// decide differently, for the same reason: every source reaches every
// destination on every port listed.
type Difference struct {
	Direction Direction
	Explained bool
	// Explanation is nil when Explained is false.
	Explanation *Explanation
	// DryRun: the Istio verdict depends on dry-run policies, which Istio
	// logs but does not enforce yet; it takes effect when they are
	// enforced.
	DryRun bool
	// Deviates (with CheckExisting): the policies netpol2authz generates
	// would decide these connections differently from those in force.
	Deviates     bool
	Ports        []PortRange
	Destinations PodSet
	Sources      PodSet
	// Connections is Sources.Count × Destinations.Count.
	//
	// Sources are pods, or addresses outside the cluster (Sources.Addresses),
	// never both.
	Connections int64
	// NetworkPolicies that select the destinations (ingress) or sources
	// (egress); AuthorizationPolicies that apply to the destinations.
	NetworkPolicies       []PolicyRef
	AuthorizationPolicies []PolicyRef
	// Waypoints are the waypoints some of these connections pass
	// (docs/verify.md#waypoints), sorted.
	Waypoints []WaypointPath
}

// WaypointPath is a waypoint in the path of a difference's connections:
// the policies it applies with the client's identity, and the identities
// the destination's ztunnel sees instead of the client's.
type WaypointPath struct {
	// Waypoint is "namespace/name" of its Gateway.
	Waypoint string `json:"waypoint"`
	// Via lists the traffic that passes it: "Service NS/NAME port N", or
	// "pod IP".
	Via []string `json:"via"`
	// Policies are "namespace/name" of the AuthorizationPolicies bound to
	// those Services or its Gateway, sorted.
	Policies []string `json:"policies"`
	// Principals are the waypoint's identities at ztunnel, sorted.
	Principals []string `json:"principals"`
}

// PodSet is a set of pods, written compactly: the namespaces whose every
// counted pod is in it, then the other pods one by one, at most MaxPods.
// The sources of a difference may instead be addresses outside the
// cluster: then it has only Addresses.
type PodSet struct {
	// Count is the number of pods, or of address ranges.
	Count int `json:"count"`
	// AllOf lists, sorted, the namespaces all of whose pods are in the set.
	AllOf []string `json:"allOf"`
	// Pods are the other pods, sorted by namespace and name: the first
	// MaxPods of them.
	Pods []Pod `json:"pods"`
	// Omitted is how many pods Pods leaves out.
	Omitted int `json:"omitted"`
	// Addresses are the ranges of addresses outside the cluster (no pod's
	// address) in the set, each a part no CIDR of the policies divides.
	Addresses []AddressRange `json:"addresses,omitempty"`
}

// MaxPods bounds the pods a PodSet lists one by one; narrow the check with
// Input.Namespaces to see the others.
const MaxPods = 100

// Pod names a pod in a difference.
type Pod struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	ServiceAccount string `json:"serviceAccount"`
	InMesh         bool   `json:"inMesh"`
	// Workload is set for a workload's pod template read offline
	// ("Deployment/shop/web").
	Workload string `json:"workload,omitempty"`
}

// PolicyRef names a policy involved in a difference.
type PolicyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Role: for a NetworkPolicy "ingress" (it selects the destination) or
	// "egress" (it selects a source); for an AuthorizationPolicy its
	// action.
	Role string `json:"role"`
	// Matched: one of its rules matches some of these connections.
	Matched bool `json:"matched"`
	DryRun  bool `json:"dryRun,omitempty"`
}

// Explanation says why a difference is expected.
type Explanation struct {
	// Type is the finding type, or IPBlockPodAddress.
	Type string
	// By is ByTranslation (a finding of NetworkPolicy's translation) or
	// ByVerify.
	By string
	// NetworkPolicy is "namespace/name" for a finding.
	NetworkPolicy string
	Severity      string
	Message       string
	Objects       []translate.ObjectRef
}

// Note is a remark about one policy.
type Note struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Message   string `json:"message"`
}
