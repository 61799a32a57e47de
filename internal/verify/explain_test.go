package verify

import (
	"slices"
	"strings"
	"testing"
)

// differenceSummary is what a test asserts about one difference.
type differenceSummary struct {
	dir   Direction
	expl  string // explanation type, "" when unexplained
	from  string // sources, as describe writes them
	to    string
	ports string
}

func summarize(r Result) []differenceSummary {
	var out []differenceSummary
	for _, d := range r.Differences {
		s := differenceSummary{dir: d.Direction, from: podSetNames(d.Sources), to: podSetNames(d.Destinations), ports: portsOf(d.Ports...).String()}
		if d.Explanation != nil {
			s.expl = d.Explanation.Type
		}
		out = append(out, s)
	}
	return out
}

func podSetNames(s PodSet) string {
	var names []string
	for _, ns := range s.AllOf {
		names = append(names, ns+"/*")
	}
	for _, p := range s.Pods {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	var ranges []string
	for _, r := range s.Addresses {
		ranges = append(ranges, r.String())
	}
	return join(names) + strings.Join(ranges, "; ")
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func assertDifferences(t *testing.T, r Result, want []differenceSummary) {
	t.Helper()
	got := summarize(r)
	if !slices.Equal(got, want) {
		t.Errorf("differences:\n got %+v\nwant %+v", got, want)
	}
}

const twoNamespaces = `
namespaces:
- {name: shop}
- {name: ops}
pods:
- {namespace: shop, name: web, labels: {app: web}, serviceAccount: shared, sidecar: true, ip: 10.0.0.1}
- {namespace: shop, name: batch, labels: {app: batch}, serviceAccount: shared, sidecar: true, ip: 10.0.0.2}
- {namespace: shop, name: db, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.0.0.3}
- {namespace: ops, name: web, labels: {app: web}, serviceAccount: web, sidecar: true, ip: 10.0.1.1}
- {namespace: ops, name: batch, labels: {app: batch}, serviceAccount: batch, sidecar: true, ip: 10.0.1.2}
- {namespace: ops, name: db, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.0.1.3}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
- metadata: {name: db, namespace: ops}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
`

// A finding explains a difference only at its own policy's pods, for its
// own ServiceAccount, on its own ports: the SharedIdentity of shop/db
// explains batch reaching shop/db on 5432, and nothing else.
func TestFindingsExplainOnlyTheirOwnObjects(t *testing.T) {
	c := readCluster(t, twoNamespaces+`
authorizationPolicies:
- metadata: {name: netpol-db, namespace: shop}
  spec:
    selector: {matchLabels: {app: db}}
    rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/shared]}}], to: [{operation: {ports: ["5432", "5433"]}}]}]
- metadata: {name: netpol-db, namespace: ops}
  spec:
    selector: {matchLabels: {app: db}}
    rules: [{from: [{source: {principals: [cluster.local/ns/ops/sa/web, cluster.local/ns/ops/sa/batch]}}], to: [{operation: {ports: ["5432"]}}]}]
`)
	assertDifferences(t, Verify(c.existing()), []differenceSummary{
		// Not the SharedIdentity's ServiceAccount, namespace or port.
		{dir: IstioAllowsMore, from: "ops/batch", to: "ops/db", ports: "5432"},
		{dir: IstioAllowsMore, from: "shop/batch,shop/web", to: "shop/db", ports: "5433"},
		{dir: IstioAllowsMore, expl: "SharedIdentity", from: "shop/batch", to: "shop/db", ports: "5432"},
	})
}

// With --existing, a difference the generated policies share is explained
// by its finding, and one they do not share deviates.
func TestExistingDeviates(t *testing.T) {
	c := readCluster(t, twoNamespaces+`
authorizationPolicies:
- metadata: {name: wide, namespace: ops}
  spec: {selector: {matchLabels: {app: db}}, rules: [{from: [{source: {namespaces: [ops]}}]}]}
- metadata: {name: netpol-db, namespace: shop}
  spec:
    selector: {matchLabels: {app: db}}
    rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/shared]}}], to: [{operation: {ports: ["5432"]}}]}]
`)
	r := Verify(c.existing())
	for _, d := range r.Differences {
		if d.Explained == d.Deviates {
			t.Errorf("explained %t, deviates %t: %s", d.Explained, d.Deviates, describe(d))
		}
	}
	if r.Stats.Unexplained == 0 || r.Stats.Explained != 1 {
		t.Errorf("stats %+v", r.Stats)
	}
}

// Dry-run: differences that only dry-run policies make are marked; those
// that do not depend on them are not.
func TestDryRunMarked(t *testing.T) {
	c := readCluster(t, `
namespaces:
- {name: shop, annotations: {netpol2authz.io/mode: dry-run}}
pods:
- {namespace: shop, name: web, labels: {app: web}, serviceAccount: shared, sidecar: true}
- {namespace: shop, name: batch, labels: {app: batch}, serviceAccount: shared, sidecar: true}
- {namespace: shop, name: db, labels: {app: db}, serviceAccount: db, sidecar: true}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
`)
	r := Verify(c.generated())
	// Today nothing is enforced and Istio allows everything; as enforced,
	// the dry-run policy still lets batch in through the shared identity.
	// Either way batch reaching db is a difference: not a dry-run one.
	assertDifferences(t, r, []differenceSummary{{dir: IstioAllowsMore, expl: "SharedIdentity", from: "shop/batch", to: "shop/db", ports: "5432"}})
	if r.Differences[0].DryRun {
		t.Errorf("marked dry-run: %s", describe(r.Differences[0]))
	}

	// A dry-run DENY that would cut web off: a dry-run difference. (It
	// also shuts batch out, as the NetworkPolicy does: as if enforced,
	// that is no difference any more.)
	c.AuthorizationPolicies = append(generated(c.generated().Translation), readCluster(t, `
authorizationPolicies:
- metadata: {name: no-web, namespace: shop, annotations: {istio.io/dry-run: "true"}}
  spec: {selector: {matchLabels: {app: db}}, action: DENY, rules: [{from: [{source: {principals: ["*/sa/shared"]}}]}]}
`).AuthorizationPolicies...)
	r = Verify(c.existing())
	assertDifferences(t, r, []differenceSummary{{dir: IstioDeniesMore, from: "shop/web", to: "shop/db", ports: "5432"}})
	if d := r.Differences[0]; !d.DryRun || !d.Deviates {
		t.Errorf("want a dry-run, deviating difference: %s", describe(d))
	}
}

// -n limits the destinations checked, not the sources.
func TestNamespaceScope(t *testing.T) {
	c := readCluster(t, twoNamespaces)
	in := c.generated()
	in.Namespaces = []string{"ops"}
	r := Verify(in)
	if len(r.Differences) != 0 || r.Stats.DestinationsChecked == r.Stats.DestinationClasses {
		t.Errorf("ops has no difference, shop is not checked: got %+v", summarize(r))
	}
	in.Namespaces = []string{"shop"}
	assertDifferences(t, Verify(in), []differenceSummary{{dir: IstioAllowsMore, expl: "SharedIdentity", from: "shop/batch", to: "shop/db", ports: "5432"}})
}

// Destinations with the same differing sources and ports are one
// difference; connections count pod pairs.
func TestGrouping(t *testing.T) {
	c := readCluster(t, `
pods:
- {namespace: shop, name: db-0, labels: {app: db, shard: "0"}, sidecar: true}
- {namespace: shop, name: db-1, labels: {app: db, shard: "1"}, sidecar: true}
- {namespace: shop, name: a, sidecar: true}
- {namespace: shop, name: b, sidecar: true}
networkPolicies:
- metadata: {name: db-0, namespace: shop}
  spec: {podSelector: {matchLabels: {shard: "0"}}, policyTypes: [Ingress]}
- metadata: {name: db-1, namespace: shop}
  spec: {podSelector: {matchLabels: {shard: "1"}}, policyTypes: [Ingress]}
authorizationPolicies:
- metadata: {name: wide, namespace: shop}
  spec: {selector: {matchLabels: {app: db}}, rules: [{to: [{operation: {ports: ["80"]}}]}]}
`)
	r := Verify(c.existing())
	assertDifferences(t, r, []differenceSummary{
		{dir: IstioAllowsMore, from: "shop/*", to: "shop/db-0,shop/db-1", ports: "80"},
		{dir: IstioAllowsMore, from: "0.0.0.0/0; ::/0", to: "shop/db-0,shop/db-1", ports: "80"},
	})
	if got := r.Differences[0].Connections; got != 8 {
		t.Errorf("connections = %d, want 4 sources × 2 destinations", got)
	}
}

// Notes say where a policy is read differently from its text, NetworkPolicies
// first, then by namespace and name.
func TestNotes(t *testing.T) {
	c := readCluster(t, `
pods:
- {namespace: shop, name: db, sidecar: true}
networkPolicies:
- metadata: {name: invalid, namespace: shop}
  spec: {podSelector: {matchLabels: {"bad key!": x}}}
authorizationPolicies:
- metadata: {name: http, namespace: shop}
  spec: {rules: [{to: [{operation: {methods: [GET], ports: ["80", "http"]}}]}]}
- metadata: {name: waypoint, namespace: shop}
  spec: {targetRefs: [{kind: Service, group: "", name: db}]}
- metadata: {name: sni, namespace: shop}
  spec: {action: DENY, rules: [{when: [{key: connection.sni, values: [x]}, {key: "request.headers[a]", values: [b]}]}]}
`)
	var got []string
	for _, n := range Verify(c.existing()).Notes {
		got = append(got, n.Kind+" "+n.Name+": "+n.Message)
	}
	want := []string{
		"NetworkPolicy invalid: the API server would reject it (see its InvalidPolicy finding), so verify leaves it out",
		"AuthorizationPolicy http: spec.rules[0] uses fields TCP traffic does not carry (methods): Istio ignores this ALLOW rule for TCP",
		`AuthorizationPolicy http: spec.rules[0]: port "http" is not a port number and matches nothing`,
		"AuthorizationPolicy sni: spec.rules[0] uses fields TCP traffic does not carry (when request.headers[a]): Istio leaves them out for TCP, so this DENY rule matches more",
		"AuthorizationPolicy sni: spec.rules[0]: verify does not evaluate condition connection.sni and treats it as matching",
		"AuthorizationPolicy waypoint: it is bound with targetRefs to Service/shop/db, which no waypoint here serves (a gateway, or a Service without waypoint), so verify does not evaluate it",
	}
	if !slices.Equal(got, want) {
		t.Errorf("notes:\n%s\nwant:\n%s", join(got), join(want))
	}
}

// Where the source's egress denies a connection Istio allows, the egress
// finding explains it, even when a finding about the destination's
// ingress fits too (found by FuzzTranslateVerify).
func TestEgressDenialExplainedByEgress(t *testing.T) {
	c := readCluster(t, `
options: {defaultFidelity: strict}
pods:
- {namespace: b, name: p, sidecar: true}
networkPolicies:
- metadata: {name: np, namespace: b}
  spec:
    podSelector: {}
    policyTypes: [Ingress, Egress]
    ingress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}, {podSelector: {}}]}]
`)
	in := c.generated()
	var types []string
	for _, f := range in.Translation.Translations[0].Findings {
		types = append(types, string(f.Type))
	}
	if !slices.Contains(types, "NamespaceUnknown") {
		t.Fatalf("the case needs a NamespaceUnknown finding; got %v", types)
	}
	assertDifferences(t, Verify(in), []differenceSummary{{dir: IstioAllowsMore, expl: "EgressNotTranslated", from: "b/*", to: "b/*", ports: "1-65535"}})
}

// An identity pending review is left out of the generated policies: what
// the NetworkPolicy allows it is denied, explained by its IdentityPending
// finding, for its own sources, at the policy's pods and ports only. A
// pending ServiceAccount loses its pods outside the mesh too (their
// addresses are left out with its principal); a pending namespace, all
// its pods. With the identities approved, or in follow mode, nothing
// differs.
func TestIdentityPendingExplains(t *testing.T) {
	const cluster = `
namespaces:
- {name: shop}
- {name: ops, labels: {team: ops}}
- {name: tools, labels: {team: ops}}
pods:
- {namespace: shop, name: db, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.0.0.1}
- {namespace: shop, name: web, labels: {role: client}, serviceAccount: web, sidecar: true, ip: 10.0.0.2}
- {namespace: shop, name: report-0, labels: {role: client}, serviceAccount: report, sidecar: true, ip: 10.0.0.3}
- {namespace: shop, name: report-1, labels: {role: client}, serviceAccount: report, ip: 10.0.0.4}
- {namespace: ops, name: prom, serviceAccount: prom, sidecar: true, ip: 10.0.1.1}
- {namespace: tools, name: debug, serviceAccount: debug, sidecar: true, ip: 10.0.2.1}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - {from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 5432}]}
    - {from: [{namespaceSelector: {matchLabels: {team: ops}}}], ports: [{port: 9187}]}
`
	c := readCluster(t, cluster+`
approvals:
- {namespace: shop, networkPolicy: db, identities: [serviceaccount/shop/web, namespace/ops]}
`)
	in := c.generated()
	r := Verify(in)
	assertDifferences(t, r, []differenceSummary{
		{dir: IstioDeniesMore, expl: "IdentityPending", from: "shop/report-0,shop/report-1", to: "shop/db", ports: "5432"},
		{dir: IstioDeniesMore, expl: "IdentityPending", from: "tools/*", to: "shop/db", ports: "9187"},
	})
	for _, d := range r.Differences {
		if d.Explanation.NetworkPolicy != "shop/db" || d.Explanation.By != ByTranslation || d.Explanation.Severity != "Warning" {
			t.Errorf("explanation %+v", d.Explanation)
		}
	}
	if want := "run 'netpol2authz approve -n shop db serviceaccount/shop/report'"; !strings.Contains(r.Differences[0].Explanation.Message, want) {
		t.Errorf("explanation does not say %q: %s", want, r.Differences[0].Explanation.Message)
	}
	if want := "namespace tools is pending review"; !strings.Contains(r.Differences[1].Explanation.Message, want) {
		t.Errorf("explanation does not say %q: %s", want, r.Differences[1].Explanation.Message)
	}
	for _, msg := range checkPromises(in, r) {
		t.Error(msg)
	}
	for _, msg := range checkAgainstReference(in, r) {
		t.Error(msg)
	}

	// Approved, or followed: no difference.
	c.Approvals[0].Identities = append(c.Approvals[0].Identities, "serviceaccount/shop/report", "namespace/tools")
	assertDifferences(t, Verify(c.generated()), nil)
	c = readCluster(t, cluster+`
approvals:
- {namespace: shop, networkPolicy: db, identities: []}
options: {defaultIdentity: follow}
`)
	assertDifferences(t, Verify(c.generated()), nil)
}
