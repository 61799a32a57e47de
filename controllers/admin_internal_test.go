package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// watcherWith is an adminWatcher that holds policies, as its informers
// would have read them.
func watcherWith(policies ...adminpolicy.Policy) *adminWatcher {
	w := &adminWatcher{}
	w.items.Store(&policies)
	return w
}

// monitoring is an admin policy whose ingress rule admits the app=prom
// pods of team=b namespaces to every namespace.
func monitoring() adminpolicy.Policy {
	return adminpolicy.FromAdminNetworkPolicy(&netpolv1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "monitoring"},
		Spec: netpolv1alpha1.AdminNetworkPolicySpec{
			Priority: 10,
			Subject:  netpolv1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []netpolv1alpha1.AdminNetworkPolicyIngressRule{{
				Name: "prom", Action: netpolv1alpha1.AdminNetworkPolicyRuleActionAllow,
				From: []netpolv1alpha1.AdminNetworkPolicyIngressPeer{{Pods: &netpolv1alpha1.NamespacedPod{
					NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}},
					PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "prom"}},
				}}},
			}},
		},
	})
}

// With admin policies, a pod their peers select matters to every
// translated NetworkPolicy (an admin Allow may admit it to any of them),
// and the labels of a NetworkPolicy's own namespace matter (a subject
// selects namespaces by them).
func TestMappingWithAdminPolicies(t *testing.T) {
	c, pods := fakeCache(t, mappingCluster()...), podStoreOf(t, mappingCluster()...)
	prom := cached(t, pod("other", "prom-0", "prom", map[string]string{"app": "prom"}))
	offProm := cached(t, pod("off", "prom-0", "prom", map[string]string{"app": "prom"}))
	everything := keys("shop/db", "shop/web", "shop/metrics", "other/cache", "other/lonely")
	for _, tc := range []struct {
		name  string
		admin *adminWatcher
		want  []string
	}{
		{"no admin policies: only the namespaceSelector that matches", nil, keys("shop/web")},
		{"none served: the same", watcherWith(), keys("shop/web")},
		{"an admin peer selects the pod: every translated NetworkPolicy", watcherWith(monitoring()), everything},
	} {
		t.Run("pod/"+tc.name, func(t *testing.T) {
			m := mapper{Client: c, Pods: pods, Admin: tc.admin}
			if diff := cmp.Diff(tc.want, names(m.podPolicies(context.Background(), prom))); diff != "" {
				t.Errorf("policies (-want,+got):\n%s", diff)
			}
		})
	}
	t.Run("pod/an admin peer does not select the pod", func(t *testing.T) {
		m := mapper{Client: c, Pods: pods, Admin: watcherWith(monitoring())}
		if got := names(m.podPolicies(context.Background(), offProm)); len(got) != 0 {
			t.Errorf("policies: %v, want none", got)
		}
	})

	relabelled := func(admin *adminWatcher) []string {
		m := mapper{Client: c, Pods: pods, Admin: admin}
		return names(m.namespacePolicies(context.Background(),
			ns("shop", map[string]string{"team": "a"}), ns("shop", map[string]string{"team": "a", "env": "prod"})))
	}
	if diff := cmp.Diff(keys("other/cache"), relabelled(nil)); diff != "" {
		t.Errorf("namespace relabelled, no admin policies (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(keys("shop/db", "shop/web", "shop/metrics", "other/cache"), relabelled(watcherWith(monitoring()))); diff != "" {
		t.Errorf("namespace relabelled, admin policies (-want,+got):\n%s", diff)
	}
}

func resources(gv string, names ...string) *metav1.APIResourceList {
	l := &metav1.APIResourceList{GroupVersion: gv}
	for _, n := range names {
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: n})
	}
	return l
}

func TestDiscoverAdminKinds(t *testing.T) {
	const g = "policy.networking.k8s.io/"
	for _, tc := range []struct {
		name   string
		served []*metav1.APIResourceList
		want   map[string]string // kind → version
	}{
		{"none", nil, map[string]string{}},
		{"other groups only", []*metav1.APIResourceList{resources("networking.k8s.io/v1", "networkpolicies")}, map[string]string{}},
		{"the admin and baseline policies", []*metav1.APIResourceList{resources(g+"v1alpha1", "adminnetworkpolicies", "adminnetworkpolicies/status", "baselineadminnetworkpolicies")},
			map[string]string{"AdminNetworkPolicy": "v1alpha1", "BaselineAdminNetworkPolicy": "v1alpha1"}},
		{"one CRD of the two", []*metav1.APIResourceList{resources(g+"v1alpha1", "baselineadminnetworkpolicies")},
			map[string]string{"BaselineAdminNetworkPolicy": "v1alpha1"}},
		{"ClusterNetworkPolicy in two versions: the newest", []*metav1.APIResourceList{resources(g+"v1alpha2", "clusternetworkpolicies"), resources(g+"v1beta1", "clusternetworkpolicies")},
			map[string]string{"ClusterNetworkPolicy": "v1beta1"}},
		{"ClusterNetworkPolicy in v1alpha2 only", []*metav1.APIResourceList{resources(g+"v1alpha2", "clusternetworkpolicies")},
			map[string]string{"ClusterNetworkPolicy": "v1alpha2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tc.served}}
			got, err := discoverAdminKinds(context.Background(), dc)
			if err != nil {
				t.Fatal(err)
			}
			versions := map[string]string{}
			for kind, k := range got {
				versions[kind] = k.gvk.Version
			}
			if diff := cmp.Diff(tc.want, versions); diff != "" {
				t.Errorf("served (-want,+got):\n%s", diff)
			}
		})
	}

	t.Run("an error other than not found is returned", func(t *testing.T) {
		f := &clienttesting.Fake{}
		f.AddReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("connection refused")
		})
		if _, err := discoverAdminKinds(context.Background(), &fakediscovery.FakeDiscovery{Fake: f}); err == nil {
			t.Error("no error")
		}
	})
}

// The controller's first reconcile waits until discovery has answered and
// every kind it found served has been read: a restart never translates as
// if the admin policies were absent.
func TestAdminWatcherSynced(t *testing.T) {
	anp, cnp := adminKinds[0], adminKinds[2]
	w := &adminWatcher{watches: map[schema.GroupVersionKind]*adminWatch{}, current: map[string]*adminWatch{}}
	if w.synced() {
		t.Error("synced before discovery answered")
	}
	w.discovered, w.desired = true, map[string]adminKind{}
	if !w.synced() {
		t.Error("not synced with nothing served")
	}
	w.desired = map[string]adminKind{"AdminNetworkPolicy": anp, "ClusterNetworkPolicy": cnp}
	w.current["AdminNetworkPolicy"] = &adminWatch{kind: anp, ready: true}
	if w.synced() {
		t.Error("synced with ClusterNetworkPolicy served but not read")
	}
	w.current["ClusterNetworkPolicy"] = &adminWatch{kind: cnp, ready: true}
	if !w.synced() {
		t.Error("not synced with every served kind read")
	}
}

// A policy whose current watch has not synced yet does not count; once it
// has, its policies do, and a kind no longer served drops them.
func TestAdminWatcherPolicies(t *testing.T) {
	anp := adminKinds[0]
	w := &adminWatcher{watches: map[schema.GroupVersionKind]*adminWatch{}, current: map[string]*adminWatch{}, changed: make(chan struct{}, 1)}
	aw := &adminWatch{kind: anp, cancel: func() {}, items: map[string]adminpolicy.Policy{}}
	w.watches[anp.gvk] = aw
	w.desired = map[string]adminKind{"AdminNetworkPolicy": anp}
	w.upsert(context.Background(), aw, &netpolv1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	if got := w.Items(); len(got) != 0 {
		t.Errorf("policies of a watch not synced: %v", got)
	}
	w.ready(context.Background(), aw)
	if got := w.Items(); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("policies: %v, want a", got)
	}
	select {
	case <-w.changed:
	default:
		t.Error("no change signalled")
	}
	w.remove(aw, &netpolv1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	if got := w.Items(); len(got) != 0 {
		t.Errorf("policies after delete: %v", got)
	}
}

// An admin policy that does not convert is kept as one the engine rejects
// (AdminPolicyInvalid), naming the error.
func TestUnreadablePolicyIsInvalid(t *testing.T) {
	k := adminKinds[3]
	if k.gvk.Version != netpolv1alpha2.GroupVersion.Version {
		t.Fatalf("adminKinds[3] is %s", k)
	}
	p := unreadablePolicy(k, &netpolv1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "broken"}}, errors.New("cannot decode"))
	_, errs := adminpolicy.Compile(&p)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	if !strings.Contains(strings.Join(msgs, "; "), "cannot decode") {
		t.Errorf("errors %q do not name the conversion error", msgs)
	}
	if p.Ref() != "ClusterNetworkPolicy/broken" {
		t.Errorf("ref %s", p.Ref())
	}
}

// A kind discovery no longer lists is stopped and its policies dropped at
// once; a discovery error changes nothing.
func TestAdminWatcherKindGone(t *testing.T) {
	anp := adminKinds[0]
	var answer map[string]adminKind
	var answerErr error
	w := &adminWatcher{
		watches: map[schema.GroupVersionKind]*adminWatch{}, current: map[string]*adminWatch{}, changed: make(chan struct{}, 1),
		discover: func(context.Context) (map[string]adminKind, error) { return answer, answerErr },
	}
	stopped := false
	aw := &adminWatch{kind: anp, cancel: func() { stopped = true }, ready: true,
		items: map[string]adminpolicy.Policy{"a": {Kind: adminpolicy.KindAdminNetworkPolicy, Name: "a"}}}
	w.watches[anp.gvk], w.current["AdminNetworkPolicy"] = aw, aw
	w.desired, w.discovered = map[string]adminKind{"AdminNetworkPolicy": anp}, true
	w.rebuildLocked()
	<-w.changed

	answerErr = errors.New("the API server is unreachable")
	w.syncKinds(context.Background())
	if stopped || len(w.Items()) != 1 {
		t.Fatalf("a discovery error stopped the watch (%t) or dropped its policies (%v)", stopped, w.Items())
	}

	answer, answerErr = map[string]adminKind{}, nil
	w.syncKinds(context.Background())
	if !stopped || len(w.watches) != 0 || len(w.current) != 0 {
		t.Errorf("not stopped: stopped %t, watches %v, current %v", stopped, w.watches, w.current)
	}
	if got := w.Items(); len(got) != 0 {
		t.Errorf("policies of a kind no longer served: %v", got)
	}
	select {
	case <-w.changed:
	default:
		t.Error("no change signalled")
	}
	if !w.synced() {
		t.Error("not synced with nothing served")
	}
}
