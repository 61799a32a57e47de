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

// anpFromHufflepuff allows hufflepuff's web pods into gryffindor on 8080,
// a port ingressOnly's rule does not name.
const anpFromHufflepuff = `
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: hufflepuff-8080}
  spec:
    priority: 3
    subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
    ingress:
    - action: Allow
      from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: hufflepuff}}, podSelector: {matchLabels: {app: web}}}}]
      ports: [{portNumber: {protocol: TCP, port: 8080}}]
`

// The findings an admin Allow rule's peers raise on the NetworkPolicy's
// translation (SourceNotInMesh, SharedIdentity) explain the differences on
// the admin rule's ports, which the NetworkPolicy's own rules need not
// name.
func TestAdminPeerFindingsExplained(t *testing.T) {
	const onlyFrom = `
networkPolicies:
- metadata: {name: only-from-slytherin, namespace: gryffindor}
  spec:
    podSelector: {}
    ingress: [{from: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}], ports: [{port: 80}]}]
`
	cases := map[string]struct {
		fidelity string
		pods     string
		want     []differenceSummary
	}{
		"source not in mesh, strict": {fidelity: "strict", pods: `
- {namespace: hufflepuff, name: ernie-0, labels: {app: web}, serviceAccount: ernie, ip: 10.0.0.4}
`, want: []differenceSummary{
			{dir: IstioDeniesMore, expl: "SourceNotInMesh", from: "hufflepuff/ernie-0", to: "gryffindor/*", ports: "8080"},
		}},
		"shared identity, strict": {fidelity: "strict", pods: `
- {namespace: hufflepuff, name: ernie-0, labels: {app: web}, serviceAccount: default, sidecar: true, ip: 10.0.0.4}
`, want: []differenceSummary{
			{dir: IstioDeniesMore, expl: "SharedIdentity", from: "hufflepuff/ernie-0", to: "gryffindor/*", ports: "8080"},
		}},
		"shared identity, permissive": {fidelity: "permissive", pods: `
- {namespace: hufflepuff, name: ernie-0, labels: {app: web}, serviceAccount: default, sidecar: true, ip: 10.0.0.4}
`, want: []differenceSummary{
			{dir: IstioAllowsMore, expl: "SharedIdentity", from: "hufflepuff/cedric-diggory-0", to: "gryffindor/*", ports: "8080"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			text := strings.Replace(houses, "{name: gryffindor, labels", "{name: gryffindor, annotations: {netpol2authz.io/fidelity: "+tc.fidelity+"}, labels", 1)
			c := readCluster(t, text+tc.pods+onlyFrom+anpFromHufflepuff)
			r := Verify(c.generated())
			assertDifferences(t, r, tc.want)
			for _, msg := range append(checkPromises(c.generated(), r), checkAgainstReference(c.generated(), r)...) {
				t.Error(msg)
			}
		})
	}
}

// What strict's DENY and permissive's ALLOW for an admin rule reach beyond
// the rule's own sources is explained by the finding that says so:
// principals and addresses shared with pods the rule does not select,
// and a rule widened to every port that admits sources outside the mesh
// by any address.
func TestAdminWideningExplained(t *testing.T) {
	cases := map[string]string{
		// The golden case admin-deny: report-0 shares batch-0's
		// ServiceAccount, which the DENY names.
		"strict DENY, shared principal": `
namespaces: [{name: shop, annotations: {netpol2authz.io/fidelity: strict}}]
pods:
- {namespace: shop, name: db-0, labels: {app: db}, serviceAccount: db, sidecar: true}
- {namespace: shop, name: web-0, labels: {app: web}, serviceAccount: web, sidecar: true}
- {namespace: shop, name: batch-0, labels: {app: batch, role: batch}, serviceAccount: jobs, sidecar: true}
- {namespace: shop, name: report-0, labels: {app: report, role: batch}, serviceAccount: jobs, sidecar: true}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {role: batch}}}, {podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: no-batch-to-db}
  spec:
    priority: 20
    subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
    ingress: [{action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: batch}}}}], ports: [{portRange: {start: 5430, end: 5440}}]}]
`,
		// batch-0 is outside the mesh, denied by its address, which
		// report-0 (in the mesh, pending) still holds.
		"strict DENY, shared address": `
namespaces: [{name: shop, annotations: {netpol2authz.io/fidelity: strict}}]
pods:
- {namespace: shop, name: db-0, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.1.0.1}
- {namespace: shop, name: batch-0, labels: {app: batch}, serviceAccount: jobs, ip: 10.1.0.3}
- {namespace: shop, name: report-0, labels: {app: report}, serviceAccount: report, sidecar: true, phase: Pending, ip: 10.1.0.3}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {}}], ports: [{port: 5432}]}]
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: no-batch-to-db}
  spec:
    priority: 20
    subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
    ingress: [{action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: batch}}}}]}]
`,
		// The range is past the cap, so permissive's ALLOW matches every
		// port, and the backup workload template, outside the mesh with
		// no known address, is admitted from any address.
		"permissive ALLOW, every port, any address": `
namespaces:
- {name: shop, annotations: {netpol2authz.io/fidelity: permissive}}
- {name: ops}
pods:
- {namespace: shop, name: db-0, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.1.0.1}
- {namespace: shop, name: web-0, labels: {app: web}, serviceAccount: web, sidecar: true, ip: 10.1.0.2}
- {namespace: ops, name: backup, template: Deployment/ops/backup, labels: {app: backup}, serviceAccount: backup}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: ops-high-ports}
  spec:
    priority: 10
    subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
    ingress: [{action: Allow, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: ops}}}], ports: [{portRange: {start: 8000, end: 38000}}]}]
`,
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			c := readCluster(t, text)
			in := c.generated()
			r := Verify(in)
			if r.Stats.Explained == 0 {
				t.Error("no difference: the case checks nothing")
			}
			for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
				t.Error(msg)
			}
		})
	}
}

// Strict cannot deny an admin Deny's source that is a workload template
// outside the mesh (no identity, no known address): no DENY policy, and
// the finding that says so explains what Istio lets through.
func TestAdminDenyOfUnknownAddressesExplained(t *testing.T) {
	c := readCluster(t, `
namespaces:
- {name: shop, annotations: {netpol2authz.io/fidelity: strict}}
- {name: jobs}
pods:
- {namespace: shop, name: db-0, labels: {app: db}, serviceAccount: db, ip: 10.1.0.2, sidecar: true, phase: Running}
- {namespace: jobs, name: batch, labels: {app: batch}, template: Deployment/jobs/batch}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec: {podSelector: {matchLabels: {app: db}}, ingress: [{}]}
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: no-batch}
  spec:
    priority: 1
    subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
    ingress: [{action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: batch}}}}]}]
`)
	assertDifferences(t, Verify(c.generated()), []differenceSummary{
		{dir: IstioAllowsMore, expl: "AdminPolicyDenies", from: "jobs/*", to: "shop/*", ports: "1-65535"},
	})
}
