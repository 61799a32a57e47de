package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

func TestNamespaces(t *testing.T) {
	res := decodeYAML(t, Options{}, "in.yaml", `
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}, annotations: {netpol2authz.io/mode: dry-run}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
    - namespaceSelector:
        matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [logging, shop]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  template: {metadata: {labels: {app: d}}, spec: {containers: [{name: d, image: d}]}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa, namespace: not-referenced}
`)
	want := []translate.Namespace{
		{Name: "default", Labels: map[string]string{"kubernetes.io/metadata.name": "default"}, Partial: true},
		{Name: "logging", Labels: map[string]string{"kubernetes.io/metadata.name": "logging"}, Partial: true},
		{Name: "monitoring", Labels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}, Partial: true},
		{
			Name:        "shop",
			Labels:      map[string]string{"kubernetes.io/metadata.name": "shop", "team": "a"},
			Annotations: map[string]string{"netpol2authz.io/mode": "dry-run"},
		},
	}
	if diff := cmp.Diff(want, res.Snapshot.Namespaces, cmpOpts); diff != "" {
		t.Errorf("namespaces (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"default", "logging", "monitoring"}, res.Stats.PartialNamespaces); diff != "" {
		t.Errorf("PartialNamespaces (-want,+got):\n%s", diff)
	}
	if len(res.ServiceAccounts) != 1 || res.ServiceAccounts[0].String() != "not-referenced/sa" {
		t.Errorf("ServiceAccounts = %v", res.ServiceAccounts)
	}
}

func TestMeshConfig(t *testing.T) {
	meshCM := func(ns, mesh string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: " + ns + "}\ndata:\n  mesh: |\n" + mesh
	}
	tests := map[string]struct {
		o        Options
		input    string
		want     translate.MeshSettings
		wantMesh MeshConfig
		skipped  int
	}{
		"no mesh config": {
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
			want:  translate.MeshSettings{RootNamespace: "istio-system"},
		},
		"trust domain, root namespace defaults to the control-plane namespace": {
			input:    meshCM("istio-system", "    trustDomain: prod.example\n    accessLogFile: /dev/stdout\n"),
			want:     translate.MeshSettings{TrustDomain: "prod.example", RootNamespace: "istio-system"},
			wantMesh: MeshConfig{Found: true, Origin: "in.yaml:1 document 1", TrustDomain: "prod.example"},
		},
		"root namespace differs from the control-plane namespace": {
			input:    meshCM("istio-system", "    rootNamespace: istio-config\n"),
			want:     translate.MeshSettings{RootNamespace: "istio-config"},
			wantMesh: MeshConfig{Found: true, Origin: "in.yaml:1 document 1", RootNamespace: "istio-config"},
		},
		"other control-plane namespace": {
			o:        Options{IstioNamespace: "mesh"},
			input:    meshCM("mesh", "    trustDomain: td\n"),
			want:     translate.MeshSettings{TrustDomain: "td", RootNamespace: "mesh"},
			wantMesh: MeshConfig{Found: true, Origin: "in.yaml:1 document 1", TrustDomain: "td"},
		},
		"a ConfigMap istio elsewhere is skipped": {
			input:   meshCM("default", "    trustDomain: td\n"),
			want:    translate.MeshSettings{RootNamespace: "istio-system"},
			skipped: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := decodeYAML(t, tc.o, "in.yaml", tc.input)
			if diff := cmp.Diff(tc.want, res.Snapshot.Mesh); diff != "" {
				t.Errorf("Mesh (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantMesh, res.Mesh); diff != "" {
				t.Errorf("MeshConfig (-want,+got):\n%s", diff)
			}
			if got := res.Stats.Skipped["v1/ConfigMap"]; got != tc.skipped {
				t.Errorf("skipped ConfigMaps = %d, want %d", got, tc.skipped)
			}
		})
	}
}

// The same objects give the same Snapshot, whatever the order of the inputs.
func TestDecodeIsDeterministic(t *testing.T) {
	docs := []string{
		"a.yaml", deployment,
		"b.yaml", podOfJob + "---\n" + cronJob,
		"c.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n",
		"d.yaml", npHeader + "spec: {podSelector: {}}\n---\n" + "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: shop}\nspec: {podSelector: {}}\n",
		"e.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: zz, namespace: aa}\n",
	}
	first, err := Decode(inputs(docs...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var reversed []string
	for i := len(docs) - 2; i >= 0; i -= 2 {
		reversed = append(reversed, docs[i], docs[i+1])
	}
	second, err := Decode(inputs(reversed...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Snapshot, second.Snapshot, cmpOpts); diff != "" {
		t.Errorf("Snapshot depends on input order (-first,+second):\n%s", diff)
	}
}
