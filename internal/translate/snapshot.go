// Package translate is the pure translation engine of netpol2authz: a Snapshot
// of namespaces, pods, NetworkPolicies and mesh settings in, Istio
// AuthorizationPolicies and findings out. It reads no cluster, no clock and no
// globals; the operator and the offline CLI both gather a Snapshot and call
// Translate. The behaviour is specified in docs/translation.md.
package translate

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// Snapshot is the state of the world one translation decides from. The engine
// never mutates it.
type Snapshot struct {
	// Namespaces known to the caller. A namespace referenced by a pod or a
	// policy but missing here is treated as having only the
	// kubernetes.io/metadata.name label.
	Namespaces []Namespace
	// Pods, including those that do not count (Succeeded, Failed,
	// hostNetwork): the engine filters them.
	Pods []Pod
	// NetworkPolicies to translate. Each one yields one Translation.
	NetworkPolicies []networkingv1.NetworkPolicy
	// Mesh holds the Istio settings the translation depends on.
	Mesh MeshSettings
	// Approvals are the identity approval records of the NetworkPolicies
	// (at most one each; two for one policy add up). In review mode a
	// NetworkPolicy without one is at its first translation.
	Approvals []Approval
	// AdminPolicies are the cluster's AdminNetworkPolicies,
	// BaselineAdminNetworkPolicies and ClusterNetworkPolicies, in any
	// order. The translation is judged against the whole stack they make
	// with the NetworkPolicies (docs/translation.md#admin-network-policies).
	AdminPolicies []adminpolicy.Policy
	// Services decide, with the istio.io/use-waypoint labels, which
	// traffic to the selected pods passes a waypoint, and on which
	// service ports (docs/translation.md#waypoints). The engine reads
	// those of the NetworkPolicies' namespaces.
	Services []Service
	// Gateways are the Gateway API Gateways the use-waypoint labels may
	// name (any class; a waypoint is one of class istio-waypoint).
	Gateways []Gateway
	// OtherPolicies are NetworkPolicies that are not translated but say
	// which pods are isolated for ingress: when a Service bound to a
	// waypoint also fronts pods a NetworkPolicy does not select, what its
	// waypoint policy may allow depends on whether another NetworkPolicy
	// isolates them, and on which of their ports a waypoint is let in. The
	// engine reads their podSelector, policyTypes and ingress rules;
	// NetworkPolicies counts too. Give every NetworkPolicy of the
	// translated namespaces between the two.
	OtherPolicies []networkingv1.NetworkPolicy
}

// Service is the part of a Service the engine reads.
type Service struct {
	Namespace string
	Name      string
	// Labels may carry istio.io/use-waypoint and
	// istio.io/use-waypoint-namespace.
	Labels map[string]string
	// Selector is spec.selector; empty means the Service selects no pod
	// (its endpoints are managed by hand).
	Selector map[string]string
	Ports    []ServicePort
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name string
	Port int32
	// TargetPort is the container port, a number or a port name; zero
	// means Port.
	TargetPort intstr.IntOrString
	Protocol   corev1.Protocol // empty means TCP
}

// TCP says whether the port carries TCP, the only traffic a waypoint
// checks.
func (sp ServicePort) TCP() bool { return sp.Protocol == "" || sp.Protocol == corev1.ProtocolTCP }

// Gateway is the part of a Gateway API Gateway
// (gateway.networking.k8s.io) the engine reads.
type Gateway struct {
	Namespace string
	Name      string
	// ClassName is spec.gatewayClassName; Istio's waypoints have class
	// istio-waypoint.
	ClassName string
	// Labels may carry istio.io/waypoint-for (service, the default;
	// workload; all; none).
	Labels map[string]string
	// Annotations may carry gateway.istio.io/service-account, the
	// waypoint's ServiceAccount (default: the Gateway's name).
	Annotations map[string]string
	// Addressed says status.addresses is not empty: istiod makes a
	// Gateway a waypoint only then (once its deployment has a ready
	// pod). The offline loader sets it for a manifest without status.
	Addressed bool
	// AttachFrom is allowedRoutes.namespaces.from of its HBONE listener:
	// Same (the default, also when empty), All or Selector; it says
	// which namespaces' Services and pods may use it.
	AttachFrom string
	// AttachSelector is allowedRoutes.namespaces.selector, for Selector.
	AttachSelector *metav1.LabelSelector
}

// Namespace is the part of a Namespace the engine reads.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	// Partial marks a namespace known only by name (the offline CLI saw a
	// reference to it but not the object). Selectors over its labels are
	// evaluated against kubernetes.io/metadata.name alone, and the engine
	// reports NamespaceUnknown when a result depends on it.
	Partial bool
}

// Pod is the part of a Pod the engine reads. The operator's cache transform
// and the CLI's workload expansion both produce exactly this.
type Pod struct {
	Namespace string
	Name      string
	Labels    map[string]string
	// ServiceAccount is spec.serviceAccountName; empty means "default".
	ServiceAccount string
	// Phase is status.phase; empty (a pod template read offline) counts as
	// Pending.
	Phase       corev1.PodPhase
	IP          netip.Addr // invalid when unknown (pending pod, template)
	HostNetwork bool
	// Sidecar is true when the pod has a container or init container named
	// istio-proxy or the sidecar.istio.io/status annotation.
	Sidecar bool
	// Ports are the pod's container ports (all containers).
	Ports []ContainerPort
	// Template names the workload controller a pod template came from
	// ("Deployment/shop/web"); empty for real pods.
	Template string
}

// ContainerPort is one declared container port.
type ContainerPort struct {
	Name     string
	Port     int32
	Protocol corev1.Protocol // empty means TCP
}

// MeshSettings are the Istio settings that change a translation.
type MeshSettings struct {
	// TrustDomain of the mesh; empty means cluster.local.
	TrustDomain string
	// RootNamespace of the mesh; empty means istio-system. Policies there are
	// never generated.
	RootNamespace string
}

// Mode says whether generated policies are enforced or only evaluated.
type Mode string

const (
	ModeEnforce Mode = "enforce"
	ModeDryRun  Mode = "dry-run"
)

// Fidelity says which way an inexact translation errs.
type Fidelity string

const (
	// FidelityPermissive never denies TCP traffic the NetworkPolicies allow.
	FidelityPermissive Fidelity = "permissive"
	// FidelityStrict never allows traffic the NetworkPolicies deny.
	FidelityStrict Fidelity = "strict"
)

// Annotations on a namespace that opt it in and choose the fidelity.
const (
	AnnotationMode     = "netpol2authz.io/mode"
	AnnotationFidelity = "netpol2authz.io/fidelity"
)

// Labels and annotations on every generated AuthorizationPolicy.
const (
	LabelManagedBy         = "app.kubernetes.io/managed-by"
	ManagedByValue         = "netpol2authz"
	LabelNetworkPolicy     = "netpol2authz.io/networkpolicy"
	AnnotationIstioDryRun  = "istio.io/dry-run"
	AnnotationSourcePolicy = "netpol2authz.io/networkpolicy"
)

// Options are the caller's choices for one run.
type Options struct {
	// RequireOptIn translates only NetworkPolicies in namespaces carrying the
	// netpol2authz.io/mode annotation (the operator). When false (the offline
	// CLI) every policy is translated and DefaultMode applies where the
	// namespace says nothing.
	RequireOptIn bool
	// DefaultMode applies where the namespace has no mode annotation.
	// Empty means enforce.
	DefaultMode Mode
	// DefaultFidelity applies where the namespace has no fidelity
	// annotation. Empty means permissive.
	DefaultFidelity Fidelity
	// DefaultIdentity applies where the namespace has no identity
	// annotation. Empty means review.
	DefaultIdentity IdentityMode
	// MaxPortRange caps the ports the port+endPort ranges of one rule may
	// expand to together. Zero means DefaultMaxPortRange.
	MaxPortRange int
}

// DefaultMaxPortRange is the default cap on ports expanded from the ranges
// of one rule.
const DefaultMaxPortRange = 1024
