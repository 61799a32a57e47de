package translate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// Admin network policies: the translation is judged against the whole
// stack (docs/translation.md#admin-network-policies). For the pods a
// NetworkPolicy selects, the admin tier decides first:
//
//   - an Allow (Accept) rule admits traffic the NetworkPolicies may deny:
//     both fidelities write it as ALLOW rules of their own policy, since
//     the stack allows that traffic; where that is not exact, permissive
//     allows more and strict less, reported AdminPolicyAllows;
//   - a Deny rule blocks traffic the NetworkPolicies may allow: strict
//     writes it as an Istio DENY policy (DENY wins over ALLOW, as the
//     admin tier wins over the NetworkPolicies), erring on denying more;
//     permissive writes no DENY, whose mistakes nothing could override,
//     and reports AdminPolicyDenies: the network plugin still denies it;
//   - a Pass rule defers to the NetworkPolicies: nothing changes, but an
//     Allow of lower precedence must not admit what it passes.
//
// The baseline tier applies only to pods no NetworkPolicy selects, so it
// never changes the translation of a NetworkPolicy's pods.

// Labels on the AuthorizationPolicies generated for an admin policy's
// rules, next to the NetworkPolicy's own labels and owner reference: the
// kind and the name of the admin policy (cluster-scoped, so it cannot own
// a namespaced object).
const (
	LabelAdminPolicyKind = "netpol2authz.io/admin-policy-kind"
	LabelAdminPolicy     = "netpol2authz.io/admin-policy"
	// AnnotationAdminPolicy holds KIND/NAME in full.
	AnnotationAdminPolicy = "netpol2authz.io/admin-policy"
)

// adminIndex is the admin policies of a snapshot, compiled once.
type adminIndex struct {
	// policies, in precedence order.
	policies []*adminpolicy.Compiled
	// invalid are the messages of policies that could not be compiled.
	invalid []string
	// sources caches the counted pods each ingress rule's peers match.
	sources map[*adminpolicy.CompiledRule]map[*podInfo]bool
}

func buildAdminIndex(in []adminpolicy.Policy) *adminIndex {
	a := &adminIndex{sources: map[*adminpolicy.CompiledRule]map[*podInfo]bool{}}
	for i := range in {
		p := in[i] // compiled policies point into their own copy
		c, errs := adminpolicy.Compile(&p)
		if len(errs) > 0 {
			msgs := make([]string, 0, len(errs))
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			a.invalid = append(a.invalid, fmt.Sprintf("%s: %s", p.Ref(), strings.Join(msgs, "; ")))
			continue
		}
		a.policies = append(a.policies, c)
	}
	adminpolicy.Sort(a.policies)
	slices.Sort(a.invalid)
	return a
}

// ruleSources are the counted pods an ingress rule's peers match, computed
// once per rule for the whole Translate call.
func (idx *index) ruleSources(r *adminpolicy.CompiledRule) map[*podInfo]bool {
	if s, ok := idx.admin.sources[r]; ok {
		return s
	}
	s := map[*podInfo]bool{}
	for _, ns := range idx.sorted {
		for _, p := range ns.pods {
			if r.MatchesPod(ns.labels, p.labels, p.addr) {
				s[p] = true
			}
		}
	}
	idx.admin.sources[r] = s
	return s
}

// relevantAdmin is an admin policy that selects some of the pods of the
// NetworkPolicy being translated.
type relevantAdmin struct {
	pol  *adminpolicy.Compiled
	subj map[*podInfo]bool
}

// adminRuleAt is an admin-tier rule already walked for one target group:
// what a rule of lower precedence must be checked against.
type adminRuleAt struct {
	pol   *adminpolicy.Compiled
	rule  *adminpolicy.CompiledRule
	subj  map[*podInfo]bool
	ports portRanges
}

func adminRef(p *adminpolicy.Compiled) ObjectRef {
	return ObjectRef{Kind: string(p.Kind), Name: p.Name}
}

// admin judges the translation of the NetworkPolicy against the admin
// policies selecting its pods, and returns the policies their rules add.
// Behind a waypoint (plan), the Allow rules also admit the waypoint's
// principal (extra, as the NetworkPolicy's rules do) and every admin rule
// is also bound to the Services at the waypoint (adminServices).
func (c *tctx) admin(groups []targetGroup, selected []*podInfo, plan *waypointPlan, extra *sourceSpec) []*securityv1.AuthorizationPolicy {
	a := c.idx.admin
	if len(a.policies) == 0 && len(a.invalid) == 0 {
		return nil
	}
	self := npRef(c.np.Namespace, c.np.Name)
	for _, msg := range a.invalid {
		c.f.add(AdminPolicyInvalid, msg+"; it was left out, so the translation may not match what the network plugin enforces", self)
	}
	var rels []relevantAdmin
	for _, pol := range a.policies {
		subj := map[*podInfo]bool{}
		for _, p := range selected {
			if pol.Selects(c.ns.labels, p.labels) {
				subj[p] = true
			}
		}
		if len(subj) > 0 {
			rels = append(rels, relevantAdmin{pol, subj})
		}
	}
	if len(rels) == 0 {
		return nil
	}
	c.adminApplies(rels, selected)
	c.adminConflicts(rels)

	var out []*securityv1.AuthorizationPolicy
	accidental := map[*wpUse][]string{}
	for gi := range groups {
		g := &groups[gi]
		if len(g.pods) == 0 {
			continue
		}
		var higher []adminRuleAt
		for _, rel := range rels {
			if rel.pol.Tier != adminpolicy.TierAdmin {
				continue
			}
			subj := map[*podInfo]bool{}
			for _, p := range g.pods {
				if rel.subj[p] {
					subj[p] = true
				}
			}
			if len(subj) == 0 {
				continue
			}
			var allow, deny []*secv1beta1.Rule
			for ri := range rel.pol.Ingress {
				r := &rel.pol.Ingress[ri]
				at := adminRuleAt{pol: rel.pol, rule: r, subj: subj, ports: c.adminPortRanges(r, subj)}
				switch r.Action {
				case adminpolicy.ActionAllow:
					if rule := c.adminAllow(g, &at, higher); rule != nil {
						if plan != nil {
							c.accidentalAdmin(plan, &at, rule, accidental)
						}
						if extra != nil {
							rule.From = append(rule.From, newRule([]sourceSpec{*extra}, nil).From...)
						}
						allow = append(allow, rule)
					}
				case adminpolicy.ActionDeny:
					if rule := c.adminDeny(g, &at, higher); rule != nil {
						deny = append(deny, rule)
					}
				}
				higher = append(higher, at)
			}
			if ap := c.adminPolicy(g, rel.pol, subj, secv1beta1.AuthorizationPolicy_ALLOW, allow); ap != nil {
				out = append(out, ap)
			}
			if ap := c.adminPolicy(g, rel.pol, subj, secv1beta1.AuthorizationPolicy_DENY, deny); ap != nil {
				out = append(out, ap)
			}
		}
	}
	if plan != nil {
		for _, lo := range plan.leftOut {
			if paths := accidental[lo.u]; len(paths) > 0 {
				slices.Sort(paths)
				paths = slices.Compact(paths)
				c.f.add(WaypointInPath, fmt.Sprintf("strict cannot keep its promise for waypoint %s: %s %s the waypoint's own identity or address (its namespace %s, its principal or its pod IPs), so the pods' ztunnel admits whatever the waypoint forwards, from clients the admin network policies and NetworkPolicy %s deny; an L4 field that excludes it (notPrincipals) is outside what netpol2authz emits; narrow the peer, or stop the waypoint from serving these pods",
					lo.u.ref, strings.Join(paths, ", "), plural(len(paths), "admits", "admit"), lo.u.ref.ns, c.np.Name), append([]ObjectRef{gatewayRef(lo.u.ref), npRef(c.np.Namespace, c.np.Name)}, podRefs(lo.u.allPods())...)...)
			}
		}
		out = append(out, c.adminServices(plan, rels)...)
	}
	return out
}

// accidentalAdmin notes, by waypoint, an admin Allow rule whose sources
// admit a waypoint strict left out at ztunnel (see accidentalWaypoint).
func (c *tctx) accidentalAdmin(plan *waypointPlan, at *adminRuleAt, rule *secv1beta1.Rule, out map[*wpUse][]string) {
	for _, lo := range plan.leftOut {
		for _, f := range rule.From {
			s := f.GetSource()
			if admitsWaypoint(lo.u, lo.principals, lo.pods, s.GetNamespaces(), s.GetPrincipals(), s.GetIpBlocks(), s.GetNotIpBlocks()) {
				out[lo.u] = append(out[lo.u], at.rule.Ref(at.pol))
				break
			}
		}
	}
}

// adminApplies reports every admin policy that selects the NetworkPolicy's
// pods: a cluster with admin policies is never translated silently.
func (c *tctx) adminApplies(rels []relevantAdmin, selected []*podInfo) {
	self := npRef(c.np.Namespace, c.np.Name)
	for _, rel := range rels {
		subj := inOrder(selected, rel.subj)
		refs := append([]ObjectRef{adminRef(rel.pol), self}, podRefs(subj)...)
		what := fmt.Sprintf("%s selects %s %s", rel.pol.Describe(), plural(len(subj), "pod", "pods"), podNames(c.ns.name, subj))
		if rel.pol.Tier == adminpolicy.TierBaseline {
			c.f.add(AdminPolicyApplies, what+"; the baseline applies only to pods no NetworkPolicy selects, so it does not change what this NetworkPolicy's pods accept; it still governs the pods of the cluster no NetworkPolicy selects, for which netpol2authz generates nothing", refs...)
			continue
		}
		var rules []string
		for i := range rel.pol.Ingress {
			r := &rel.pol.Ingress[i]
			rules = append(rules, fmt.Sprintf("%s %s", r.Path, r.Action))
		}
		msg := what
		if len(rules) == 0 {
			msg += "; it has no ingress rules, so it does not change what they accept"
		} else {
			msg += "; its ingress rules are decided before the NetworkPolicies (" + strings.Join(rules, ", ") + "): Allow rules are generated as ALLOW rules of their own AuthorizationPolicies, Pass rules leave the decision to the NetworkPolicies"
			if c.fidelity == FidelityStrict {
				msg += ", and (strict) Deny rules as DENY policies"
			} else {
				msg += ", and Deny rules stay the network plugin's (permissive generates no DENY policy)"
			}
		}
		if len(rel.pol.Egress) > 0 {
			msg += "; its egress rules are not translated: an AuthorizationPolicy controls what a workload accepts, not what it sends"
		}
		c.f.add(AdminPolicyApplies, msg, refs...)
	}
}

// adminConflicts reports admin policies of one tier and priority that both
// select pods of the NetworkPolicy: the API leaves their order undefined.
func (c *tctx) adminConflicts(rels []relevantAdmin) {
	self := npRef(c.np.Namespace, c.np.Name)
	for i := range rels {
		for j := i + 1; j < len(rels); j++ {
			a, b := rels[i], rels[j]
			if !adminpolicy.SamePrecedence(a.pol.Policy, b.pol.Policy) || len(a.pol.Ingress) == 0 || len(b.pol.Ingress) == 0 {
				continue
			}
			var both []*podInfo
			for p := range a.subj {
				if b.subj[p] {
					both = append(both, p)
				}
			}
			if len(both) == 0 {
				continue
			}
			slices.SortFunc(both, func(x, y *podInfo) int { return strings.Compare(x.pod.Name, y.pod.Name) })
			c.f.add(AdminPolicyConflict, fmt.Sprintf("%s and %s have the same tier and priority and both select %s %s: the API leaves undefined which decides a connection both match, so the network plugin may decide either way; netpol2authz evaluates %s first; give them different priorities",
				a.pol.Ref(), b.pol.Ref(), plural(len(both), "pod", "pods"), podNames(c.ns.name, both), a.pol.Ref()),
				append([]ObjectRef{adminRef(a.pol), adminRef(b.pol), self}, podRefs(both)...)...)
		}
	}
}

// shadows returns the rules of higher precedence with the given action
// that may match some of the same connections as at: a pod of both
// subjects, a source both match, a port both match.
func (c *tctx) shadows(at *adminRuleAt, higher []adminRuleAt, action adminpolicy.Action) []adminRuleAt {
	var out []adminRuleAt
	src := c.idx.ruleSources(at.rule)
	for _, h := range higher {
		if h.rule.Action != action || !h.ports.overlaps(at.ports) {
			continue
		}
		common := false
		for p := range h.subj {
			if at.subj[p] {
				common = true
				break
			}
		}
		if !common {
			continue
		}
		hsrc := c.idx.ruleSources(h.rule)
		if h.rule.FailsClosed() || at.rule.FailsClosed() {
			out = append(out, h)
			continue
		}
		for p := range src {
			if hsrc[p] {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

func ruleRefs(rs []adminRuleAt) string {
	var names []string
	for _, r := range rs {
		names = append(names, r.rule.Ref(r.pol))
	}
	return strings.Join(names, ", ")
}

// adminAllow turns an Allow rule into an ALLOW rule for group g, or nil.
func (c *tctx) adminAllow(g *targetGroup, at *adminRuleAt, higher []adminRuleAt) *secv1beta1.Rule {
	self := npRef(c.np.Namespace, c.np.Name)
	subj := inOrder(g.pods, at.subj)
	refs := append([]ObjectRef{adminRef(at.pol), self}, podRefs(subj)...)
	ref := at.rule.Ref(at.pol)
	if g.overreach != noOverreach {
		// The group's selector reaches pods the NetworkPolicy does not
		// select: an ALLOW there would reach them too.
		if g.overreach == allowNothing {
			c.f.add(AdminPolicyAllows, fmt.Sprintf("%s allows traffic to %s, whose labels Istio cannot select without other pods (SelectorOverreach); strict: it was not generated, so they lose what it allows beyond the NetworkPolicies", ref, podNames(c.ns.name, subj)), refs...)
		}
		return nil
	}
	if passes := c.shadows(at, higher, adminpolicy.ActionPass); len(passes) > 0 {
		msg := fmt.Sprintf("%s allows traffic to %s that %s of higher precedence passes to the NetworkPolicies, and Istio has no order between ALLOW rules", ref, podNames(c.ns.name, subj), ruleRefs(passes))
		if c.fidelity == FidelityStrict {
			c.f.add(AdminPolicyAllows, msg+"; strict: it was not generated, so these pods accept from its sources only what the NetworkPolicies allow", refs...)
			return nil
		}
		c.f.add(AdminPolicyAllows, msg+"; permissive: it was generated whole, so Istio also allows what the Pass rule leaves to the NetworkPolicies", refs...)
	}
	var from []sourceSpec
	var f findingList
	for i := range at.rule.Peers {
		peer := &at.rule.Peers[i]
		cp, ok := c.adminPeer(at.pol, peer)
		if !ok {
			continue // a peer of a newer version matches nothing in an Allow
		}
		from = append(from, c.resolvePeer(&cp, &f)...)
	}
	if len(from) == 0 {
		// An empty from would allow every source: the rule goes, and its
		// peers' findings (sources outside the mesh, in strict) say why
		// they lose what it allows, as for a NetworkPolicy's rule.
		c.f = append(c.f, f...)
		return nil
	}
	ports, keep := c.adminPorts(at, subj, false, refs)
	if !keep {
		return nil
	}
	c.f = append(c.f, f...)
	return newRule(from, ports)
}

// adminDeny handles a Deny rule for group g: a DENY rule in strict, a
// report in permissive.
func (c *tctx) adminDeny(g *targetGroup, at *adminRuleAt, higher []adminRuleAt) *secv1beta1.Rule {
	self := npRef(c.np.Namespace, c.np.Name)
	subj := inOrder(g.pods, at.subj)
	refs := append([]ObjectRef{adminRef(at.pol), self}, podRefs(subj)...)
	ref := at.rule.Ref(at.pol)
	what := fmt.Sprintf("%s denies traffic to %s before the NetworkPolicies are consulted", ref, podNames(c.ns.name, subj))
	if c.fidelity == FidelityPermissive {
		c.f.add(AdminPolicyDenies, what+"; permissive: no DENY policy is generated (one that denies too much could not be overridden), so Istio allows whatever the NetworkPolicies allow among it; the network plugin still denies it", refs...)
		return nil
	}
	if g.overreach != noOverreach {
		c.f.add(AdminPolicyDenies, what+"; strict: these pods' labels cannot be selected without other pods (SelectorOverreach), so no DENY policy was generated and Istio allows what the NetworkPolicies allow among it; the network plugin still denies it", refs...)
		return nil
	}
	var notes []string
	if over := append(c.shadows(at, higher, adminpolicy.ActionAllow), c.shadows(at, higher, adminpolicy.ActionPass)...); len(over) > 0 {
		notes = append(notes, fmt.Sprintf("%s of higher precedence allow or pass some of the same traffic, and Istio's DENY wins over every ALLOW, so the DENY policy also denies that", ruleRefs(over)))
	}
	rule := &secv1beta1.Rule{}
	if !at.rule.FailsClosed() {
		var sources []sourceSpec
		var sourceNotes []string
		for i := range at.rule.Peers {
			src, note := c.denySources(at.rule, i)
			sources = append(sources, src...)
			if note != "" {
				sourceNotes = append(sourceNotes, note)
			}
		}
		if len(sources) == 0 {
			// Nothing to deny, or only what Istio cannot tell apart: the
			// network plugin still denies that, and strict says so.
			if len(sourceNotes) > 0 {
				c.f.add(AdminPolicyDenies, what+"; strict: no DENY policy is generated, as "+strings.Join(sourceNotes, "; ")+"; the network plugin still denies it", refs...)
			}
			return nil
		}
		notes = append(notes, sourceNotes...)
		rule = newRule(sources, nil)
	}
	ports, keep := c.adminPorts(at, subj, true, refs)
	if !keep {
		return nil
	}
	if len(ports) > 0 {
		rule.To = []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{Ports: ports}}}
	}
	if len(notes) > 0 {
		c.f.add(AdminPolicyDenies, what+"; strict: it is generated as a DENY policy, but "+strings.Join(notes, "; "), refs...)
	}
	return rule
}

// adminPeer is an ingress peer of an admin rule as a NetworkPolicy peer,
// which selects the same pods: namespaces alone, or pods in namespaces.
func (c *tctx) adminPeer(pol *adminpolicy.Compiled, p *adminpolicy.Peer) (compiledPeer, bool) {
	if p.Pods == nil {
		return compiledPeer{}, false
	}
	path := pol.Ref() + " " + p.Path
	var errs compileErrors
	cp := compiledPeer{path: path, kind: peerNamespaces}
	cp.nsSel = compileSelectorAt(&p.Pods.Namespaces, path, &errs)
	if p.Pods.Pods != nil && (len(p.Pods.Pods.MatchLabels) > 0 || len(p.Pods.Pods.MatchExpressions) > 0) {
		cp.kind = peerPods
		cp.podSel = compileSelectorAt(p.Pods.Pods, path, &errs)
	}
	if len(errs) > 0 || cp.nsSel == nil || (cp.kind == peerPods && cp.podSel == nil) {
		return compiledPeer{}, false // compiled already: cannot happen
	}
	return cp, true
}

// denySources are the sources of a DENY rule for one peer. Labels that
// bring a pod into a Deny only ever take access away, so identity review
// does not hold them back. A principal denies every pod of its
// ServiceAccount (strict errs on denying); a pod outside the mesh is
// denied by its address, and a workload template's pods, whose addresses
// are unknown, cannot be: the note says so.
func (c *tctx) denySources(r *adminpolicy.CompiledRule, i int) ([]sourceSpec, string) {
	p := &r.Peers[i]
	if p.Pods == nil {
		return nil, ""
	}
	sel := p.Pods
	nsAll := sel.Pods == nil || (len(sel.Pods.MatchLabels) == 0 && len(sel.Pods.MatchExpressions) == 0)
	nsSel, err := metav1.LabelSelectorAsSelector(&sel.Namespaces)
	if err != nil {
		return nil, ""
	}
	var namespaces, principals, blocks []string
	var shared, unknown, sameAddr []string
	for _, ns := range c.idx.sorted {
		if !nsSel.Matches(ns.labels) {
			continue
		}
		if nsAll {
			namespaces = append(namespaces, ns.name)
		}
		sas := map[string]bool{}
		for _, pod := range ns.pods {
			if !r.PeerMatchesPod(i, ns.labels, pod.labels, pod.addr) {
				continue
			}
			switch {
			case pod.inMesh && !nsAll:
				sas[pod.sa] = true
			case pod.inMesh:
			case pod.ipBlock != "":
				blocks = append(blocks, pod.ipBlock)
			default:
				unknown = append(unknown, podName(c.ns.name, pod))
			}
		}
		for _, sa := range slices.Sorted(maps.Keys(sas)) {
			principals = append(principals, c.idx.principal(ns.name, sa))
			for _, pod := range ns.bySA[sa] {
				if !r.PeerMatchesPod(i, ns.labels, pod.labels, pod.addr) {
					shared = append(shared, podName(c.ns.name, pod))
				}
			}
		}
	}
	if len(blocks) > 0 {
		// An address denies every pod that has it, selected or not.
		denied := map[string]bool{}
		for _, b := range blocks {
			denied[b] = true
		}
		for _, ns := range c.idx.sorted {
			for _, pod := range ns.pods {
				if denied[pod.ipBlock] && !r.PeerMatchesPod(i, ns.labels, pod.labels, pod.addr) {
					sameAddr = append(sameAddr, podName(c.ns.name, pod))
				}
			}
		}
	}
	if nsAll && len(sel.Namespaces.MatchLabels)+len(sel.Namespaces.MatchExpressions) == 0 {
		namespaces = []string{"*"} // every namespace, those created later too
	}
	var out []sourceSpec
	if len(principals) > 0 {
		out = append(out, sourceSpec{principals: principals})
	}
	if len(namespaces) > 0 {
		out = append(out, sourceSpec{namespaces: namespaces})
	}
	if len(blocks) > 0 {
		slices.Sort(blocks)
		out = append(out, sourceSpec{ipBlocks: slices.Compact(blocks)})
	}
	var notes []string
	if len(shared) > 0 {
		notes = append(notes, fmt.Sprintf("the principals of %s also cover %s, which it does not select, so they are denied too", p.Path, nameList(shared)))
	}
	if len(sameAddr) > 0 {
		notes = append(notes, fmt.Sprintf("the addresses of the pods outside the mesh that %s selects are also those of %s, which it does not select, so they are denied too", p.Path, nameList(sameAddr)))
	}
	if len(unknown) > 0 {
		notes = append(notes, fmt.Sprintf("%s that %s selects %s outside the mesh with no known address, so Istio cannot deny them", nameList(unknown), p.Path, pick(len(unknown) == 1, "is", "are")))
	}
	return out, strings.Join(notes, "; ")
}

// portRanges are TCP port ranges; all means every port.
type portRanges struct {
	all    bool
	ranges []adminpolicy.PortRange
}

func (a portRanges) overlaps(b portRanges) bool {
	if (a.all && (b.all || len(b.ranges) > 0)) || (b.all && len(a.ranges) > 0) {
		return true
	}
	for _, x := range a.ranges {
		for _, y := range b.ranges {
			if x.First <= y.Last && y.First <= x.Last {
				return true
			}
		}
	}
	return false
}

// adminPortRanges are the TCP ports a rule matches at any of the pods.
func (c *tctx) adminPortRanges(r *adminpolicy.CompiledRule, pods map[*podInfo]bool) portRanges {
	var out portRanges
	for p := range pods {
		rs, all := r.TCPPorts(func(name string) []int32 { return portNumbers(p, name) })
		if all {
			return portRanges{all: true}
		}
		out.ranges = append(out.ranges, rs...)
	}
	return out
}

// adminPorts renders the ports of an admin rule at the subject pods of a
// group: nil with keep for every port; keep false when the rule matches no
// TCP port there (an empty `to` would match every port). A rule for a DENY
// (deny) errs on matching more ports; an ALLOW errs by the fidelity.
func (c *tctx) adminPorts(at *adminRuleAt, subj []*podInfo, deny bool, refs []ObjectRef) (ports []string, keep bool) {
	r := at.rule
	if r.Ports == nil {
		return nil, true
	}
	ref := r.Ref(at.pol)
	widen := deny || c.fidelity == FidelityPermissive
	var nums []int32
	budget := c.maxRange
	for _, p := range r.Ports {
		switch {
		case p.Name != "":
			var union []int32
			var lacking []*podInfo
			first, same := []int32(nil), true
			for i, pod := range subj {
				ns := portNumbers(pod, p.Name)
				if len(ns) == 0 {
					lacking = append(lacking, pod)
				}
				if i == 0 {
					first = ns
				} else if !slices.Equal(first, ns) {
					same = false
				}
				union = append(union, ns...)
			}
			if same {
				nums = append(nums, first...)
				continue
			}
			slices.Sort(union)
			union = slices.Compact(union)
			msg := fmt.Sprintf("%s names port %s, whose number differs between %s (%s)", ref, p.Name, podNames(c.ns.name, subj), joinPorts(union))
			if len(lacking) > 0 {
				msg += fmt.Sprintf(", and %s %s it", podNames(c.ns.name, lacking), pick(len(lacking) == 1, "lacks", "lack"))
			}
			if widen {
				nums = append(nums, union...)
				c.f.add(adminFindingFor(deny), msg+"; its rule uses every one of those numbers on all of them", refs...)
			} else {
				c.f.add(AdminPolicyAllows, msg+"; strict: the port was left out for them", refs...)
			}
		case p.Protocol != corev1.ProtocolTCP:
			c.f.add(NonTCPNotEnforced, fmt.Sprintf("%s %s (%s) was left out: Istio enforces TCP only, so the network plugin remains the only control of that traffic", ref, p.Path, p.Protocol), refs...)
		case p.First == p.Last:
			nums = append(nums, p.First)
		default:
			count := int(p.Last) - int(p.First) + 1
			if count <= budget {
				budget -= count
				for n := p.First; n <= p.Last && n > 0; n++ {
					nums = append(nums, n)
				}
				continue
			}
			msg := fmt.Sprintf("%s %s covers %d ports, past the cap of %d ports per rule (--max-port-range)", ref, p.Path, count, c.maxRange)
			if widen {
				c.f.add(adminFindingFor(deny), msg+"; its rule matches any port", refs...)
				return nil, true
			}
			c.f.add(AdminPolicyAllows, msg+"; strict: the range was left out", refs...)
		}
	}
	if len(nums) == 0 {
		return nil, false
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	for _, n := range nums {
		ports = append(ports, strconv.Itoa(int(n)))
	}
	return ports, true
}

func adminFindingFor(deny bool) FindingType {
	if deny {
		return AdminPolicyDenies
	}
	return AdminPolicyAllows
}

// adminPolicy builds the policy of one admin policy's rules for group g,
// selecting its subject pods there; nil without rules, or when no selector
// selects exactly those pods and the fidelity forbids erring.
func (c *tctx) adminPolicy(g *targetGroup, pol *adminpolicy.Compiled, subj map[*podInfo]bool, action secv1beta1.AuthorizationPolicy_Action, rules []*secv1beta1.Rule) *securityv1.AuthorizationPolicy {
	if len(rules) == 0 {
		return nil
	}
	ml, exact := c.adminSelector(g, pol, subj)
	if !exact {
		pods := inOrder(g.pods, subj)
		var others []*podInfo
		for _, p := range g.pods {
			if !subj[p] {
				others = append(others, p)
			}
		}
		refs := append([]ObjectRef{adminRef(pol), npRef(c.np.Namespace, c.np.Name)}, podRefs(g.pods)...)
		msg := fmt.Sprintf("%s selects %s but not %s, and Istio cannot select exactly those pods (a workload selector matches labels exactly)", pol.Ref(), podNames(c.ns.name, pods), podNames(c.ns.name, others))
		switch {
		case action == secv1beta1.AuthorizationPolicy_DENY:
			c.f.add(AdminPolicyDenies, msg+"; strict: its DENY rules apply to all of them", refs...)
		case c.fidelity == FidelityPermissive:
			c.f.add(AdminPolicyAllows, msg+"; permissive: its ALLOW rules apply to all of them", refs...)
		default:
			c.f.add(AdminPolicyAllows, msg+"; strict: its ALLOW rules were not generated, so those pods accept only what the NetworkPolicies allow", refs...)
			return nil
		}
	}
	key := "admin|" + string(pol.Kind) + "/" + pol.Name + "|" + action.String() + "|" + g.key + "|" + setString(ml)
	tg := targetGroup{name: policyName(c.np.Name, key), matchLabels: ml}
	if len(ml) == 0 {
		tg.matchLabels = nil
	}
	ap := c.newPolicy(&tg, rules)
	ap.Spec.Action = action
	labelAdmin(ap, pol)
	return ap
}

// labelAdmin labels a generated policy with the admin policy whose rules
// it holds.
func labelAdmin(ap *securityv1.AuthorizationPolicy, pol *adminpolicy.Compiled) {
	ap.Labels[LabelAdminPolicyKind] = string(pol.Kind)
	ap.Labels[LabelAdminPolicy] = labelValue(pol.Name)
	ap.Annotations[AnnotationAdminPolicy] = pol.Ref()
}

// adminSelector is the workload selector for the subject pods of group g:
// the group's own when the policy selects all of them, else the group's
// labels and the subject's matchLabels when those select exactly them.
func (c *tctx) adminSelector(g *targetGroup, pol *adminpolicy.Compiled, subj map[*podInfo]bool) (map[string]string, bool) {
	if len(subj) == len(g.pods) {
		return maps.Clone(g.matchLabels), true
	}
	ml := maps.Clone(g.matchLabels)
	if ml == nil {
		ml = map[string]string{}
	}
	if s := pol.Subject.Pods; s != nil {
		for k, v := range s.MatchLabels {
			if old, ok := ml[k]; ok && old != v {
				return maps.Clone(g.matchLabels), false
			}
			ml[k] = v
		}
	}
	got := c.ns.selectPods(exactSelector(ml))
	if len(got) != len(subj) {
		return maps.Clone(g.matchLabels), false
	}
	for _, p := range got {
		if !subj[p] {
			return maps.Clone(g.matchLabels), false
		}
	}
	return ml, true
}

// inOrder returns the pods of list that are in set, in list order.
func inOrder(list []*podInfo, set map[*podInfo]bool) []*podInfo {
	var out []*podInfo
	for _, p := range list {
		if set[p] {
			out = append(out, p)
		}
	}
	return out
}
