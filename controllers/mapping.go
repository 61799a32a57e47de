package controllers

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// mapper turns a change of a pod, a namespace, an AuthorizationPolicy or the
// mesh config into the NetworkPolicies whose translation it can change. It
// reads only the cache, through the field indexes of SetupIndexes.
type mapper struct {
	Client client.Reader
	// Admin holds the admin network policies (nil: none), which make more
	// pods and namespaces matter (admin.go).
	Admin *adminWatcher
	// Pods is the pod store, for the other pods of a ServiceAccount.
	Pods *podStore
	// Gateways holds the Gateways (nil: none), which make more pods and
	// namespaces matter (waypoints.go).
	Gateways *gatewayWatcher
	// Deps keeps the dependencies of each NetworkPolicy (nil: computed
	// at each event).
	Deps *depCache
}

// depCache keeps the dependencies of each NetworkPolicy for its UID and
// generation, which change with its spec: parsing its selectors again at
// every pod event was a tenth of the operator's CPU during a burst of
// relabels. The reconciler forgets a NetworkPolicy once it is gone.
type depCache struct {
	m sync.Map // types.NamespacedName → depEntry
}

type depEntry struct {
	uid        types.UID
	generation int64
	deps       translate.Dependencies
}

// of returns the dependencies of np. A policy without a generation (not
// read from the API server) is never cached.
func (c *depCache) of(np *networkingv1.NetworkPolicy) translate.Dependencies {
	if c == nil || np.Generation == 0 {
		return translate.DependenciesOf(np)
	}
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
	if v, ok := c.m.Load(key); ok {
		if e := v.(depEntry); e.uid == np.UID && e.generation == np.Generation {
			return e.deps
		}
	}
	d := translate.DependenciesOf(np)
	c.m.Store(key, depEntry{uid: np.UID, generation: np.Generation, deps: d})
	return d
}

// forget drops what is kept for the NetworkPolicy key.
func (c *depCache) forget(key types.NamespacedName) {
	if c != nil {
		c.m.Delete(key)
	}
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func enqueue(q queue, keys sets.Set[types.NamespacedName]) {
	for k := range keys {
		q.Add(reconcile.Request{NamespacedName: k})
	}
}

// PodHandler enqueues the NetworkPolicies a pod's creation, deletion or
// update can matter to. Updates see both states, so a pod relabelled out
// of a selector still reaches the policy it left, and a relabel that moves
// nothing a policy reads does not reach it.
// (A handler.Funcs rather than EnqueueRequestsFromMapFunc, which maps the
// old and the new state one at a time: the dependency model compares them.)
func (m mapper) PodHandler() handler.EventHandler {
	pod := func(o client.Object) *cachedPod { p, _ := o.(*cachedPod); return p }
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) {
			enqueue(q, m.podPolicies(ctx, pod(e.Object)))
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			enqueue(q, m.podPolicies(ctx, pod(e.ObjectOld), pod(e.ObjectNew)))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
			enqueue(q, m.podPolicies(ctx, pod(e.Object)))
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q queue) {
			enqueue(q, m.podPolicies(ctx, pod(e.Object)))
		},
	}
}

// podPolicies are the NetworkPolicies that one of the given states of a pod
// can matter to: candidates are the policies of its namespace and the
// cross-namespace ones (IndexScope); a candidate is kept when its
// podSelector can select the pod, or an ingress peer can select it or
// another pod of its ServiceAccount (a shared identity).
func (m mapper) podPolicies(ctx context.Context, pods ...*cachedPod) sets.Set[types.NamespacedName] {
	out := sets.New[types.NamespacedName]()
	var first *cachedPod
	for _, p := range pods {
		if p != nil {
			first = p
			break
		}
	}
	if first == nil {
		return out
	}
	log := ctrl.LoggerFrom(ctx).WithValues("pod", client.ObjectKeyFromObject(first))
	candidates, err := m.candidates(ctx, first.Namespace)
	if err != nil {
		log.Error(err, "listing NetworkPolicies for a pod change")
		return out
	}
	nsLabels := m.namespaceLabels(ctx, first.Namespace)
	for _, np := range candidates {
		if m.podMatters(np, pods, nsLabels) {
			out.Insert(types.NamespacedName{Namespace: np.Namespace, Name: np.Name})
		}
	}
	return out
}

// candidates are the NetworkPolicies of namespace ns and those with a
// namespaceSelector anywhere, in opted-in namespaces only: a pod cannot
// change a policy that is not translated, and opting in enqueues all the
// namespace's policies anyway.
func (m mapper) candidates(ctx context.Context, ns string) ([]*networkingv1.NetworkPolicy, error) {
	var local, cross networkingv1.NetworkPolicyList
	if err := m.Client.List(ctx, &local, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	if err := m.listCrossNamespace(ctx, ns, &cross); err != nil {
		return nil, err
	}
	optedIn := m.optedIn(ctx)
	out := make([]*networkingv1.NetworkPolicy, 0, len(local.Items)+len(cross.Items))
	for i := range local.Items {
		if optedIn(ns) {
			out = append(out, &local.Items[i])
		}
	}
	for i := range cross.Items {
		if cross.Items[i].Namespace != ns && optedIn(cross.Items[i].Namespace) {
			out = append(out, &cross.Items[i])
		}
	}
	return out, nil
}

// optedIn returns a function saying whether a namespace carries the mode
// annotation, remembering answers for the duration of one event.
func (m mapper) optedIn(ctx context.Context) func(string) bool {
	known := map[string]bool{}
	return func(name string) bool {
		in, ok := known[name]
		if !ok {
			ns := &corev1.Namespace{}
			if err := m.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
				in = true // cannot tell: reconcile rather than miss it
			} else {
				_, in = ns.Annotations[translate.AnnotationMode]
			}
			known[name] = in
		}
		return in
	}
}

func (m mapper) namespaceLabels(ctx context.Context, name string) labels.Set {
	ns := &corev1.Namespace{}
	if err := m.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return labels.Set{"kubernetes.io/metadata.name": name}
	}
	return labels.Set(ns.Labels)
}

// podMatters says whether a pod's change, given as its states (one for a
// creation or deletion, old and new for an update; the pod is in a
// namespace with labels nsLabels), can change the translation of np, as the
// engine's dependency model says; the other pods of its ServiceAccount come
// from the pod store, only when they decide.
func (m mapper) podMatters(np *networkingv1.NetworkPolicy, pods []*cachedPod, nsLabels labels.Set) bool {
	var listErr error
	sameServiceAccount := func(p *cachedPod) func() []translate.Pod {
		return func() []translate.Pod {
			var same []translate.Pod
			same, listErr = m.Pods.ofServiceAccount(p.Namespace, p.Pod.ServiceAccount)
			return same
		}
	}
	d := m.dependencies(np)
	matters := false
	if len(pods) == 2 && pods[0] != nil && pods[1] != nil {
		matters = d.PodChangeMatters(&pods[0].Pod, &pods[1].Pod, nsLabels, sameServiceAccount(pods[1]))
	} else {
		for _, p := range pods {
			if p != nil && d.PodMatters(&p.Pod, nsLabels, sameServiceAccount(p)) {
				matters = true
				break
			}
		}
	}
	// Cannot tell: reconcile rather than miss it.
	return matters || listErr != nil
}

// NamespaceHandler enqueues, for a namespace change, the NetworkPolicies of
// that namespace when its netpol2authz annotations or ambient mode change,
// and the cross-namespace ones whose namespaceSelectors match its old or
// new labels when its labels change.
func (m mapper) NamespaceHandler() handler.EventHandler {
	ns := func(o client.Object) *corev1.Namespace { n, _ := o.(*corev1.Namespace); return n }
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) {
			enqueue(q, m.namespacePolicies(ctx, nil, ns(e.Object)))
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			enqueue(q, m.namespacePolicies(ctx, ns(e.ObjectOld), ns(e.ObjectNew)))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
			enqueue(q, m.namespacePolicies(ctx, ns(e.Object), nil))
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q queue) {
			enqueue(q, m.namespacePolicies(ctx, nil, ns(e.Object)))
		},
	}
}

func (m mapper) namespacePolicies(ctx context.Context, old, cur *corev1.Namespace) sets.Set[types.NamespacedName] {
	out := sets.New[types.NamespacedName]()
	var before, after *translate.Namespace
	name := ""
	if old != nil {
		before, name = &translate.Namespace{Name: old.Name, Labels: old.Labels, Annotations: old.Annotations}, old.Name
	}
	if cur != nil {
		after, name = &translate.Namespace{Name: cur.Name, Labels: cur.Labels, Annotations: cur.Annotations}, cur.Name
	}
	if name == "" {
		return out
	}
	log := ctrl.LoggerFrom(ctx).WithValues("namespace", name)
	// Candidates: the namespace's own policies and the cross-namespace ones;
	// the engine's dependency model keeps those the change matters to.
	var local, cross networkingv1.NetworkPolicyList
	if err := m.Client.List(ctx, &local, client.InNamespace(name), client.UnsafeDisableDeepCopy); err != nil {
		log.Error(err, "listing NetworkPolicies for a namespace change")
		return out
	}
	if err := m.listCrossNamespace(ctx, name, &cross); err != nil {
		log.Error(err, "listing NetworkPolicies for a namespace change")
		return out
	}
	optedIn := m.optedIn(ctx)
	for _, list := range [][]networkingv1.NetworkPolicy{local.Items, cross.Items} {
		for i := range list {
			np := &list[i]
			// The own namespace's policies go even when it opts out.
			if np.Namespace != name && !optedIn(np.Namespace) {
				continue
			}
			if m.dependencies(np).NamespaceChangeMatters(before, after) {
				out.Insert(types.NamespacedName{Namespace: np.Namespace, Name: np.Name})
			}
		}
	}
	return out
}

// ConflictRequests maps an AuthorizationPolicy to the NetworkPolicies whose
// status reports a Conflict over its name, so that they take the name
// when it is freed.
func (m mapper) ConflictRequests(ctx context.Context, o client.Object) []reconcile.Request {
	var list policyv1alpha1.NetworkPolicyTranslationList
	if err := m.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexConflict: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing NetworkPolicyTranslations in conflict", "authorizationPolicy", client.ObjectKeyFromObject(o))
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// MeshConfigRequests maps a change of the mesh config to every
// NetworkPolicy of an opted-in namespace: the trust domain or the root
// namespace may have changed.
func (m mapper) MeshConfigRequests(ctx context.Context, _ client.Object) []reconcile.Request {
	log := ctrl.LoggerFrom(ctx)
	var nsList corev1.NamespaceList
	if err := m.Client.List(ctx, &nsList, client.UnsafeDisableDeepCopy); err != nil {
		log.Error(err, "listing namespaces for a mesh config change")
		return nil
	}
	var out []reconcile.Request
	for i := range nsList.Items {
		if _, ok := nsList.Items[i].Annotations[translate.AnnotationMode]; !ok {
			continue
		}
		var nps networkingv1.NetworkPolicyList
		if err := m.Client.List(ctx, &nps, client.InNamespace(nsList.Items[i].Name), client.UnsafeDisableDeepCopy); err != nil {
			log.Error(err, "listing NetworkPolicies for a mesh config change")
			return nil
		}
		for j := range nps.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&nps.Items[j])})
		}
	}
	return out
}
