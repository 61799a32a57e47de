package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// targetGroup is one AuthorizationPolicy to generate: its name, its
// workload selector and the selected pods it applies to.
type targetGroup struct {
	name string
	// key is the projection's setString; empty for the single policy of
	// a matchLabels or empty podSelector.
	key string
	// matchLabels of the workload selector; nil means no selector.
	matchLabels map[string]string
	// pods the NetworkPolicy selects that this policy applies to; named
	// ports resolve against them.
	pods []*podInfo
	// overreach is set when the selector also selects pods the
	// NetworkPolicy does not select: the policy then gets fixed rules
	// instead of the NetworkPolicy's (see targets).
	overreach overreachRules
}

// overreachRules are the rules of a policy whose selector reaches pods the
// NetworkPolicy does not select.
type overreachRules int

const (
	noOverreach overreachRules = iota
	// allowAll is one empty rule: Istio denies nothing to those pods.
	allowAll
	// allowNothing is no rule: Istio allows nothing to those pods beyond
	// what other policies allow.
	allowNothing
)

// targets decides the policies to generate for the policy's podSelector.
// It returns them sorted by name, and every pod the podSelector selects.
func (c *tctx) targets(cp *compiledPolicy) ([]targetGroup, []*podInfo) {
	sel := cp.target
	selected := c.ns.selectPods(sel)
	if len(sel.exprKeys) == 0 {
		if len(selected) == 0 {
			c.f.add(NoPodsSelected, "spec.podSelector matches no pod today; the AuthorizationPolicy is generated anyway so that pods created later are covered at once",
				npRef(c.np.Namespace, c.np.Name))
		}
		var ml map[string]string
		if !sel.empty {
			ml = maps.Clone(sel.matchLabels)
		}
		return []targetGroup{{name: policyName(c.np.Name, ""), matchLabels: ml, pods: selected}}, selected
	}
	if len(selected) == 0 {
		c.f.add(NoPodsSelected, "spec.podSelector matches no pod today; a podSelector with matchExpressions yields no AuthorizationPolicy until matching pods exist",
			npRef(c.np.Namespace, c.np.Name))
		return nil, nil
	}

	// matchExpressions: Istio selectors only match labels exactly, so each
	// distinct projection of the selected pods becomes its own policy.
	isSelected := make(map[*podInfo]bool, len(selected))
	projections := map[string]map[string]string{}
	for _, p := range selected {
		isSelected[p] = true
		proj := sel.projection(p)
		projections[setString(proj)] = proj
	}
	var groups []targetGroup
	for _, key := range slices.Sorted(maps.Keys(projections)) {
		proj := projections[key]
		name := policyName(c.np.Name, key)
		var covered, overreach, own []*podInfo
		for _, p := range c.ns.selectPods(exactSelector(proj)) {
			switch {
			case !isSelected[p]:
				overreach = append(overreach, p)
			case setString(sel.projection(p)) == key:
				own = append(own, p)
				covered = append(covered, p)
			default:
				covered = append(covered, p)
			}
		}
		g := targetGroup{name: name, key: key, matchLabels: proj, pods: covered}
		if len(proj) == 0 {
			g.matchLabels = nil
		}
		if len(overreach) > 0 {
			msg := fmt.Sprintf("Istio can only select exact labels, and the labels {%s} that stand for %s %s of spec.podSelector also select %s %s, which the NetworkPolicy does not select",
				key, plural(len(own), "pod", "pods"), podNames(c.ns.name, own), plural(len(overreach), "pod", "pods"), podNames(c.ns.name, overreach))
			refs := append(podRefs(own), podRefs(overreach)...)
			// Istio's ALLOW policies add up, so neither the NetworkPolicy's
			// rules nor no policy at all is safe here: other policies (a
			// deny-all, say) may already restrict these pods. Leaving the
			// selected pods out would deny them what the NetworkPolicy
			// allows; giving them the rules would allow the others what it
			// denies. So permissive allows everything to these labels, and
			// strict allows nothing through them.
			if c.fidelity == FidelityPermissive {
				g.overreach = allowAll
				all := append(slices.Clone(covered), overreach...)
				slices.SortFunc(all, func(a, b *podInfo) int { return strings.Compare(a.pod.Name, b.pod.Name) })
				c.f.add(SelectorOverreach, fmt.Sprintf("%s; permissive: AuthorizationPolicy %s allows any traffic to these labels, so Istio denies nothing to %s; give the selected pods a label the others lack and select on it",
					msg, name, podNames(c.ns.name, all)), podRefs(all)...)
			} else {
				g.overreach = allowNothing
				c.f.add(SelectorOverreach, fmt.Sprintf("%s; strict: AuthorizationPolicy %s allows nothing to these labels, so %s %s no access through this NetworkPolicy; give the selected pods a label the others lack and select on it",
					msg, name, podNames(c.ns.name, own), pick(len(own) == 1, "gets", "get")), refs...)
			}
		}
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b targetGroup) int { return strings.Compare(a.name, b.name) })
	return groups, selected
}
