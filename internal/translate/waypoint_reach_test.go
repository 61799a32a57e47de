package translate

import (
	"cmp"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// TestWaypointReaches: where the policies generated for a pod may let a
// waypoint in at its ztunnel, which decides whether a service port that
// reaches another target on it can be bound exactly.
func TestWaypointReaches(t *testing.T) {
	const anp = `{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: a}, spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: ACTION, from: [{namespaces: {}}], ports: [{portNumber: {protocol: TCP, port: 8081}}]}]}}`
	cases := []struct {
		name  string
		pod   string // the pod's fields, as YAML
		nps   string // the namespace's NetworkPolicies, as YAML
		admin string // an admin policy, as YAML
		port  int32
		reach bool
		// action of the admin policy's rule; Allow when empty.
		action string
	}{
		{name: "isolated by no NetworkPolicy", port: 8081, reach: true},
		{name: "a rule without ports", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{}]}}]`, port: 8081, reach: true},
		{name: "a rule of another port", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}]}]}}]`, port: 8081},
		{name: "a rule of that port, of another NetworkPolicy", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}]}]}}, {metadata: {name: b, namespace: shop}, spec: {podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 8000, endPort: 9000}]}]}}]`, port: 8081, reach: true},
		{name: "a named port that is that port on the pod", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: http}]}]}}]`, port: 8081, reach: true},
		{name: "a named port that is another port on the pod", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: metrics}]}]}}]`, port: 8081},
		{name: "UDP only", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8081, protocol: UDP}]}]}}]`, port: 8081},
		{name: "a NetworkPolicy of another pod", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}]}]}}, {metadata: {name: b, namespace: shop}, spec: {podSelector: {matchLabels: {app: db}}, ingress: [{}]}}]`, port: 8081},
		{name: "a NetworkPolicy that does not compile", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}], from: [{ipBlock: {cidr: nonsense}}]}]}}]`, port: 8081, reach: true},
		{name: "an admin Allow of that port", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}]}]}}]`, admin: anp, port: 8081, reach: true},
		{name: "an admin Deny of that port", nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}]}]}}]`, admin: anp, port: 8081, action: "Deny"},
		{name: "a pod with a sidecar", pod: `{sidecar: true}`, nps: `[{metadata: {name: a, namespace: shop}, spec: {podSelector: {}, ingress: [{ports: [{port: 8080}]}]}}]`, port: 8081, reach: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := Pod{Namespace: "shop", Name: "web-0", Labels: map[string]string{"app": "web"}, ServiceAccount: "web", Phase: "Running", IP: netip.MustParseAddr("10.1.0.2"),
				Ports: []ContainerPort{{Name: "http", Port: 8081}, {Name: "metrics", Port: 9090}}}
			if tc.pod != "" {
				if err := yaml.Unmarshal([]byte(tc.pod), &pod); err != nil {
					t.Fatal(err)
				}
			}
			s := Snapshot{Namespaces: []Namespace{{Name: "shop", Labels: map[string]string{labelMetadataName: "shop", "istio.io/dataplane-mode": "ambient"}}}, Pods: []Pod{pod}}
			if tc.nps != "" {
				var nps []networkingv1.NetworkPolicy
				if err := yaml.Unmarshal([]byte(tc.nps), &nps); err != nil {
					t.Fatal(err)
				}
				s.NetworkPolicies = nps
			}
			if tc.admin != "" {
				raw, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(tc.admin, "ACTION", cmp.Or(tc.action, "Allow"))))
				if err != nil {
					t.Fatal(err)
				}
				p, err := adminpolicy.Decode(json.RawMessage(raw))
				if err != nil {
					t.Fatal(err)
				}
				s.AdminPolicies = []adminpolicy.Policy{p}
			}
			idx := buildIndex(s)
			p := idx.namespaces["shop"].pods[0]
			if got := idx.waypointReaches(p, tc.port); got != tc.reach {
				t.Errorf("waypointReaches(%s, %d) = %t, want %t", p.pod.Name, tc.port, got, tc.reach)
			}
		})
	}
}
