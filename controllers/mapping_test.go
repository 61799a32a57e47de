package controllers

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

func ns(name string, labels map[string]string) *corev1.Namespace {
	l := map[string]string{"kubernetes.io/metadata.name": name}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func optedInNS(name string, labels map[string]string) *corev1.Namespace {
	n := ns(name, labels)
	n.Annotations = map[string]string{"netpol2authz.io/mode": "enforce"}
	return n
}

func pod(namespace, name, sa string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels}, Spec: corev1.PodSpec{ServiceAccountName: sa}}
}

func sel(l map[string]string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: l} }

func policy(namespace, name string, target metav1.LabelSelector, peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: target,
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers}},
		},
	}
}

func fakeCache(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&networkingv1.NetworkPolicy{}, indexScope, scopeKeys).
		Build()
}

// podStoreOf is a pod store holding the pods among objs, without an
// informer running.
func podStoreOf(t *testing.T, objs ...client.Object) *podStore {
	t.Helper()
	s := newPodStoreFrom(nil)
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			if err := s.informer.GetIndexer().Add(cached(t, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// The cluster of the mapping tests: shop (team=a) and other (team=b) are
// opted in, off (team=a) is not.
func mappingCluster() []client.Object {
	return []client.Object{
		optedInNS("shop", map[string]string{"team": "a"}),
		optedInNS("other", map[string]string{"team": "b"}),
		ns("off", map[string]string{"team": "a"}),
		// Not translated: no pod or namespace change maps to it.
		policy("off", "ignored", metav1.LabelSelector{},
			networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}}),
		pod("shop", "api-0", "api", map[string]string{"app": "api"}),
		pod("shop", "batch-0", "api", map[string]string{"app": "batch"}), // shares api's SA
		// db: target app=db, from app=api.
		policy("shop", "db", metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			networkingv1.NetworkPolicyPeer{PodSelector: sel(map[string]string{"app": "api"})}),
		// web: target app=web, from anything in team=b namespaces.
		policy("shop", "web", metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(map[string]string{"team": "b"})}),
		// metrics: target tier NotIn [db]: projections may cover any pod.
		policy("shop", "metrics", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}}}},
			networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}),
		// cache: in other, from app=api pods of team=a namespaces.
		policy("other", "cache", metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
			networkingv1.NetworkPolicyPeer{NamespaceSelector: sel(map[string]string{"team": "a"}), PodSelector: sel(map[string]string{"app": "api"})}),
		// lonely: in other, from its own app=api pods only.
		policy("other", "lonely", metav1.LabelSelector{MatchLabels: map[string]string{"app": "lonely"}},
			networkingv1.NetworkPolicyPeer{PodSelector: sel(map[string]string{"app": "api"})}),
	}
}

func keys(in ...string) []string {
	out := append([]string{}, in...)
	slices.Sort(out)
	return out
}

// names renders requests as sorted "namespace/name" strings.
func names(in sets.Set[types.NamespacedName]) []string {
	out := []string{}
	for k := range in {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

func TestPodPolicies(t *testing.T) {
	m := mapper{Client: fakeCache(t, mappingCluster()...), Pods: podStoreOf(t, mappingCluster()...)}
	tests := map[string]struct {
		pods []*corev1.Pod
		want []string
	}{
		"a peer of one policy here and of one across namespaces": {
			pods: []*corev1.Pod{pod("shop", "api-1", "api", map[string]string{"app": "api"})},
			want: keys("shop/db", "shop/metrics", "other/cache"),
		},
		"a target": {
			pods: []*corev1.Pod{pod("shop", "db-0", "db", map[string]string{"app": "db", "tier": "db"})},
			want: keys("shop/db", "shop/metrics"),
		},
		"an unselected pod sharing a selected pod's ServiceAccount": {
			pods: []*corev1.Pod{pod("shop", "cron-0", "api", map[string]string{"app": "cron"})},
			want: keys("shop/db", "shop/metrics", "other/cache"),
		},
		"an unrelated pod with its own ServiceAccount": {
			pods: []*corev1.Pod{pod("shop", "cron-0", "cron", map[string]string{"app": "cron"})},
			want: keys("shop/metrics"),
		},
		"a pod of a namespace that is not opted in, matched by nothing translated": {
			pods: []*corev1.Pod{pod("off", "x-0", "x", map[string]string{"app": "x"})},
			want: keys(),
		},
		"any pod of a namespace a namespaceSelector matches": {
			pods: []*corev1.Pod{pod("other", "x-0", "x", map[string]string{"app": "x"})},
			want: keys("shop/web"),
		},
		// (shop/web selects other's namespace, not its pods' labels.)
		"relabelled out of a selector: the old labels count": {
			pods: []*corev1.Pod{
				pod("other", "api-0", "solo", map[string]string{"app": "api"}),
				pod("other", "api-0", "solo", map[string]string{"app": "gone"}),
			},
			want: keys("other/lonely"),
		},
		"relabelled with a label no policy reads: none": {
			pods: []*corev1.Pod{
				pod("other", "x-0", "x", map[string]string{"app": "x"}),
				pod("other", "x-0", "x", map[string]string{"app": "x", "pod-template-hash": "2"}),
			},
			want: keys(),
		},
		"relabelled, selected before and after by a policy that splits by labels": {
			pods: []*corev1.Pod{
				pod("shop", "cron-0", "cron", map[string]string{"app": "cron"}),
				pod("shop", "cron-0", "cron", map[string]string{"app": "cron", "tier": "batch"}),
			},
			want: keys("shop/metrics"),
		},
		"ServiceAccount changed: both states count": {
			pods: []*corev1.Pod{
				pod("shop", "cron-0", "cron", map[string]string{"app": "cron"}),
				pod("shop", "cron-0", "api", map[string]string{"app": "cron"}),
			},
			want: keys("shop/db", "shop/metrics", "other/cache"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var pods []*cachedPod
			for _, p := range tc.pods {
				pods = append(pods, cached(t, p))
			}
			got := m.podPolicies(context.Background(), pods...)
			if diff := cmp.Diff(keys(tc.want...), names(got)); diff != "" {
				t.Errorf("policies (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestNamespacePolicies(t *testing.T) {
	m := mapper{Client: fakeCache(t, mappingCluster()...), Pods: podStoreOf(t, mappingCluster()...)}
	mode := map[string]string{"netpol2authz.io/mode": "enforce"}
	withAnn := func(n *corev1.Namespace, a map[string]string) *corev1.Namespace { n.Annotations = a; return n }
	tests := map[string]struct {
		old, cur *corev1.Namespace
		want     []string
	}{
		"opting in enqueues the namespace's policies": {
			old: ns("shop", map[string]string{"team": "a"}), cur: withAnn(ns("shop", map[string]string{"team": "a"}), mode),
			want: keys("shop/db", "shop/web", "shop/metrics"),
		},
		"a label joining a namespaceSelector enqueues the policies selecting it": {
			old: ns("new", nil), cur: ns("new", map[string]string{"team": "b"}),
			want: keys("shop/web"),
		},
		"a label leaving one enqueues them too": {
			old: ns("other", map[string]string{"team": "b"}), cur: ns("other", map[string]string{"team": "c"}),
			want: keys("shop/web"),
		},
		"a new namespace matching nothing enqueues nothing": {
			cur:  ns("fresh", map[string]string{"team": "z"}),
			want: keys(),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := m.namespacePolicies(context.Background(), tc.old, tc.cur)
			if diff := cmp.Diff(keys(tc.want...), names(got)); diff != "" {
				t.Errorf("policies (-want,+got):\n%s", diff)
			}
		})
	}
}

// The dependencies of a NetworkPolicy are kept for its UID and
// generation: a new spec (generation), a policy recreated under the same
// name (UID) and one not read from the API server (no generation) are
// never answered from what was kept.
func TestDepCache(t *testing.T) {
	np := func(uid types.UID, generation int64, app string) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: uid, Generation: generation},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		}
	}
	pod := func(app string) *translate.Pod {
		return &translate.Pod{Namespace: "shop", Name: "p", Labels: map[string]string{"app": app}}
	}
	selects := func(d translate.Dependencies, app string) bool {
		return d.PodMatters(pod(app), nil, func() []translate.Pod { return nil })
	}
	c := &depCache{}
	if !selects(c.of(np("a", 1, "db")), "db") {
		t.Fatal("the dependencies of the first generation miss its own pods")
	}
	for _, tt := range []struct {
		name string
		np   *networkingv1.NetworkPolicy
	}{
		{"a new generation", np("a", 2, "web")},
		{"a policy recreated under the same name", np("b", 1, "web")},
		{"a policy not read from the API server", np("", 0, "web")},
	} {
		if d := c.of(tt.np); !selects(d, "web") || selects(d, "db") {
			t.Errorf("%s: answered from what was kept", tt.name)
		}
	}
	c.forget(types.NamespacedName{Namespace: "shop", Name: "db"})
	if _, ok := c.m.Load(types.NamespacedName{Namespace: "shop", Name: "db"}); ok {
		t.Error("forget kept the entry")
	}
}
