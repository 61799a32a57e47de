package verify

import (
	"net/netip"
	"slices"
	"testing"
)

// The addresses outside the cluster are cut by every CIDR named into parts
// that each CIDR contains whole or not at all: a CIDR minus the CIDRs
// directly inside it, each tried at an address that is no pod's.
func TestExternalParts(t *testing.T) {
	prefixes := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	pods := map[netip.Addr]bool{}
	for _, a := range []string{"10.0.0.0", "10.0.0.1", "10.0.0.5", "10.1.0.0", "10.1.0.1", "10.1.0.2", "10.1.0.3", "fd00::"} {
		pods[netip.MustParseAddr(a)] = true
	}
	tests := []struct {
		name  string
		cidrs []netip.Prefix
		want  []string // "range @ representative"
	}{{
		name: "nothing named: the two families",
		want: []string{"0.0.0.0/0 @ 0.0.0.0", "::/0 @ ::"},
	}, {
		name:  "a CIDR with excepts, named twice, not masked",
		cidrs: prefixes("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16", "10.9.9.9/8"),
		want: []string{
			"0.0.0.0/0 except 10.0.0.0/8 @ 0.0.0.0",
			// 10.0.0.0 and 10.0.0.1 are pods'.
			"10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16 @ 10.0.0.2",
			"10.1.0.0/16 @ 10.1.0.4",
			"10.2.0.0/16 @ 10.2.0.0",
			"::/0 @ ::",
		},
	}, {
		name: "a pod's address splits nothing off; another single address does",
		// 10.1.0.0/30 holds pods only: no part, but its parent says it
		// is not in its part.
		cidrs: prefixes("10.0.0.5/32", "10.0.0.6/32", "10.1.0.0/30", "0.0.0.0/0"),
		want: []string{
			"0.0.0.0/0 except 10.0.0.6/32, 10.1.0.0/30 @ 0.0.0.0",
			"10.0.0.6/32 @ 10.0.0.6",
			"::/0 @ ::",
		},
	}, {
		name:  "IPv6, to the end of the family",
		cidrs: prefixes("fd00::/8", "fd00::/16", "ffff::/16"),
		want: []string{
			"0.0.0.0/0 @ 0.0.0.0",
			"::/0 except fd00::/8, ffff::/16 @ ::",
			"fd00::/8 except fd00::/16 @ fd01::",
			"fd00::/16 @ fd00::1",
			"ffff::/16 @ ffff::",
		},
	}, {
		name:  "the whole family named, the roots once",
		cidrs: prefixes("0.0.0.0/1", "128.0.0.0/1", "::/0"),
		want: []string{
			"0.0.0.0/1 @ 0.0.0.0",
			"128.0.0.0/1 @ 128.0.0.0",
			"::/0 @ ::",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range externalParts(tc.cidrs, pods) {
				if !p.rng.Contains(p.rep) || pods[p.rep] {
					t.Errorf("%s: representative %s is not an outside address of it", p.rng, p.rep)
				}
				got = append(got, p.rng.String()+" @ "+p.rep.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("parts:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// externalAllows evaluates both policy sets for the source outside the
// cluster at addr, to a pod on a port: NetworkPolicy (both readings of
// ipBlock agree for it) and Istio (as enforced).
func (e *engine) externalAllows(t testing.TB, addr, dst string, port int32) (np, istio bool) {
	t.Helper()
	a := netip.MustParseAddr(addr)
	src := -1
	for i, c := range e.w.srcs {
		if c.external != nil && c.external.Contains(a) {
			src = i
		}
	}
	if src < e.w.extFirst {
		t.Fatalf("no external source class holds %s", addr)
	}
	d := e.w.dsts[e.pod(t, dst).dst]
	s := e.newScratch()
	e.np.verdict(e.np.at(d), port, s.npStrict, s.npLoose, s.npEgress, s.egLoose)
	if s.npStrict.has(src) != s.npLoose.has(src) {
		t.Errorf("%s: the two readings of ipBlock disagree on an outside address", addr)
	}
	e.force.verdict(e.force.at(d), port, false, s.allow, s.deny)
	return s.npStrict.has(src), s.allow.has(src)
}

const externalCluster = `
namespaces:
- {name: shop}
pods:
- {namespace: shop, name: db, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.0.0.1}
- {namespace: shop, name: web, labels: {app: web}, serviceAccount: web, sidecar: true, ip: 10.0.0.2}
- {namespace: shop, name: lb, labels: {app: lb}, serviceAccount: lb, sidecar: true, ip: "fd00::2"}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}, {podSelector: {matchLabels: {app: web}}}]
      ports: [{port: 5432}]
- metadata: {name: lb, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: lb}}
    ingress:
    - from: [{ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:bad::/48"]}}]
      ports: [{port: 443}]
- metadata: {name: web, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress: [{ports: [{port: 8080}]}]
`

// External sources, as the generated policies and as hand-written ones
// decide them: an ipBlock with except (IPv4 and IPv6) translated
// correctly; the same without its notIpBlocks; a rule without from; and
// namespaces or principals, which an outside address never presents.
func TestExternalSources(t *testing.T) {
	c := readCluster(t, externalCluster)
	in := c.generated()
	r := Verify(in)
	assertDifferences(t, r, nil)
	if got := r.Stats.ExternalSources; got != 5 {
		t.Errorf("external sources = %d, want 5 parts: 0.0.0.0/0 except 10.0.0.0/8, 10.0.0.0/8, ::/0 except 2001:db8::/32, 2001:db8::/32 except 2001:db8:bad::/48, 2001:db8:bad::/48", got)
	}
	e := newEngine(in)
	for _, tc := range []struct {
		addr, dst string
		port      int32
		want      bool
	}{
		{"203.0.113.9", "shop/db", 5432, true},
		{"203.0.113.9", "shop/db", 5433, false},
		{"10.9.9.9", "shop/db", 5432, false},    // excepted
		{"2001:db8::1", "shop/db", 5432, false}, // not in an IPv4 block
		{"2001:db8::1", "shop/lb", 443, true},
		{"2001:db8:bad::1", "shop/lb", 443, false},
		{"fd00::9", "shop/lb", 443, false},
		// A rule without from: every address, both sides.
		{"203.0.113.9", "shop/web", 8080, true},
		{"2001:db8:bad::1", "shop/web", 8080, true},
		{"10.9.9.9", "shop/web", 8081, false},
	} {
		np, istio := e.externalAllows(t, tc.addr, tc.dst, tc.port)
		if np != tc.want || istio != tc.want {
			t.Errorf("%s -> %s:%d: NetworkPolicy %t, Istio %t, want both %t", tc.addr, tc.dst, tc.port, np, istio, tc.want)
		}
	}
	for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
		t.Error(msg)
	}

	// The generated policies with the excepts dropped (ipBlocks without
	// notIpBlocks): Istio lets in the excepted ranges, from outside and,
	// on 5432, the pods in 10.0.0.0/8 that web is not (db itself).
	// Nothing explains it: the generated policies decide otherwise.
	c.AuthorizationPolicies = generated(in.Translation)
	for _, ap := range c.AuthorizationPolicies {
		for _, rule := range ap.Spec.Rules {
			for _, f := range rule.From {
				f.Source.NotIpBlocks = nil
			}
		}
	}
	r = Verify(c.existing())
	assertDifferences(t, r, []differenceSummary{
		{dir: IstioAllowsMore, from: "shop/db", to: "shop/db", ports: "5432"},
		{dir: IstioAllowsMore, from: "10.0.0.0/8", to: "shop/db", ports: "5432"},
		{dir: IstioAllowsMore, from: "2001:db8:bad::/48", to: "shop/lb", ports: "443"},
	})
	for _, d := range r.Differences {
		if d.Explained || !d.Deviates {
			t.Errorf("want unexplained and deviating: %s", describe(d))
		}
	}
	if r.Stats.Unexplained != 3 || r.Stats.UnexplainedConnections != 3 {
		t.Errorf("stats %+v: want 3 unexplained differences of one source and one destination each", r.Stats)
	}

	// Added by hand to the generated policies: any namespace, or not some
	// principal. An outside address presents neither, so the first lets
	// nothing more in from outside (web's other ports: pods only); the
	// second lets in every address but db's principal, on 443.
	c = readCluster(t, externalCluster+`
authorizationPolicies:
- metadata: {name: any-namespace, namespace: shop}
  spec:
    selector: {matchLabels: {app: web}}
    rules: [{from: [{source: {namespaces: ["*"]}}]}]
- metadata: {name: not-db, namespace: shop}
  spec:
    selector: {matchLabels: {app: lb}}
    rules: [{from: [{source: {notPrincipals: [cluster.local/ns/shop/sa/db]}}], to: [{operation: {ports: ["443"]}}]}]
`)
	c.AuthorizationPolicies = append(c.AuthorizationPolicies, generated(c.generated().Translation)...)
	assertDifferences(t, Verify(c.existing()), []differenceSummary{
		{dir: IstioAllowsMore, from: "shop/lb,shop/web", to: "shop/lb", ports: "443"},
		{dir: IstioAllowsMore, from: "0.0.0.0/0 except 10.0.0.0/8; 10.0.0.0/8; ::/0 except 2001:db8::/32; 2001:db8:bad::/48", to: "shop/lb", ports: "443"},
		{dir: IstioAllowsMore, from: "shop/*", to: "shop/web", ports: "1-8079,8081-65535"},
	})
}

// Permissive's fallback for a workload template outside the mesh allows
// any address (ipBlocks 0.0.0.0/0 and ::/0): the widening it reports,
// SourceNotInMesh, explains what it lets in from outside the cluster, as
// it does for the pods it lets in.
func TestExternalSourceNotInMeshFallback(t *testing.T) {
	c := readCluster(t, `
namespaces:
- {name: shop}
pods:
- {namespace: shop, name: db, labels: {app: db}, serviceAccount: db, sidecar: true, ip: 10.0.0.1}
- {namespace: shop, name: legacy, labels: {app: legacy}, serviceAccount: legacy, template: Deployment/shop/legacy}
- {namespace: shop, name: web, labels: {app: web}, serviceAccount: web, sidecar: true, ip: 10.0.0.2}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{podSelector: {matchLabels: {app: legacy}}}]
      ports: [{port: 5432}]
    - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
      ports: [{port: 9187}]
`)
	in := c.generated()
	r := Verify(in)
	assertDifferences(t, r, []differenceSummary{
		{dir: IstioAllowsMore, expl: "SourceNotInMesh", from: "shop/db,shop/web", to: "shop/db", ports: "5432"},
		{dir: IstioAllowsMore, expl: "SourceNotInMesh", from: "0.0.0.0/0 except 192.0.2.0/24; 192.0.2.0/24; ::/0", to: "shop/db", ports: "5432"},
	})
	for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
		t.Error(msg)
	}
	// Strict leaves the template out: nothing from outside gets in.
	c.Options.DefaultFidelity = "strict"
	assertDifferences(t, Verify(c.generated()), []differenceSummary{
		{dir: IstioDeniesMore, expl: "SourceNotInMesh", from: "shop/legacy", to: "shop/db", ports: "5432"},
	})
}
