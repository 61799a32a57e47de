package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Waypoints (ambient, docs/translation.md#waypoints): which traffic to a
// NetworkPolicy's pods passes a waypoint depends on the Services of its
// namespace (their use-waypoint labels, selectors and ports), on the
// Gateway API's Gateways (the waypoints: class, labels, status.addresses,
// which namespaces they admit) and on the other NetworkPolicies of the
// namespace (which endpoints of a Service they isolate). The operator
// reads:
//
//   - Services from the manager's cache, cut to what the engine reads
//     (transformService); a change maps to the NetworkPolicies of its
//     namespace (ServiceChangeMatters).
//   - Gateways, where the Gateway API's CRD is served (v1, else v1beta1),
//     through a kindWatcher like the admin network policies: discovered,
//     watched in a cache of their own, converted (translate.GatewayOf); a
//     change of what the engine reads of one (its status.addresses
//     included) re-translates every NetworkPolicy of the opted-in
//     namespaces (GatewayChangeMatters). Without the CRD there is none, and
//     the operator translates as before.
//   - The other NetworkPolicies of the namespace, while any Gateway exists:
//     one created, deleted, or whose podSelector, policyTypes or ingress
//     rules change, maps to the others of its namespace
//     (PolicyChangeMatters).

// gatewayWatcher reads the Gateways where the Gateway API is served.
type gatewayWatcher = kindWatcher[translate.Gateway]

// gatewayKinds are the versions of Gateway the operator reads, newest
// first: a Gateway served in both is read once, in v1.
var gatewayKinds = []watchedKind[translate.Gateway]{
	{
		gvk: schema.GroupVersion(gatewayv1.GroupVersion).WithKind("Gateway"), resource: "gateways",
		newObj: func() client.Object { return &gatewayv1.Gateway{} },
		convert: func(o client.Object) (translate.Gateway, error) {
			gw, ok := o.(*gatewayv1.Gateway)
			if !ok {
				return translate.Gateway{}, fmt.Errorf("unexpected %T", o)
			}
			return translate.GatewayOf(gw), nil
		},
	},
	{
		gvk: schema.GroupVersion(gatewayv1beta1.GroupVersion).WithKind("Gateway"), resource: "gateways",
		newObj: func() client.Object { return &gatewayv1beta1.Gateway{} },
		convert: func(o client.Object) (translate.Gateway, error) {
			gw, ok := o.(*gatewayv1beta1.Gateway)
			if !ok {
				return translate.Gateway{}, fmt.Errorf("unexpected %T", o)
			}
			return translate.GatewayOf((*gatewayv1.Gateway)(gw)), nil
		},
	},
}

// newGatewayWatcher follows the Gateway API's discovery every period
// (the admin network policies' period: --admin-policy-discovery-period).
func newGatewayWatcher(mgr ctrl.Manager, period time.Duration) (*gatewayWatcher, error) {
	if period <= 0 {
		period = DefaultAdminPolicyDiscoveryPeriod
	}
	w, err := newKindWatcher(mgr, "Gateways", "gateways", gatewayKinds, period)
	if err != nil {
		return nil, err
	}
	w.compare = func(a, b *translate.Gateway) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	return w, nil
}

// transformService is the Service cache's transform: it keeps what the
// engine reads (namespace, name, labels, selector, and each port's name,
// number, target port and protocol) and the metadata the cache needs.
// Anything else passes through.
func transformService(in any) (any, error) {
	svc, ok := in.(*corev1.Service)
	if !ok {
		return in, nil
	}
	out := &corev1.Service{
		TypeMeta: svc.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace, UID: svc.UID, ResourceVersion: svc.ResourceVersion,
			Generation: svc.Generation, DeletionTimestamp: svc.DeletionTimestamp, Labels: svc.Labels,
		},
		Spec: corev1.ServiceSpec{Selector: svc.Spec.Selector},
	}
	if len(svc.Spec.Ports) > 0 {
		out.Spec.Ports = make([]corev1.ServicePort, len(svc.Spec.Ports))
		for i, p := range svc.Spec.Ports {
			out.Spec.Ports[i] = corev1.ServicePort{Name: p.Name, Port: p.Port, TargetPort: p.TargetPort, Protocol: p.Protocol}
		}
	}
	return out, nil
}

// serviceChanged passes Service creations (but those of the initial list)
// and deletions, and the updates that change what the engine reads.
func serviceChanged() predicate.Predicate {
	return predicate.Funcs{CreateFunc: notInitial, UpdateFunc: func(e event.UpdateEvent) bool {
		a, ok1 := e.ObjectOld.(*corev1.Service)
		b, ok2 := e.ObjectNew.(*corev1.Service)
		if !ok1 || !ok2 {
			return true
		}
		sa, sb := translate.ServiceOf(a), translate.ServiceOf(b)
		return !equality.Semantic.DeepEqual(sa, sb)
	}}
}

// isolationChanged passes NetworkPolicy creations (but those of the
// initial list) and deletions, and the updates of what says which pods it
// isolates (its podSelector and policyTypes) and on which ports its rules
// let a waypoint in (its ingress rules).
func isolationChanged() predicate.Predicate {
	return predicate.Funcs{CreateFunc: notInitial, UpdateFunc: func(e event.UpdateEvent) bool {
		a, ok1 := e.ObjectOld.(*networkingv1.NetworkPolicy)
		b, ok2 := e.ObjectNew.(*networkingv1.NetworkPolicy)
		if !ok1 || !ok2 {
			return true
		}
		return !equality.Semantic.DeepEqual(a.Spec.PodSelector, b.Spec.PodSelector) || !slices.Equal(a.Spec.PolicyTypes, b.Spec.PolicyTypes) ||
			!equality.Semantic.DeepEqual(a.Spec.Ingress, b.Spec.Ingress)
	}}
}

// ServiceRequests maps a Service (any state of it: the handler calls it
// with the old and the new one) to the NetworkPolicies of its namespace
// whose translation it can change, in an opted-in namespace.
func (m mapper) ServiceRequests(ctx context.Context, o client.Object) []reconcile.Request {
	svc, ok := o.(*corev1.Service)
	if !ok {
		return nil
	}
	ts := translate.ServiceOf(svc)
	return m.namespaceRequests(ctx, svc.Namespace, func(np *networkingv1.NetworkPolicy) bool {
		return m.dependencies(np).ServiceChangeMatters(nil, &ts)
	})
}

// SiblingRequests maps a NetworkPolicy created, deleted or whose
// isolation or ingress rules changed to the other NetworkPolicies of its
// namespace whose translation it can change: with waypoints, which
// endpoints of a Service it isolates, and on which of their ports it lets
// the waypoint in.
func (m mapper) SiblingRequests(ctx context.Context, o client.Object) []reconcile.Request {
	changed, ok := o.(*networkingv1.NetworkPolicy)
	if !ok || len(m.Gateways.Items()) == 0 {
		return nil
	}
	return m.namespaceRequests(ctx, changed.Namespace, func(np *networkingv1.NetworkPolicy) bool {
		return np.Name != changed.Name && m.dependencies(np).PolicyChangeMatters(changed)
	})
}

// namespaceRequests are the NetworkPolicies of namespace ns, opted in,
// that keep says a change matters to.
func (m mapper) namespaceRequests(ctx context.Context, ns string, keep func(*networkingv1.NetworkPolicy) bool) []reconcile.Request {
	if !m.optedIn(ctx)(ns) {
		return nil
	}
	var list networkingv1.NetworkPolicyList
	if err := m.Client.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing NetworkPolicies", "namespace", ns)
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if keep(&list.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// gatewayNamespace says whether a Gateway lives in namespace ns: its
// pods (the waypoint's) matter to every NetworkPolicy then.
func (m mapper) gatewayNamespace(ns string) bool {
	return slices.ContainsFunc(m.Gateways.Items(), func(g translate.Gateway) bool { return g.Namespace == ns })
}

// gatherWaypoints puts into the snapshot what the engine reads of
// waypoints for np: the Services of its namespace, every Gateway, and,
// while Gateways exist (the engine reads them only then), the other
// NetworkPolicies of its namespace.
func gatherWaypoints(ctx context.Context, r client.Reader, np *networkingv1.NetworkPolicy, gateways []translate.Gateway, in *input) error {
	var svcs corev1.ServiceList
	if err := r.List(ctx, &svcs, client.InNamespace(np.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing the Services of namespace %s: %w", np.Namespace, err)
	}
	in.Snapshot.Services = make([]translate.Service, 0, len(svcs.Items))
	for i := range svcs.Items {
		in.Snapshot.Services = append(in.Snapshot.Services, translate.ServiceOf(&svcs.Items[i]))
	}
	slices.SortFunc(in.Snapshot.Services, func(a, b translate.Service) int { return cmp.Compare(a.Name, b.Name) })
	in.Snapshot.Gateways = gateways
	if len(gateways) == 0 {
		return nil
	}
	var nps networkingv1.NetworkPolicyList
	if err := r.List(ctx, &nps, client.InNamespace(np.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing the NetworkPolicies of namespace %s: %w", np.Namespace, err)
	}
	for i := range nps.Items {
		if nps.Items[i].Name != np.Name {
			in.Snapshot.OtherPolicies = append(in.Snapshot.OtherPolicies, nps.Items[i])
		}
	}
	slices.SortFunc(in.Snapshot.OtherPolicies, func(a, b networkingv1.NetworkPolicy) int { return cmp.Compare(a.Name, b.Name) })
	return nil
}
