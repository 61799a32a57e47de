package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func unstructuredOf(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// An admin policy of another schema revision is unreadable, never misread:
// network-policy-api v0.1's `namespaces: {namespaceSelector: …}` peer,
// decoded into v0.3.0's types (where `namespaces` is itself the selector),
// would lose its selector and admit every namespace.
func TestAdminPoliciesAreReadStrictly(t *testing.T) {
	anp := adminKinds[0]
	if !anp.strict || anp.gvk.Kind != "AdminNetworkPolicy" {
		t.Fatalf("the first admin kind is %v, strict %v", anp.gvk, anp.strict)
	}
	if _, ok := anp.object().(*unstructured.Unstructured); !ok {
		t.Fatalf("a strict kind's informer holds %T", anp.object())
	}
	current := unstructuredOf(t, `
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-monitoring}
spec:
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - name: monitoring
    action: Allow
    from:
    - namespaces: {matchLabels: {team: monitoring}}
`)
	p, err := anp.read(current)
	if err != nil {
		t.Fatalf("reading a v0.3.0 AdminNetworkPolicy: %v", err)
	}
	if p.Name != "allow-monitoring" || len(p.Ingress) != 1 {
		t.Errorf("read %+v", p)
	}
	older := unstructuredOf(t, `
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-monitoring}
spec:
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - name: monitoring
    action: Allow
    from:
    - namespaces: {namespaceSelector: {matchLabels: {team: monitoring}}}
`)
	if _, err := anp.read(older); err == nil || !strings.Contains(err.Error(), "namespaceSelector") {
		t.Errorf("reading a v0.1 AdminNetworkPolicy: error %v, want an unknown field namespaceSelector", err)
	}
}
