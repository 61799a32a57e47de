package adminpolicy

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	p, err := Decode([]byte(`{"apiVersion":"policy.networking.k8s.io/v1alpha1","kind":"AdminNetworkPolicy","metadata":{"name":"a"},"spec":{"priority":5,"subject":{"namespaces":{}}}}`))
	if err != nil || p.Name != "a" || p.Kind != "AdminNetworkPolicy" {
		t.Errorf("Decode = %+v, %v", p, err)
	}
	for doc, want := range map[string]string{
		"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec: {priority: 5, subject: {namespaces: {}}, extra: 1}\n": "unknown field",
		"apiVersion: v1\nkind: Pod\n": "not an admin policy",
	} {
		if _, err := Decode([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) error %v, want %q", doc, err, want)
		}
	}
}
