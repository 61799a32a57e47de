package verify

import (
	"strings"
	"testing"
)

// The houses of the network-policy-api conformance suite: a pod per
// namespace, labelled conformance-house, serving TCP 80 (named web) and
// 8080. Admin policies are added per test.
const houses = `
namespaces:
- {name: gryffindor, labels: {conformance-house: gryffindor}}
- {name: slytherin, labels: {conformance-house: slytherin}}
- {name: hufflepuff, labels: {conformance-house: hufflepuff}}
pods:
- {namespace: gryffindor, name: harry-potter-0, labels: {conformance-house: gryffindor}, serviceAccount: default, sidecar: true, ip: 10.0.0.1, ports: [{name: web, port: 80}, {port: 8080}]}
- {namespace: slytherin, name: draco-malfoy-0, labels: {conformance-house: slytherin}, serviceAccount: default, sidecar: true, ip: 10.0.0.2, ports: [{name: web, port: 80}, {port: 8080}]}
- {namespace: hufflepuff, name: cedric-diggory-0, labels: {conformance-house: hufflepuff}, serviceAccount: default, sidecar: true, ip: 10.0.0.3, ports: [{name: web, port: 80}, {port: 8080}]}
`

// allowSlytherin is the conformance suite's NetworkPolicy
// allow-gress-from-to-slytherin-to-gryffindor.
const allowSlytherin = `
networkPolicies:
- metadata: {name: allow-gress-from-to-slytherin-to-gryffindor, namespace: gryffindor}
  spec:
    podSelector: {}
    policyTypes: [Ingress, Egress]
    ingress: [{from: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]
    egress: [{to: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]
`

// passExample and baselineDefault are the conformance suite's
// api_integration policies (ACTION: Deny, then Pass).
const passExample = `
- apiVersion: policy.networking.k8s.io/v1beta1
  kind: ClusterNetworkPolicy
  metadata: {name: pass-example}
  spec:
    tier: Admin
    priority: 10
    subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
    ingress: [{name: ingress-from-slytherin, action: ACTION, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]
    egress: [{name: egress-to-slytherin, action: ACTION, to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]
`
const baselineDefault = `
- apiVersion: policy.networking.k8s.io/v1beta1
  kind: ClusterNetworkPolicy
  metadata: {name: default}
  spec:
    tier: Baseline
    priority: 10
    subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
    ingress: [{action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]
    egress: [{action: Deny, to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]
`

// TestStackSemantics evaluates the whole stack connection by connection,
// as the conformance tests poke servers.
func TestStackSemantics(t *testing.T) {
	cases := map[string]struct {
		np     bool
		admin  string
		allow  []string
		denied []string
	}{
		"admin Deny beats the NetworkPolicy, both directions": {
			np: true, admin: strings.ReplaceAll(passExample, "ACTION", "Deny") + baselineDefault,
			denied: []string{"slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0:80", "slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0:8080", "gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0:80"},
		},
		"Pass leaves it to the NetworkPolicy": {
			np: true, admin: strings.ReplaceAll(passExample, "ACTION", "Pass") + baselineDefault,
			allow:  []string{"slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0:80", "gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0:8080"},
			denied: []string{"hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-0:80"},
		},
		"Pass without NetworkPolicy: the baseline denies": {
			admin:  strings.ReplaceAll(passExample, "ACTION", "Pass") + baselineDefault,
			denied: []string{"slytherin/draco-malfoy-0 -> gryffindor/harry-potter-0:80", "gryffindor/harry-potter-0 -> slytherin/draco-malfoy-0:8080"},
			allow:  []string{"hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-0:80"},
		},
		"Accept admits what the NetworkPolicy denies, on the named port only": {
			np: true,
			admin: `
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: hufflepuff-web}
  spec:
    priority: 3
    subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
    ingress: [{action: Allow, from: [{namespaces: {matchLabels: {conformance-house: hufflepuff}}}], ports: [{namedPort: web}]}]
`,
			allow:  []string{"hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-0:80"},
			denied: []string{"hufflepuff/cedric-diggory-0 -> gryffindor/harry-potter-0:8080"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			text := houses
			if tc.np {
				text += allowSlytherin
			}
			c := readCluster(t, text+"adminPolicies:"+tc.admin)
			e := newEngine(c.generated())
			for want, conns := range map[bool][]string{true: tc.allow, false: tc.denied} {
				for _, s := range conns {
					strict, loose := e.npAllows(t, parseConnection(t, s))
					if strict != want || loose != want {
						t.Errorf("%s: allowed %v/%v, want %v", s, strict, loose, want)
					}
				}
			}
		})
	}
}

// ingressOnly is allowSlytherin without its egress.
const ingressOnly = `
networkPolicies:
- metadata: {name: allow-from-slytherin, namespace: gryffindor}
  spec:
    podSelector: {}
    ingress: [{from: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]
`

// The same cluster, verified: what the translation writes for the admin
// policies, and what it reports, explain every difference.
func TestAdminDifferencesExplained(t *testing.T) {
	cases := map[string]struct {
		fidelity string
		admin    string
		want     []differenceSummary
	}{
		// An admin Allow the NetworkPolicy does not give: generated exactly.
		"Allow, permissive": {fidelity: "permissive", admin: `
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: hufflepuff-web}
  spec:
    priority: 3
    subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
    ingress: [{action: Allow, from: [{namespaces: {matchLabels: {conformance-house: hufflepuff}}}], ports: [{namedPort: web}]}]
`},
		// An admin Deny of what the NetworkPolicy allows: permissive does
		// not deny it; strict does, exactly.
		"Deny, permissive": {fidelity: "permissive", admin: strings.ReplaceAll(passExample, "ACTION", "Deny"), want: []differenceSummary{
			{dir: IstioAllowsMore, expl: "AdminPolicyDenies", from: "slytherin/*", to: "gryffindor/*", ports: "1-65535"},
			{dir: IstioAllowsMore, expl: AdminEgressNotTranslated, from: "gryffindor/*", to: "slytherin/*", ports: "1-65535"},
		}},
		"Deny, strict": {fidelity: "strict", admin: strings.ReplaceAll(passExample, "ACTION", "Deny"), want: []differenceSummary{
			{dir: IstioAllowsMore, expl: AdminEgressNotTranslated, from: "gryffindor/*", to: "slytherin/*", ports: "1-65535"},
		}},
		// The baseline where no NetworkPolicy selects the pod: nothing is
		// generated there.
		"baseline": {fidelity: "permissive", admin: `
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: BaselineAdminNetworkPolicy
  metadata: {name: default}
  spec:
    subject: {namespaces: {matchLabels: {conformance-house: hufflepuff}}}
    ingress: [{action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]
`, want: []differenceSummary{
			{dir: IstioAllowsMore, expl: AdminPolicyNotTranslated, from: "slytherin/*", to: "hufflepuff/*", ports: "1-65535"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			text := strings.Replace(houses, "{name: gryffindor, labels", "{name: gryffindor, annotations: {netpol2authz.io/fidelity: "+tc.fidelity+"}, labels", 1)
			c := readCluster(t, text+ingressOnly+"adminPolicies:"+tc.admin)
			assertDifferences(t, Verify(c.generated()), tc.want)
		})
	}
}
