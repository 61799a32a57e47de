package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// fullTranslation is a NetworkPolicyTranslation as the API server holds
// it: long finding messages, a Conflict, a pending identity.
func fullTranslation() *policyv1alpha1.NetworkPolicyTranslation {
	now := metav1.NewTime(time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	return &policyv1alpha1.NetworkPolicyTranslation{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "netpol2authz"}}},
		Status: policyv1alpha1.NetworkPolicyTranslationStatus{
			ObservedGeneration:    3,
			Mode:                  "enforce",
			AuthorizationPolicies: []string{"netpol-db"},
			Principals:            2,
			Rules:                 1,
			FindingsCount:         4,
			Conditions: []metav1.Condition{
				{Type: policyv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Applied", LastTransitionTime: now, ObservedGeneration: 3},
			},
			Findings: []policyv1alpha1.Finding{
				{Type: string(translate.Conflict), Severity: "Error", Message: strings.Repeat("c", 500), Objects: []policyv1alpha1.ObjectReference{{Kind: "AuthorizationPolicy", Namespace: "shop", Name: "netpol-db"}, {Kind: "NetworkPolicy", Namespace: "shop", Name: "other"}}},
				{Type: "SharedIdentity", Severity: "Warning", Message: strings.Repeat("s", 2000)},
				{Type: "SharedIdentity", Severity: "Warning", Message: strings.Repeat("t", 2000)},
				{Type: "NamedPort", Severity: "Info", Message: "port http resolves to 8080"},
			},
			Pending:           1,
			PendingIdentities: []policyv1alpha1.PendingIdentity{{Identity: "serviceaccount/shop/batch", Sources: []policyv1alpha1.IdentitySource{{Kind: "Pod", Name: "batch-0", FieldManagers: []string{"kubectl-label"}}}}},
		},
	}
}

// The cache keeps of a status what report and the conflict index read,
// and a digest of the whole that report compares with the status it
// builds: equal for the same status, different for a hand edit.
func TestTransformTranslation(t *testing.T) {
	full := fullTranslation()
	obj, err := transformTranslation(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	cached := obj.(*policyv1alpha1.NetworkPolicyTranslation)
	want := policyv1alpha1.NetworkPolicyTranslationStatus{
		Conditions: full.Status.Conditions,
		Findings: []policyv1alpha1.Finding{
			{Type: string(translate.Conflict), Severity: "Error", Objects: []policyv1alpha1.ObjectReference{{Kind: "AuthorizationPolicy", Name: "netpol-db"}}},
			{Type: "SharedIdentity", Severity: "Warning"},
			{Type: "NamedPort", Severity: "Info"},
		},
		PendingIdentities: full.Status.PendingIdentities,
	}
	if diff := cmp.Diff(want, cached.Status); diff != "" {
		t.Errorf("cached status (-want +got):\n%s", diff)
	}
	if cached.ManagedFields != nil {
		t.Error("managedFields are cached")
	}
	if got := conflictKeys(cached); !cmp.Equal(got, []string{"netpol-db"}) {
		t.Errorf("conflict keys of the cached object: %v", got)
	}
	if !statusUnchanged(cached, &full.Status) {
		t.Error("the digest of the status in place differs from itself")
	}
	edited := fullTranslation()
	edited.Status.Findings[1].Message = "nothing to see"
	if statusUnchanged(cached, &edited.Status) {
		t.Error("a status differing in a message has the same digest")
	}
	if m := withoutCacheAnnotations(&cached.ObjectMeta); len(m.Annotations) != 0 {
		t.Errorf("the cache-only annotation would be written: %v", m.Annotations)
	}
	if full.Annotations != nil || len(full.ManagedFields) != 1 {
		t.Error("the transform changed its input")
	}
}

// Informers transform an object again at a resync: the digest stays the
// real status's.
func TestTransformTranslationIsIdempotent(t *testing.T) {
	once, _ := transformTranslation(fullTranslation())
	twice, _ := transformTranslation(once)
	a, _ := cachedDigest(&once.(*policyv1alpha1.NetworkPolicyTranslation).ObjectMeta, cachedStatusDigest)
	b, _ := cachedDigest(&twice.(*policyv1alpha1.NetworkPolicyTranslation).ObjectMeta, cachedStatusDigest)
	if a != b || a != statusDigest(&fullTranslation().Status) {
		t.Errorf("digest after one transform %q, after two %q", a, b)
	}
}

// A digest annotation someone wrote on a translation, over a status
// emptied by hand, is not taken for the cache's own.
func TestTransformTranslationIgnoresAForgedDigest(t *testing.T) {
	want := fullTranslation()
	forged := fullTranslation()
	forged.Status = policyv1alpha1.NetworkPolicyTranslationStatus{}
	forged.Annotations = map[string]string{cachedStatusDigest: statusDigest(&want.Status)}
	cached, err := transformTranslation(forged)
	if err != nil {
		t.Fatal(err)
	}
	if statusUnchanged(cached.(*policyv1alpha1.NetworkPolicyTranslation), &want.Status) {
		t.Error("a forged digest hides a status emptied by hand")
	}
}

// A status as report builds it (a transition time to the nanosecond, nil
// lists) has the digest of the same status read back from the API server,
// or every reconcile would write it again.
func TestStatusDigestSurvivesARoundTrip(t *testing.T) {
	built := fullTranslation().Status
	built.Conditions[0].LastTransitionTime = metav1.NewTime(built.Conditions[0].LastTransitionTime.Add(123456789 * time.Nanosecond))
	built.Findings[3].Objects = []policyv1alpha1.ObjectReference{}
	b, err := json.Marshal(built)
	if err != nil {
		t.Fatal(err)
	}
	var read policyv1alpha1.NetworkPolicyTranslationStatus
	if err := json.Unmarshal(b, &read); err != nil {
		t.Fatal(err)
	}
	if statusDigest(&built) != statusDigest(&read) {
		t.Errorf("digest of the status built %s, read back %s", statusDigest(&built), statusDigest(&read))
	}
}

// A reconcile waits for the event of its own last status write only while
// the cache shows the status the write replaced, and never after a write
// that changed nothing: the API server sends no event for it, so waiting
// would stop the policy from ever being reconciled again.
func TestCacheBehindStatus(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "db"}
	npt := &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(npt).Build()
	if err := c.Get(context.Background(), key, npt); err != nil {
		t.Fatal(err)
	}
	cached := npt.ResourceVersion
	r := &NetworkPolicyReconciler{Client: c}
	ctx := context.Background()

	if r.cacheBehindStatus(ctx, key) {
		t.Error("waits with no write recorded")
	}
	r.rememberStatusWrite(key, cached, cached+"1")
	if !r.cacheBehindStatus(ctx, key) {
		t.Error("does not wait while the cache shows the status the write replaced")
	}
	r.rememberStatusWrite(key, cached, cached)
	if r.cacheBehindStatus(ctx, key) {
		t.Error("waits after a write that changed nothing")
	}
	r.rememberStatusWrite(key, "0", cached)
	if r.cacheBehindStatus(ctx, key) {
		t.Error("waits although the cache moved past the write")
	}
	if _, ok := r.statusWrites.Load(key); ok {
		t.Error("the record outlives the cache catching up")
	}
}
