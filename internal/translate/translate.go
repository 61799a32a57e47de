package translate

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Translate translates every NetworkPolicy of the snapshot. It never
// mutates s, and the same input always gives the same output.
func Translate(s Snapshot, o Options) Result {
	idx := buildIndex(s)
	approvals := approvalsFor(s.Approvals)
	settings := map[string]nsSettings{}
	nps := sortedPolicies(s.NetworkPolicies)
	out := make([]Translation, 0, len(nps))
	for _, np := range nps {
		st, ok := settings[np.Namespace]
		if !ok {
			st = settingsFor(idx.namespaces[np.Namespace], o)
			settings[np.Namespace] = st
		}
		out = append(out, translatePolicy(idx, np, st, o, approvals[[2]string{np.Namespace, np.Name}]))
	}
	resolveConflicts(out)
	return Result{Translations: out}
}

// tctx is the state of translating one NetworkPolicy.
type tctx struct {
	idx      *index
	np       *networkingv1.NetworkPolicy
	ns       *nsInfo
	mode     Mode
	fidelity Fidelity
	maxRange int
	f        findingList
	review   review
}

// translatePolicy translates one NetworkPolicy; approved holds its approval
// record, nil when it has none.
func translatePolicy(idx *index, np *networkingv1.NetworkPolicy, st nsSettings, o Options, approved map[Identity]bool) Translation {
	t := Translation{
		NetworkPolicy: types.NamespacedName{Namespace: np.Namespace, Name: np.Name},
		Generation:    np.Generation,
		Action:        ActionRemove,
	}
	if st.optedOut {
		return t
	}
	if np.Namespace == idx.rootNamespace {
		var f findingList
		f.add(RootNamespaceSkipped, fmt.Sprintf("NetworkPolicy %s/%s is in the Istio root namespace %s, where an AuthorizationPolicy would apply to the whole mesh; nothing was generated for it",
			np.Namespace, np.Name, idx.rootNamespace), npRef(np.Namespace, np.Name))
		t.Findings = f.sorted()
		return t
	}
	if len(st.findings) > 0 {
		t.Findings = st.findings.clone().sorted()
		t.Action = ActionKeep
		return t
	}
	t.Mode, t.Fidelity, t.Identity = st.mode, st.fidelity, st.identity

	cp, errs := compile(np)
	if len(errs) > 0 {
		var f findingList
		for _, e := range errs {
			f.add(InvalidPolicy, fmt.Sprintf("%s; nothing new is generated for NetworkPolicy %s/%s until it is fixed, and what was generated from it before is kept unchanged", e, np.Namespace, np.Name),
				npRef(np.Namespace, np.Name))
		}
		t.Findings = f.sorted()
		t.Action = ActionKeep
		return t
	}

	c := &tctx{
		idx:      idx,
		np:       np,
		ns:       idx.namespaces[np.Namespace],
		mode:     st.mode,
		fidelity: st.fidelity,
		maxRange: o.MaxPortRange,
		review:   review{on: st.identity == IdentityReview, approved: approved},
	}
	// The first translation (no record): everything resolved now is
	// approved, and the caller records it.
	t.Baseline = c.review.on && approved == nil
	if c.maxRange <= 0 {
		c.maxRange = DefaultMaxPortRange
	}
	t.Action = ActionApply
	t.Policies = c.translate(cp)
	t.Identities = c.review.identities()
	t.Pending = c.review.pendingList()
	for _, p := range t.Pending {
		c.f = append(c.f, PendingFinding(np.Namespace, np.Name, p))
	}
	t.Findings = c.f.sorted()
	t.Principals, t.Rules = count(t.Policies)
	return t
}

// translate generates the policies of one valid NetworkPolicy.
func (c *tctx) translate(cp *compiledPolicy) []*securityv1.AuthorizationPolicy {
	self := npRef(c.np.Namespace, c.np.Name)
	if cp.egress {
		if cp.ingress {
			c.f.add(EgressNotTranslated, "the egress rules of this NetworkPolicy were not translated: an AuthorizationPolicy controls what a workload accepts, not what it sends, so the NetworkPolicy remains the only control of egress", self)
		} else {
			c.f.add(EgressNotTranslated, "this NetworkPolicy only restricts egress, which an AuthorizationPolicy cannot express (it controls what a workload accepts, not what it sends); nothing was generated and the NetworkPolicy remains the only control of egress", self)
		}
	}
	if !cp.ingress {
		return nil
	}

	c.ambientFindings(cp)

	groups, selected := c.targets(cp)
	c.targetsNotInMesh(selected)
	if len(groups) == 0 {
		return nil
	}

	froms := make([]*resolvedFrom, len(cp.rules))
	used := make([]bool, len(cp.rules))
	for i := range cp.rules {
		froms[i] = c.resolveFrom(&cp.rules[i])
	}
	var kept []int
	rps := make([]*rulePorts, len(cp.rules))
	for i := range cp.rules {
		if !froms[i].dropped() {
			kept = append(kept, i)
		}
	}
	// Waypoints: policies bound to the Services at their waypoint, and
	// the waypoints' principals as one more source of the rules here.
	var extra *sourceSpec
	var servicePolicies []*securityv1.AuthorizationPolicy
	plan := c.planWaypoints(selected)
	if plan != nil {
		for _, i := range kept {
			if rps[i] == nil {
				rps[i] = c.rulePorts(&cp.rules[i])
			}
		}
		extra = c.admitWaypoints(plan, cp, froms, kept)
		servicePolicies = c.servicePolicies(plan, cp, froms, kept, rps, selected)
	}
	sources := func(from *resolvedFrom) []sourceSpec {
		if extra == nil || from.anySource {
			return from.sources
		}
		return append(slices.Clip(from.sources), *extra)
	}
	policies := make([]*securityv1.AuthorizationPolicy, 0, len(groups)+len(servicePolicies))
	for gi := range groups {
		g := &groups[gi]
		switch g.overreach {
		case allowAll:
			policies = append(policies, c.newPolicy(g, []*secv1beta1.Rule{{}}))
			continue
		case allowNothing:
			policies = append(policies, c.newPolicy(g, nil))
			continue
		}
		for _, i := range kept {
			if rps[i] == nil {
				rps[i] = c.rulePorts(&cp.rules[i])
			}
		}
		// The base policy selects every pod of the group; overlays open
		// the named ports that differ between its pods (see planNamedPorts).
		plan := c.planNamedPorts(g, rps, kept)
		var rules []*secv1beta1.Rule
		for _, i := range kept {
			ports, keep := rps[i].render(false, c.baseNamed(&plan))
			if !keep {
				continue
			}
			used[i] = true
			rules = append(rules, newRule(sources(froms[i]), ports))
		}
		policies = append(policies, c.newPolicy(g, rules))
		for oi := range plan.overlays {
			o := &plan.overlays[oi]
			var rules []*secv1beta1.Rule
			for _, i := range kept {
				ports, keep := rps[i].render(true, c.overlayNamed(&plan, o))
				if !keep {
					continue
				}
				used[i] = true
				rules = append(rules, newRule(sources(froms[i]), ports))
			}
			// An overlay without rules adds nothing to the base.
			if len(rules) > 0 {
				policies = append(policies, c.newPolicy(&o.targetGroup, rules))
			}
		}
	}
	policies = append(policies, servicePolicies...)
	policies = append(policies, c.admin(groups, selected, plan, extra)...)
	slices.SortFunc(policies, func(a, b *securityv1.AuthorizationPolicy) int { return cmp.Compare(a.Name, b.Name) })
	// Peer findings explain the sources of generated rules, or why a rule
	// lost all its sources; a rule dropped for its ports needs neither.
	for i, from := range froms {
		if used[i] || from.dropped() {
			c.f = append(c.f, from.findings...)
		}
	}
	return policies
}

// count returns the distinct principals and the rules of policies.
func count(policies []*securityv1.AuthorizationPolicy) (principals, rules int) {
	seen := map[string]bool{}
	for _, ap := range policies {
		rules += len(ap.Spec.Rules)
		for _, r := range ap.Spec.Rules {
			for _, f := range r.From {
				for _, p := range f.Source.Principals {
					seen[p] = true
				}
			}
		}
	}
	return len(seen), rules
}

// sortedPolicies orders the policies by namespace and name. Duplicates (the
// same file read twice offline) are ordered by content, so that input order
// never shows in the output.
func sortedPolicies(in []networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
	nps := make([]*networkingv1.NetworkPolicy, len(in))
	for i := range in {
		nps[i] = &in[i]
	}
	slices.SortStableFunc(nps, func(a, b *networkingv1.NetworkPolicy) int {
		if c := cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)); c != 0 {
			return c
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Compare(ja, jb)
	})
	return nps
}
