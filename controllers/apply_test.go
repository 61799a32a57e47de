package controllers

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

var dbPolicy = &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: "np-uid"}}

// generated is an AuthorizationPolicy as the engine makes it for dbPolicy.
func generated(name string, principals ...string) *securityv1.AuthorizationPolicy {
	return &securityv1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "shop",
			Labels:      map[string]string{translate.LabelManagedBy: translate.ManagedByValue, translate.LabelNetworkPolicy: "db"},
			Annotations: map[string]string{translate.AnnotationSourcePolicy: "db"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Name: "db", UID: "np-uid",
				Controller: new(true), BlockOwnerDeletion: new(true)}},
		},
		Spec: securityapi.AuthorizationPolicy{Rules: []*securityapi.Rule{{From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: principals}}}}}},
	}
}

// writeCounter is a fake API whose writes are counted.
func writeCounter(t *testing.T, writes *int, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := securityv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	count := func() { *writes++ }
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&securityv1.AuthorizationPolicy{}, indexOwner, ownerKeys).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
				count()
				return c.Create(ctx, o, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
				count()
				return c.Update(ctx, o, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
				count()
				return c.Delete(ctx, o, opts...)
			},
		}).Build()
}

func TestApply(t *testing.T) {
	stale := generated("netpol-db-old", "cluster.local/ns/shop/sa/old")
	edited := generated("netpol-db", "cluster.local/ns/evil/sa/x")
	edited.Annotations[translate.AnnotationIstioDryRun] = "true"
	edited.Annotations["team.example/owner"] = "db"
	theirs := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "netpol-db-2", Namespace: "shop"}}
	unowned := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "netpol-db-x", Namespace: "shop", Labels: generated("x").Labels}}

	writes := 0
	c := writeCounter(t, &writes, stale, edited, theirs, unowned)
	desired := []*securityv1.AuthorizationPolicy{
		generated("netpol-db", "cluster.local/ns/shop/sa/api"),
		generated("netpol-db-1", "cluster.local/ns/shop/sa/web"),
		generated("netpol-db-2", "cluster.local/ns/shop/sa/web"),
	}
	got, err := applyPolicies(context.Background(), c, dbPolicy, desired)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"netpol-db", "netpol-db-1"}, got.Policies); diff != "" {
		t.Errorf("policies in place (-want,+got):\n%s", diff)
	}
	if len(got.Conflicts) != 1 || got.Conflicts[0].Objects[0].Name != "netpol-db-2" {
		t.Errorf("conflicts = %+v, want one about netpol-db-2", got.Conflicts)
	}
	if writes != 3 || got.Writes != 3 {
		t.Errorf("writes = %d (reported %d), want 3: update netpol-db, create netpol-db-1, delete netpol-db-old", writes, got.Writes)
	}

	ap := &securityv1.AuthorizationPolicy{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "netpol-db"}, ap); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{translate.AnnotationSourcePolicy: "db", "team.example/owner": "db"}, ap.Annotations); diff != "" {
		t.Errorf("annotations of the restored policy (-want,+got):\n%s", diff)
	}
	for _, kept := range []client.Object{theirs, unowned} {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(kept), kept); err != nil {
			t.Errorf("%s, not owned, was touched: %v", kept.GetName(), err)
		}
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(stale), stale); err == nil {
		t.Errorf("%s, owned and no longer desired, was not pruned", stale.Name)
	}

	writes = 0
	if _, err := applyPolicies(context.Background(), c, dbPolicy, desired); err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Errorf("a second Apply of the same input wrote %d times, want 0", writes)
	}
}

func TestApplyAdoptsPoliciesOfAnEarlierNetworkPolicyOfTheSameName(t *testing.T) {
	old := generated("netpol-db", "cluster.local/ns/shop/sa/api")
	old.OwnerReferences[0].UID = "deleted-uid"
	writes := 0
	c := writeCounter(t, &writes, old)
	got, err := applyPolicies(context.Background(), c, dbPolicy, []*securityv1.AuthorizationPolicy{generated("netpol-db", "cluster.local/ns/shop/sa/api")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Conflicts) != 0 || writes != 1 {
		t.Errorf("conflicts %v, writes %d: want the policy adopted with one update", got.Conflicts, writes)
	}
}

func TestApplyKeepsWhatExistsOnInvalidInput(t *testing.T) {
	kept := generated("netpol-db", "cluster.local/ns/shop/sa/api")
	writes := 0
	r := &NetworkPolicyReconciler{Client: writeCounter(t, &writes, kept)}
	out, err := r.apply(context.Background(), dbPolicy, translate.Translation{Action: translate.ActionKeep,
		Findings: []translate.Finding{finding(translate.InvalidAnnotation, "bad mode")}})
	if err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Errorf("%d writes on invalid input, want none", writes)
	}
	if diff := cmp.Diff([]string{"netpol-db"}, out.applied.Policies); diff != "" {
		t.Errorf("policies still in force (-want,+got):\n%s", diff)
	}
}

// The cache keeps a digest instead of the spec: an unchanged policy is not
// written again, a hand-edited spec is, and the digest never reaches the
// API server.
func TestApplyComparesCachedDigests(t *testing.T) {
	kept := generated("netpol-db", "cluster.local/ns/shop/sa/api")
	cachedObj, err := transformAuthorizationPolicy(kept.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	cached := cachedObj.(*securityv1.AuthorizationPolicy)
	if d, ok := cachedDigest(&cached.ObjectMeta, cachedSpecDigest); len(cached.Spec.GetRules()) != 0 || !ok || d == "" {
		t.Fatalf("the cached policy keeps its spec or has no digest: %v", cached)
	}
	if specDiffers(cached, &kept.Spec) {
		t.Error("the digest of an unchanged spec differs")
	}
	edited := generated("netpol-db", "cluster.local/ns/shop/sa/attacker")
	if !specDiffers(cached, &edited.Spec) {
		t.Error("a changed spec has the same digest")
	}
	next := merged(cached, kept)
	if _, ok := next.Annotations[cachedSpecDigest]; ok {
		t.Errorf("the cache-only annotation would be written: %v", next.Annotations)
	}
}

// Informers transform an object again at a resync: the digest stays the
// real spec's.
func TestTransformAuthorizationPolicyIsIdempotent(t *testing.T) {
	once, _ := transformAuthorizationPolicy(generated("netpol-db", "cluster.local/ns/shop/sa/api"))
	twice, _ := transformAuthorizationPolicy(once)
	a, _ := cachedDigest(&once.(*securityv1.AuthorizationPolicy).ObjectMeta, cachedSpecDigest)
	b, _ := cachedDigest(&twice.(*securityv1.AuthorizationPolicy).ObjectMeta, cachedSpecDigest)
	if a != b || a != specDigest(&generated("x", "cluster.local/ns/shop/sa/api").Spec) {
		t.Errorf("digest after one transform %q, after two %q", a, b)
	}
}

// An annotation of the digest's name that someone wrote on a policy, with
// the digest of the generated spec over a spec emptied by hand, is not
// taken for the cache's own: the emptied spec differs.
func TestTransformAuthorizationPolicyIgnoresAForgedDigest(t *testing.T) {
	want := generated("netpol-db", "cluster.local/ns/shop/sa/api")
	forged := generated("netpol-db")
	forged.Spec.Reset()
	forged.Annotations[cachedSpecDigest] = specDigest(&want.Spec)
	cached, err := transformAuthorizationPolicy(forged)
	if err != nil {
		t.Fatal(err)
	}
	if !specDiffers(cached.(*securityv1.AuthorizationPolicy), &want.Spec) {
		t.Error("a forged digest hides a spec emptied by hand")
	}
	forged.Annotations[cachedSpecDigest] = "0123/" + specDigest(&want.Spec) // a guessed nonce
	cached, _ = transformAuthorizationPolicy(forged)
	if !specDiffers(cached.(*securityv1.AuthorizationPolicy), &want.Spec) {
		t.Error("a forged digest with a guessed nonce hides a spec emptied by hand")
	}
}

// servicePolicy is a policy the engine binds to Service svc at its
// waypoint: targetRefs and no selector.
func servicePolicy(svc string, principals ...string) *securityv1.AuthorizationPolicy {
	ap := generated("netpol-db-svc-"+svc, principals...)
	ap.Spec.TargetRefs = []*typeapi.PolicyTargetReference{{Group: "", Kind: "Service", Name: svc}}
	return ap
}

// A policy bound to a Service is applied like the others: created, left
// alone when unchanged (the digest covers targetRefs), and restored when
// its targetRefs are edited by hand or a selector is added, with no
// selector written.
func TestApplyServiceBoundPolicies(t *testing.T) {
	writes := 0
	c := writeCounter(t, &writes)
	desired := []*securityv1.AuthorizationPolicy{generated("netpol-db", "cluster.local/ns/shop/sa/api"), servicePolicy("db", "cluster.local/ns/shop/sa/api")}
	if _, err := applyPolicies(context.Background(), c, dbPolicy, desired); err != nil {
		t.Fatal(err)
	}
	if writes != 2 {
		t.Errorf("%d writes, want 2 creates", writes)
	}
	key := client.ObjectKey{Namespace: "shop", Name: "netpol-db-svc-db"}
	for name, edit := range map[string]func(*securityapi.AuthorizationPolicy){
		"targetRefs to another Service": func(s *securityapi.AuthorizationPolicy) { s.TargetRefs[0].Name = "web" },
		"a selector added": func(s *securityapi.AuthorizationPolicy) {
			s.TargetRefs = nil
			s.Selector = &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "db"}}
		},
	} {
		ap := &securityv1.AuthorizationPolicy{}
		if err := c.Get(context.Background(), key, ap); err != nil {
			t.Fatal(err)
		}
		cachedObj, err := transformAuthorizationPolicy(ap.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		if specDiffers(cachedObj.(*securityv1.AuthorizationPolicy), &desired[1].Spec) {
			t.Errorf("%s: the digest of the unchanged Service policy differs", name)
		}
		edit(&ap.Spec)
		if err := c.Update(context.Background(), ap); err != nil {
			t.Fatal(err)
		}
		cachedObj, _ = transformAuthorizationPolicy(ap.DeepCopy())
		if !specDiffers(cachedObj.(*securityv1.AuthorizationPolicy), &desired[1].Spec) {
			t.Errorf("%s: the edited spec has the digest of the generated one", name)
		}
		writes = 0
		if _, err := applyPolicies(context.Background(), c, dbPolicy, desired); err != nil {
			t.Fatal(err)
		}
		if writes != 1 {
			t.Errorf("%s: %d writes, want the one update that restores it", name, writes)
		}
		if err := c.Get(context.Background(), key, ap); err != nil {
			t.Fatal(err)
		}
		if ap.Spec.Selector != nil || len(ap.Spec.TargetRefs) != 1 || ap.Spec.TargetRefs[0].Name != "db" || ap.Spec.TargetRefs[0].Kind != "Service" {
			t.Errorf("%s: restored spec has selector %v, targetRefs %v", name, ap.Spec.Selector, ap.Spec.TargetRefs)
		}
	}
	writes = 0
	if _, err := applyPolicies(context.Background(), c, dbPolicy, desired); err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Errorf("%d writes of an unchanged input, want none", writes)
	}
}
