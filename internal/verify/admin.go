package verify

import (
	"net/netip"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// The admin network policies, evaluated with the API's semantics over the
// classes of a world, as the NetworkPolicies are: for a destination, the
// admin tier's rules in precedence order (the first that matches decides:
// Allow, Deny, or Pass to the NetworkPolicies), then the NetworkPolicies
// where one selects the pod, else the baseline tier, else allow; the same
// for the source's egress.

// Verify's own explanations of what the translation never covers.
const (
	// AdminPolicyNotTranslated: an admin policy decides traffic to pods no
	// NetworkPolicy selects, for which nothing is generated.
	AdminPolicyNotTranslated = "AdminPolicyNotTranslated"
	// AdminEgressNotTranslated: an admin policy's egress rules deny what
	// the source sends; AuthorizationPolicies control what a workload
	// accepts.
	AdminEgressNotTranslated = "AdminEgressNotTranslated"
)

// adminEval evaluates the admin policies of a world.
type adminEval struct {
	w        *world
	policies []*adminpolicy.Compiled
	// ruleSrc caches the source classes an ingress rule's peers match;
	// subjSrc the source classes a policy's subject selects.
	ruleSrc map[*adminpolicy.CompiledRule]bitset
	subjSrc map[*adminpolicy.Compiled]bitset
	// egressSubjects are the source classes some admin egress rule
	// applies to.
	egressSubjects bitset
}

// adminContrib is one rule's share at a destination.
type adminContrib struct {
	action adminpolicy.Action
	src    bitset
	ports  portSet
}

// adminAt is what the admin policies say about one destination class.
type adminAt struct {
	in, baseIn []adminContrib
	eg, baseEg []adminContrib
	// scratch, for the one worker that checks the destination.
	decided, allow, deny bitset
}

// compileAdmin compiles the snapshot's admin policies, noting those left
// out, and adds what they read to the class keys.
func (e *engine) compileAdmin(in []adminpolicy.Policy, keys *classKeys) []*adminpolicy.Compiled {
	var out []*adminpolicy.Compiled
	for i := range in {
		p := in[i]
		c, errs := adminpolicy.Compile(&p)
		if len(errs) > 0 {
			e.notes = append(e.notes, Note{Kind: string(p.Kind), Name: p.Name, Message: "the API server would reject it (" + errs[0].Error() + "), so verify leaves it out"})
			continue
		}
		out = append(out, c)
		for _, k := range c.SubjectKeys() {
			keys.dstLabels[k] = true
			keys.srcLabels[k] = true
		}
		for i := range c.Ingress {
			for _, k := range c.Ingress[i].PeerKeys() {
				keys.srcLabels[k] = true
			}
		}
		for i := range c.Egress {
			for _, k := range c.Egress[i].PeerKeys() {
				keys.dstLabels[k] = true
			}
			keys.dstCIDRs = append(keys.dstCIDRs, c.Egress[i].Networks()...)
		}
	}
	adminpolicy.Sort(out)
	return out
}

func newAdminEval(w *world, policies []*adminpolicy.Compiled) *adminEval {
	a := &adminEval{w: w, policies: policies, ruleSrc: map[*adminpolicy.CompiledRule]bitset{}, subjSrc: map[*adminpolicy.Compiled]bitset{}}
	a.egressSubjects = w.newSrcSet()
	for _, p := range policies {
		if len(p.Egress) > 0 {
			a.egressSubjects.or(a.subjects(p))
		}
	}
	return a
}

// subjects are the source classes (pods) a policy's subject selects.
func (a *adminEval) subjects(p *adminpolicy.Compiled) bitset {
	if b, ok := a.subjSrc[p]; ok {
		return b
	}
	b := a.w.newSrcSet()
	for i, c := range a.w.srcs {
		if c.external == nil && p.Selects(c.ns.labels, c.labels) {
			b.set(i)
		}
	}
	a.subjSrc[p] = b
	return b
}

// sources are the source classes an ingress rule's peers match: pods by
// their labels, never an address outside the cluster (ingress peers are
// pods and namespaces), but a peer of a newer version fails closed.
func (a *adminEval) sources(r *adminpolicy.CompiledRule) bitset {
	if b, ok := a.ruleSrc[r]; ok {
		return b
	}
	b := a.w.newSrcSet()
	for i, c := range a.w.srcs {
		if c.external != nil {
			if r.MatchesAddress(c.addr) {
				b.set(i)
			}
			continue
		}
		if r.MatchesPod(c.ns.labels, c.labels, netip.Addr{}) {
			b.set(i)
		}
	}
	a.ruleSrc[r] = b
	return b
}

func adminPortsAt(r *adminpolicy.CompiledRule, d *dstClass) portSet {
	ranges, all := r.TCPPorts(func(name string) []int32 { return d.namedPorts[name] })
	if all {
		return allPorts
	}
	rs := make([]PortRange, 0, len(ranges))
	for _, pr := range ranges {
		rs = append(rs, PortRange{pr.First, pr.Last})
	}
	return portsOf(rs...)
}

// at collects the rules that apply at d, in precedence order; nil when
// none does.
func (a *adminEval) at(d *dstClass) *adminAt {
	if len(a.policies) == 0 {
		return nil
	}
	out := &adminAt{}
	for _, p := range a.policies {
		if p.Selects(d.ns.labels, d.labels) {
			for i := range p.Ingress {
				r := &p.Ingress[i]
				ports := adminPortsAt(r, d)
				if len(ports) == 0 {
					continue
				}
				c := adminContrib{action: r.Action, src: a.sources(r), ports: ports}
				if p.Tier == adminpolicy.TierAdmin {
					out.in = append(out.in, c)
				} else {
					out.baseIn = append(out.baseIn, c)
				}
			}
		}
		for i := range p.Egress {
			r := &p.Egress[i]
			if !r.MatchesPod(d.ns.labels, d.labels, d.addr) {
				continue
			}
			ports := adminPortsAt(r, d)
			if len(ports) == 0 {
				continue
			}
			c := adminContrib{action: r.Action, src: a.subjects(p), ports: ports}
			if p.Tier == adminpolicy.TierAdmin {
				out.eg = append(out.eg, c)
			} else {
				out.baseEg = append(out.baseEg, c)
			}
		}
	}
	if len(out.in)+len(out.baseIn)+len(out.eg)+len(out.baseEg) == 0 {
		return nil
	}
	out.decided, out.allow, out.deny = a.w.newSrcSet(), a.w.newSrcSet(), a.w.newSrcSet()
	return out
}

// allowPortsAt are the ports the admin tier's Allow rules match at d. The
// translation writes those rules as ALLOW rules beside the rules of the
// NetworkPolicies selecting d, resolving their peers as a NetworkPolicy's:
// the findings it raises for those peers (SourceNotInMesh, SharedIdentity,
// IdentityPending, NamespaceUnknown) name the NetworkPolicy, and are about
// these ports as well as its own.
func (a *adminEval) allowPortsAt(d *dstClass) portSet {
	var out portSet
	for _, p := range a.policies {
		if p.Tier != adminpolicy.TierAdmin || !p.Selects(d.ns.labels, d.labels) {
			continue
		}
		for i := range p.Ingress {
			if r := &p.Ingress[i]; r.Action == adminpolicy.ActionAllow {
				out = out.union(adminPortsAt(r, d))
			}
		}
	}
	return out
}

func (a *adminAt) portSets() []portSet {
	var out []portSet
	for _, list := range [][]adminContrib{a.in, a.baseIn, a.eg, a.baseEg} {
		for _, c := range list {
			out = append(out, c.ports)
		}
	}
	return out
}

// walk is the first-match evaluation of one tier's rules on port p: it
// fills allow and deny with the sources an Allow or a Deny decides;
// decided has every source a rule matched (Pass included), which no later
// rule of the tier may decide.
func (a *adminAt) walk(rules []adminContrib, p int32) {
	a.decided.clear()
	a.allow.clear()
	a.deny.clear()
	for _, c := range rules {
		if !c.ports.contains(p) {
			continue
		}
		for w := range c.src {
			m := c.src[w] &^ a.decided[w]
			switch c.action {
			case adminpolicy.ActionAllow:
				a.allow[w] |= m
			case adminpolicy.ActionDeny:
				a.deny[w] |= m
			}
			a.decided[w] |= m
		}
	}
}

// apply turns the NetworkPolicies' verdicts on port p (ingress: strict and
// loose; egress: egress and looseEg) into the whole stack's. isolated says
// a NetworkPolicy selects the destination for ingress; egressIsolated has
// the sources a NetworkPolicy selects for egress.
func (a *adminAt) apply(p int32, strict, loose, egress, looseEg bitset, isolated bool, egressIsolated bitset) {
	if !isolated && len(a.baseIn) > 0 {
		a.walk(a.baseIn, p)
		strict.andNot(a.deny)
		loose.andNot(a.deny)
	}
	// Pass leaves the verdict below; Allow and Deny replace it.
	if len(a.in) > 0 {
		a.walk(a.in, p)
		for _, b := range []bitset{strict, loose} {
			b.andNot(a.deny)
			b.or(a.allow)
		}
	}
	if len(a.baseEg) > 0 {
		a.walk(a.baseEg, p)
		a.deny.andNot(egressIsolated)
		egress.andNot(a.deny)
		looseEg.andNot(a.deny)
	}
	if len(a.eg) > 0 {
		a.walk(a.eg, p)
		for _, b := range []bitset{egress, looseEg} {
			b.andNot(a.deny)
			b.or(a.allow)
		}
	}
}

// adminExplainers turns the admin findings of a translation into
// explainers, and adds verify's own for what no translation covers.
func (e *engine) adminFindingExplainer(x *explainer, f translate.Finding, permissive bool, objDst map[int]bool) bool {
	if e.admin == nil {
		return false
	}
	x.dsts = objDst
	x.src = e.w.newSrcSet()
	for _, o := range f.Objects {
		for _, p := range e.admin.policies {
			if string(p.Kind) == o.Kind && p.Name == o.Name {
				for i := range p.Ingress {
					x.src.or(e.admin.sources(&p.Ingress[i]))
				}
			}
		}
	}
	switch f.Type {
	case translate.AdminPolicyAllows:
		x.more, x.less = permissive, !permissive
		if permissive {
			// Permissive's ALLOW admits the rule's sources by principal,
			// and those outside the mesh by address, or by any address
			// when theirs is unknown: where it widens the rule (to every
			// port, to more pods), it widens it for all of them.
			x.src = e.sharingSources(x.src, true)
		}
	case translate.AdminPolicyDenies:
		x.more, x.less = true, !permissive
		if !permissive {
			// Strict's DENY names principals and addresses: it also
			// denies the other pods of those ServiceAccounts, and the
			// other pods at those addresses, as its notes say.
			x.src = e.sharingSources(x.src, false)
		}
	case translate.AdminPolicyConflict:
		x.more, x.less = true, true
	default:
		return false
	}
	return true
}

// sharingSources are the source classes of b and those that share a
// principal with a class of b in the mesh, or an address with one outside
// it; nil (any source) when anyAddress and a class of b outside the mesh
// has no known address.
func (e *engine) sharingSources(b bitset, anyAddress bool) bitset {
	out := e.w.newSrcSet()
	out.or(b)
	for i, c := range e.w.srcs {
		if c.external != nil || !b.has(i) {
			continue
		}
		var same []int
		switch {
		case c.inMesh:
			same = e.w.srcByPrincipal[c.principal]
		case c.addr.IsValid():
			same = e.w.srcByAddr[c.addr]
		case anyAddress:
			return nil
		}
		for _, j := range same {
			if e.w.srcs[j].external == nil {
				out.set(j)
			}
		}
	}
	return out
}

var (
	adminNotTranslatedExplanation = &Explanation{
		Type: AdminPolicyNotTranslated, By: ByVerify, Severity: string(translate.SeverityWarning),
		Message: "no NetworkPolicy selects these pods for ingress, so netpol2authz generates no AuthorizationPolicy for them and Istio allows everything; the admin network policies that select them (admin or baseline tier) are enforced by the network plugin alone",
	}
	adminEgressExplanation = &Explanation{
		Type: AdminEgressNotTranslated, By: ByVerify, Severity: string(translate.SeverityWarning),
		Message: "an admin network policy's egress rules decide what these sources send; an AuthorizationPolicy controls what a workload accepts, not what it sends, so the network plugin remains the only control of admin egress",
	}
)

// adminOwnExplainers are verify's own explainers for what admin policies
// decide where no translation reaches: destinations no NetworkPolicy
// selects for ingress, and the sources' egress.
func (e *engine) adminOwnExplainers(add func(*explainer)) {
	if e.admin == nil || len(e.admin.policies) == 0 {
		return
	}
	dsts := map[int]bool{}
	for i, d := range e.w.dsts {
		selected := false
		for _, np := range e.np.byNS[d.ns.name] {
			if np.ingress && np.selects(d) {
				selected = true
				break
			}
		}
		if selected {
			continue
		}
		for _, p := range e.admin.policies {
			if len(p.Ingress) > 0 && p.Selects(d.ns.labels, d.labels) {
				dsts[i] = true
				break
			}
		}
	}
	if len(dsts) > 0 {
		add(&explainer{expl: adminNotTranslatedExplanation, more: true, dsts: dsts, rank: rankAdminOwn})
	}
	if !e.admin.egressSubjects.empty() {
		add(&explainer{expl: adminEgressExplanation, more: true, egress: true, src: e.admin.egressSubjects, rank: rankAdminOwn + 1})
	}
}
