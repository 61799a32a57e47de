package verify

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// FuzzTranslateVerify is the property test of the translation: a random
// cluster is translated, and verify compares what the generated policies
// allow with what the NetworkPolicies allow. It asserts that
//   - every difference is explained by a finding (or by ipBlock's
//     ambiguity on pod addresses);
//   - permissive never denies a TCP connection between mesh pods that the
//     NetworkPolicies allow, and strict never allows one they deny, beyond
//     the documented exceptions below;
//   - the differences verify reports, computed per class, are exactly the
//     connections where a pod-by-pod reference evaluation disagrees, for
//     sources outside the cluster too (at addresses around every CIDR the
//     policies name, none a pod's).
func FuzzTranslateVerify(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c testCluster
		(&gen{b: data}).grow(&c)
		if tooLarge(c) {
			t.Skip("too large for one fuzz run")
		}
		in := c.generated()
		r := Verify(in)
		for _, msg := range checkPromises(in, r) {
			t.Error(msg)
		}
		for _, msg := range checkAgainstReference(in, r) {
			t.Error(msg)
		}
	})
}

// TestTranslateVerifyRandom runs the fuzz target's checks over a few
// hundred clusters from a fixed pseudo-random source, so that every test run
// covers more than the seeds.
func TestTranslateVerifyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 11))
	checked, withAdmin, byAdmin := 0, 0, map[string]int{}
	for i := 0; checked < 300; i++ {
		b := make([]byte, 200+rng.IntN(800))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		var c testCluster
		(&gen{b: b}).grow(&c)
		if tooLarge(c) {
			continue
		}
		checked++
		if len(c.admin) > 0 {
			withAdmin++
		}
		in := c.generated()
		r := Verify(in)
		for _, d := range r.Differences {
			if d.Explanation != nil && strings.HasPrefix(d.Explanation.Type, "Admin") {
				byAdmin[d.Explanation.Type]++
			}
		}
		for _, tr := range in.Translation.Translations {
			for _, f := range tr.Findings {
				if f.Type == translate.AdminPolicyConflict {
					byAdmin["finding "+string(f.Type)]++
				}
			}
		}
		for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
			t.Errorf("cluster %d: %s", i, msg)
		}
	}
	// The admin policies must take part: most clusters have some, and
	// each kind of admin explanation turns up.
	if withAdmin < 150 || len(byAdmin) < 5 {
		t.Errorf("%d of %d clusters with admin policies, differences explained by admin policies %v: the test checks too little", withAdmin, checked, byAdmin)
	}
}

// FuzzTranslateVerifyWaypoints is FuzzTranslateVerify with waypoints in
// the paths: the promises hold for every path, explained where the
// translation reports it, and the paths match the reference.
func FuzzTranslateVerifyWaypoints(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed, seed[:8], seed[8:16])
	}
	f.Fuzz(func(t *testing.T, data, wp, admin []byte) {
		var c testCluster
		(&gen{b: data}).grow(&c)
		(&gen{b: wp}).waypoints(&c)
		(&gen{b: admin}).admins(&c)
		if tooLarge(c) {
			t.Skip("too large for one fuzz run")
		}
		in := c.generated()
		r := Verify(in)
		for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
			t.Error(msg)
		}
	})
}

// TestTranslateVerifyWaypoints runs FuzzTranslateVerifyWaypoints' checks
// over random clusters with waypoints.
func TestTranslateVerifyWaypoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 12))
	checked, through, adminThrough := 0, 0, 0
	for i := 0; checked < 300; i++ {
		b := make([]byte, 200+rng.IntN(800))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		wp := make([]byte, 64)
		for j := range wp {
			wp[j] = byte(rng.Uint32())
		}
		admin := make([]byte, 48)
		for j := range admin {
			admin[j] = byte(rng.Uint32())
		}
		var c testCluster
		(&gen{b: b}).grow(&c)
		(&gen{b: wp}).waypoints(&c)
		(&gen{b: admin}).admins(&c)
		if tooLarge(c) {
			continue
		}
		checked++
		in := c.generated()
		for _, tr := range in.Translation.Translations {
			for _, ap := range tr.Policies {
				if len(ap.Spec.GetTargetRefs()) > 0 {
					through++
					if ap.Labels[translate.LabelAdminPolicy] != "" {
						adminThrough++
					}
				}
			}
		}
		r := Verify(in)
		for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
			t.Errorf("cluster %d: %s", i, msg)
		}
	}
	if through < 50 || adminThrough < 10 {
		t.Errorf("%d policies bound to Services in %d clusters, %d of them for admin rules: the test checks too little", through, checked, adminThrough)
	}
	t.Logf("%d policies bound to Services in %d clusters, %d of them for admin rules", through, checked, adminThrough)
}

// TestTranslateVerifyRandomReview runs the same checks over random
// clusters in review mode, each NetworkPolicy's approval record listing a
// random part of what its selectors resolve: every identity left out
// pending must explain exactly the connections it costs.
func TestTranslateVerifyRandomReview(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 9))
	checked, pending, explained := 0, 0, 0
	for i := 0; checked < 300; i++ {
		b := make([]byte, 200+rng.IntN(800))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		var c testCluster
		(&gen{b: b}).grow(&c)
		if tooLarge(c) {
			continue
		}
		checked++
		c.Options.DefaultIdentity = translate.IdentityReview
		// The first translation resolves the identities; the approvals
		// keep about half of them, and some policies have none (at their
		// first translation still).
		for _, tr := range translate.Translate(c.snapshot(), c.Options).Translations {
			if rng.IntN(4) == 0 {
				continue
			}
			a := translate.Approval{Namespace: tr.NetworkPolicy.Namespace, NetworkPolicy: tr.NetworkPolicy.Name}
			for _, id := range tr.Identities {
				if rng.IntN(2) > 0 {
					a.Identities = append(a.Identities, id)
				}
			}
			c.Approvals = append(c.Approvals, a)
		}
		in := c.generated()
		for _, tr := range in.Translation.Translations {
			pending += len(tr.Pending)
		}
		r := Verify(in)
		for _, d := range r.Differences {
			if d.Explanation != nil && d.Explanation.Type == string(translate.IdentityPending) {
				explained++
			}
		}
		for _, msg := range append(checkPromises(in, r), checkAgainstReference(in, r)...) {
			t.Errorf("cluster %d: %s", i, msg)
		}
	}
	if pending < 100 || explained < 20 {
		t.Errorf("%d pending identities, %d differences they explain in %d clusters: the test checks too little", pending, explained, checked)
	}
}

// fuzzSeeds are byte strings that grow clusters of a few dozen pods and a
// dozen policies, drawn from a fixed pseudo-random source, so that seeds
// alone exercise shared identities, pods outside the mesh, ipBlocks over
// pod addresses, named ports, both fidelities and dry-run.
var fuzzSeeds = func() [][]byte {
	var out [][]byte
	for i := range 24 {
		rng := rand.New(rand.NewPCG(uint64(i), 2026))
		b := make([]byte, 150+rng.IntN(350))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		out = append(out, b)
	}
	return out
}()

// Findings that explain a difference the fidelity promises never to make.
var (
	// permissive may deny what NetworkPolicy allows only where the
	// translation says so: nothing was generated for a policy whose pods
	// other policies restrict (Conflict), an identity waits for approval
	// (IdentityPending), or ipBlock is read as matching pod addresses
	// (IPBlockPodAddress).
	permissiveExceptions = map[string]bool{
		string(translate.Conflict):        true,
		string(translate.IdentityPending): true,
		IPBlockPodAddress:                 true,
		// The API leaves undefined which of two admin policies of one
		// tier and priority decides.
		string(translate.AdminPolicyConflict): true,
	}
	// strict may allow what NetworkPolicy denies where Istio cannot
	// enforce it at all: egress, policies nothing was generated for, and
	// ipBlock read as not matching pod addresses.
	strictExceptions = map[string]bool{
		// Only where strict says it cannot keep its promise: a peer of
		// the NetworkPolicy admits the waypoint itself.
		string(translate.WaypointInPath):       true,
		string(translate.EgressNotTranslated):  true,
		string(translate.RootNamespaceSkipped): true,
		string(translate.InvalidAnnotation):    true,
		string(translate.Conflict):             true,
		IPBlockPodAddress:                      true,
		// Admin policies: a Deny strict cannot write (pods Istio cannot
		// select alone, sources outside the mesh with no known address),
		// the order of policies of one tier and priority, the baseline
		// and the admin tier where no NetworkPolicy selects the pods, and
		// admin egress.
		string(translate.AdminPolicyDenies):   true,
		string(translate.AdminPolicyConflict): true,
		AdminPolicyNotTranslated:              true,
		AdminEgressNotTranslated:              true,
	}
)

// checkPromises returns every difference that breaks a promise.
func checkPromises(in Input, r Result) []string {
	e := newEngine(in)
	var errs []string
	fidelity := fidelities(in.Translation)
	for _, d := range r.Differences {
		if !d.Explained {
			errs = append(errs, "unexplained: "+describe(d))
			continue
		}
		if d.Deviates {
			errs = append(errs, "deviates in generated mode: "+describe(d))
		}
		// The promises are about sources with a mesh identity, and
		// addresses outside the cluster, which none of the translation's
		// fallbacks but the reported ones may widen or narrow.
		if len(d.Sources.Addresses) == 0 && !slices.ContainsFunc(expandPods(e, d.Sources), func(p *podInfo) bool { return p.inMesh }) {
			continue
		}
		for _, dst := range expandPods(e, d.Destinations) {
			if !dst.inMesh {
				continue
			}
			f := fidelity(dst.ns.name)
			switch {
			case d.Direction == IstioDeniesMore && f == translate.FidelityPermissive && !permissiveExceptions[d.Explanation.Type]:
				errs = append(errs, "permissive denies what NetworkPolicy allows: "+describe(d))
			case d.Direction == IstioAllowsMore && f == translate.FidelityStrict && !strictExceptions[d.Explanation.Type]:
				errs = append(errs, "strict allows what NetworkPolicy denies: "+describe(d))
			default:
				continue
			}
			break
		}
	}
	return errs
}

// fidelities returns the fidelity translate applied in each namespace;
// empty where it translated nothing, so promised nothing.
func fidelities(r translate.Result) func(string) translate.Fidelity {
	byNS := map[string]translate.Fidelity{}
	for _, t := range r.Translations {
		if t.Action == translate.ActionApply {
			byNS[t.NetworkPolicy.Namespace] = t.Fidelity
		}
	}
	return func(ns string) translate.Fidelity { return byNS[ns] }
}

// samplePorts are the ports the reference check looks at: every port the
// generator uses, and their neighbours.
var samplePorts = []int32{1, 78, 79, 80, 81, 100, 179, 7999, 8000, 8080, 8100, 8101, 9000, 9090, 9100, 30079, 30080, 38000, 65535}

// checkAgainstReference recomputes both verdicts pod by pod and checks
// that the differences reported are exactly those where they disagree.
func checkAgainstReference(in Input, r Result) []string {
	e := newEngine(in)
	var errs []string
	type conn struct {
		src, dst string
		port     int32
	}
	reported := map[conn]map[Direction]bool{}
	report := func(k conn, d Direction) {
		if reported[k] == nil {
			reported[k] = map[Direction]bool{}
		}
		reported[k][d] = true
	}
	has := func(k conn, d Direction) bool { return reported[k][d] }
	outside := outsideAddresses(e)
	admin := e.refAdminPolicies()
	for _, d := range r.Differences {
		for _, rng := range d.Sources.Addresses {
			for _, a := range outside {
				if !rng.Contains(a) {
					continue
				}
				for _, dst := range expand(e, d.Destinations) {
					for _, p := range samplePorts {
						if portsOf(d.Ports...).contains(p) {
							key := conn{"address " + a.String(), dst, p}
							if _, twice := reported[key]; twice {
								errs = append(errs, fmt.Sprintf("%s -> %s:%d is in two differences", a, dst, p))
							}
							report(key, d.Direction)
						}
					}
				}
			}
		}
		for _, src := range expand(e, d.Sources) {
			for _, dst := range expand(e, d.Destinations) {
				for _, p := range samplePorts {
					if portsOf(d.Ports...).contains(p) {
						report(conn{src, dst, p}, d.Direction)
					}
				}
			}
		}
	}
	for _, dst := range e.w.pods {
		for _, src := range e.w.pods {
			for _, p := range samplePorts {
				strict, loose := e.refNP(admin, src, dst, p)
				// With waypoints, some paths may allow and others deny.
				some, every := e.refIstioPaths(e.force, src, dst, p, false)
				key := conn{src.pod.Namespace + "/" + src.pod.Name, dst.pod.Namespace + "/" + dst.pod.Name, p}
				more, less := some && !strict, loose && !every
				if has(key, IstioAllowsMore) != more || has(key, IstioDeniesMore) != less {
					errs = append(errs, fmt.Sprintf("%s -> %s:%d: reference says allows more %t, denies more %t (np strict %t, loose %t, istio some path %t, every path %t), verify reported %v",
						src.pod.Name, dst.pod.Name, p, more, less, strict, loose, some, every, reported[key]))
				}
			}
		}
	}
	for _, dst := range e.w.pods {
		for _, a := range outside {
			for _, p := range samplePorts {
				np := e.refNPExternal(admin, a, dst, p)
				istio := e.refIstio(e.force, externalPod(a), dst, p, false)
				var want Direction
				switch {
				case istio && !np:
					want = IstioAllowsMore
				case np && !istio:
					want = IstioDeniesMore
				}
				key := conn{"address " + a.String(), dst.pod.Namespace + "/" + dst.pod.Name, p}
				if (want == "" && len(reported[key]) > 0) || (want != "" && (!has(key, want) || len(reported[key]) != 1)) {
					errs = append(errs, fmt.Sprintf("%s -> %s:%d: reference says %q (np %t, istio %t), verify reported %v",
						a, key.dst, p, want, np, istio, reported[key]))
				}
			}
		}
	}
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Sprintf("and %d more", len(errs)-10))
	}
	return errs
}

// outsideAddresses are the addresses the reference check tries as sources
// outside the cluster: the first and last address of every CIDR the
// policies match sources with, the addresses next to them, and the ends of
// both families; none of them a pod's.
func outsideAddresses(e *engine) []netip.Addr {
	var prefixes []netip.Prefix
	for _, np := range e.nps {
		for _, r := range np.in {
			for _, peer := range r.peers {
				if peer.block != nil {
					prefixes = append(append(prefixes, peer.block.cidr), peer.block.except...)
				}
			}
		}
	}
	ipFields := func(fs []srcField) {
		for _, f := range fs {
			if f.attr != attrIP {
				continue
			}
			for _, v := range slices.Concat(f.values, f.notValues) {
				if p, ok := parseIPBlock(v); ok {
					prefixes = append(prefixes, p)
				}
			}
		}
	}
	for _, a := range e.force.policies {
		for _, r := range a.rules {
			for _, fs := range r.sources {
				ipFields(fs)
			}
			ipFields(r.conds)
		}
	}
	pods := map[netip.Addr]bool{}
	for _, p := range e.w.pods {
		pods[p.addr] = true
	}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && !pods[a] {
			out = append(out, a)
		}
	}
	for _, a := range []string{"0.0.0.0", "255.255.255.255", "203.0.113.1", "::", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		add(netip.MustParseAddr(a))
	}
	for _, p := range prefixes {
		first, last := p.Masked().Addr(), lastAddr(p)
		add(first)
		add(first.Next())
		add(first.Prev())
		add(last)
		add(last.Prev())
		add(last.Next())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// expandPods lists the pods of a set.
func expandPods(e *engine, s PodSet) []*podInfo {
	var out []*podInfo
	for _, p := range e.w.pods {
		if slices.Contains(s.AllOf, p.ns.name) || slices.ContainsFunc(s.Pods, func(q Pod) bool {
			return q.Namespace == p.pod.Namespace && q.Name == p.pod.Name
		}) {
			out = append(out, p)
		}
	}
	return out
}

// expand lists the pods of a set as "ns/name".
func expand(e *engine, s PodSet) []string {
	var out []string
	for _, p := range expandPods(e, s) {
		out = append(out, p.pod.Namespace+"/"+p.pod.Name)
	}
	return out
}

// tooLarge says whether a random cluster is too large for one check.
func tooLarge(c testCluster) bool {
	return len(c.Pods) > 40 || len(c.NetworkPolicies) > 16 || len(c.admin) > 8
}
