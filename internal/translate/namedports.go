package translate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Named ports exact per pod.
//
// A named port is a number per pod. When the pods of one generated policy
// (a target group) give a named port of the policy different numbers, or
// some lack it, one list of numbers cannot be right for all of them. The
// group's policy (the base) then keeps everything that does not vary: the
// rules' numbers, and named ports every pod of the group agrees on. What
// varies goes into overlay policies, each with a selector that Istio can
// write (the group's matchLabels plus some of the pods' own labels) and
// the rules' varying named ports resolved against the pods that selector
// selects. ALLOW policies add up, so a pod gets the base's ports and its
// overlays': exactly its own numbers.
//
// An overlay's selector must select only pods that agree on every varying
// port (a pure selector), or the pods would open each other's numbers.
// The narrowest selector that selects pod p carries all of p's labels and
// selects every pod of the group whose labels include them; if those pods
// do not all agree with p, no selector tells p apart, and p falls back:
// the selector of all its labels gets the union of the numbers of the
// pods with exactly those labels (permissive) or none of them (strict),
// reported NamedPortVaries. That fallback selector is the base's own when
// every pod of the group carries p's labels.
//
// Overlay selectors only ever add labels to the group's matchLabels, and
// every pod those select is a pod the NetworkPolicy selects (a group whose
// selector reaches other pods gets fixed rules, not these), so an overlay
// never reaches a pod the NetworkPolicy leaves alone. The base still
// selects every pod of the group, so a pod whose overlay has no rule (it
// lacks the port: the NetworkPolicy allows it nothing through that port)
// is not left without an ALLOW policy, which would allow it everything.

// volatileLabels are labels that controllers set per revision or per pod:
// a selector on them churns with every rollout, so they are the last
// choice to tell pods apart.
var volatileLabels = map[string]bool{
	"pod-template-hash":                  true,
	"controller-revision-hash":           true,
	"pod-template-generation":            true,
	"statefulset.kubernetes.io/pod-name": true,
	"apps.kubernetes.io/pod-index":       true,
	"controller-uid":                     true,
	"batch.kubernetes.io/controller-uid": true,
}

// maxPairSearch bounds the extra labels whose pairs are tried as a
// selector; beyond it the search goes from all labels down.
const maxPairSearch = 12

// portPlan says how the named ports of one target group resolve in its
// base policy and its overlays.
type portPlan struct {
	group *targetGroup
	// vary are the named ports whose numbers differ between the group's
	// pods; nil when the group needs no overlay.
	vary map[string]bool
	// base is set when some pods of the group cannot be told apart from
	// all the others: the base resolves the varying ports as a fallback.
	base *fallback
	// overlays are sorted by name.
	overlays []overlay
}

// overlay is a policy for some pods of a group, carrying the rules'
// varying named ports resolved against them.
type overlay struct {
	targetGroup
	// fb is set when the pods selected do not all agree on the varying
	// ports.
	fb *fallback
}

// fallback describes pods that no selector tells apart from others.
type fallback struct {
	// labels the defining pods carry, all of them.
	labels map[string]string
	// defining are the pods that carry exactly labels: every selector
	// that selects one of them selects every pod of the policy.
	defining []*podInfo
}

// planNamedPorts decides the overlays of group g for the rules kept.
func (c *tctx) planNamedPorts(g *targetGroup, rps []*rulePorts, kept []int) portPlan {
	plan := portPlan{group: g}
	if g.overreach != noOverreach || len(g.pods) < 2 {
		return plan
	}
	var names map[string]bool
	for _, i := range kept {
		if rps[i].limited() {
			for _, p := range rps[i].named {
				if names == nil {
					names = map[string]bool{}
				}
				names[p.name] = true
			}
		}
	}
	if names == nil {
		return plan
	}
	var varying []string
	var firstBuf, buf [8]int32
	for _, n := range slices.Sorted(maps.Keys(names)) {
		first := appendPortNumbers(firstBuf[:0], g.pods[0], n)
		for _, p := range g.pods[1:] {
			if !slices.Equal(first, appendPortNumbers(buf[:0], p, n)) {
				if plan.vary == nil {
					plan.vary = map[string]bool{}
				}
				plan.vary[n] = true
				varying = append(varying, n)
				break
			}
		}
	}
	if len(varying) == 0 {
		return plan
	}

	// class is what a pod opens: its numbers of every varying port.
	class := make(map[*podInfo]string, len(g.pods))
	for _, p := range g.pods {
		parts := make([]string, len(varying))
		for i, n := range varying {
			parts[i] = n + "=" + joinPorts(portNumbers(p, n))
		}
		class[p] = strings.Join(parts, ";")
	}

	// The pods of the group by label set, fewest labels first: a pod
	// with fewer labels is harder to select alone, and a fallback for it
	// comes before the overlays of the pods it cannot be told from.
	type labelSet struct {
		key    string
		labels map[string]string
		pods   []*podInfo
	}
	byKey := map[string]*labelSet{}
	for _, p := range g.pods {
		k := setString(p.labels)
		if byKey[k] == nil {
			byKey[k] = &labelSet{key: k, labels: p.labels}
		}
		byKey[k].pods = append(byKey[k].pods, p)
	}
	sets := slices.SortedFunc(maps.Values(byKey), func(a, b *labelSet) int {
		return cmp.Or(cmp.Compare(len(a.labels), len(b.labels)), strings.Compare(a.key, b.key))
	})

	covered := map[*podInfo]bool{}
	byName := map[string]*overlay{}
	for _, ls := range sets {
		if !slices.ContainsFunc(ls.pods, func(p *podInfo) bool { return !covered[p] }) {
			continue
		}
		want := class[ls.pods[0]]
		// The narrowest selector of these pods: every pod carrying
		// their labels.
		narrowest := c.ns.selectPods(exactSelector(ls.labels))
		pure, within := true, true
		for _, p := range narrowest {
			if _, ok := class[p]; !ok {
				within = false
			} else if class[p] != want {
				pure = false
			}
		}
		if !within {
			// Cannot happen for a group without overreach; the base
			// selects only the group's pods, so fall back to it.
			plan.addBase(g, ls.labels, ls.pods)
			for _, p := range ls.pods {
				covered[p] = true
			}
			continue
		}
		if pure {
			ok := func(sel []*podInfo) bool {
				for _, p := range sel {
					if class[p] != want {
						return false
					}
				}
				return true
			}
			gain := func(sel []*podInfo) int {
				n := 0
				for _, p := range sel {
					if !covered[p] {
						n++
					}
				}
				return n
			}
			ml, sel := c.chooseSelector(g.matchLabels, ls.labels, ok, gain)
			o := overlay{targetGroup: targetGroup{name: overlayName(c.np.Name, g.key, ml), matchLabels: ml, pods: sel}}
			byName[o.name] = &o
			for _, p := range sel {
				covered[p] = true
			}
			continue
		}
		// No selector tells these pods apart from the others carrying
		// their labels: the narrowest selector falls back.
		set := make(map[*podInfo]bool, len(narrowest))
		for _, p := range narrowest {
			set[p] = true
		}
		same := func(sel []*podInfo) bool {
			if len(sel) != len(set) {
				return false
			}
			for _, p := range sel {
				if !set[p] {
					return false
				}
			}
			return true
		}
		ml, sel := c.chooseSelector(g.matchLabels, ls.labels, same, func([]*podInfo) int { return 0 })
		for _, p := range ls.pods {
			covered[p] = true
		}
		if len(ml) == len(g.matchLabels) {
			plan.addBase(g, ls.labels, ls.pods)
			continue
		}
		name := overlayName(c.np.Name, g.key, ml)
		if o := byName[name]; o != nil && o.fb != nil {
			o.fb.defining = append(o.fb.defining, ls.pods...)
			continue
		}
		byName[name] = &overlay{
			targetGroup: targetGroup{name: name, matchLabels: ml, pods: sel},
			fb:          &fallback{labels: ls.labels, defining: slices.Clone(ls.pods)},
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		plan.overlays = append(plan.overlays, *byName[name])
	}
	return plan
}

// addBase makes the base policy the fallback of pods with the given labels.
func (plan *portPlan) addBase(g *targetGroup, labels map[string]string, pods []*podInfo) {
	if plan.base == nil {
		plan.base = &fallback{labels: labels}
	}
	plan.base.defining = append(plan.base.defining, pods...)
}

// chooseSelector picks the label set of an overlay: the group's
// matchLabels plus as few of the labels x as will do, such that the pods
// it selects pass ok. Among sets of one size it prefers the one whose
// selection scores highest, then the fewest volatile labels, then the
// first in order. Beyond pairs it drops labels from x one by one. x itself
// must pass.
func (c *tctx) chooseSelector(base, x map[string]string, ok func([]*podInfo) bool, score func([]*podInfo) int) (map[string]string, []*podInfo) {
	var extra []string
	for _, k := range slices.Sorted(maps.Keys(x)) {
		if _, inBase := base[k]; !inBase {
			extra = append(extra, k)
		}
	}
	with := func(keys ...string) map[string]string {
		m := maps.Clone(base)
		if m == nil {
			m = make(map[string]string, len(keys))
		}
		for _, k := range keys {
			m[k] = x[k]
		}
		return m
	}
	volatile := func(m map[string]string) int {
		n := 0
		for k := range m {
			if volatileLabels[k] {
				n++
			}
		}
		return n
	}
	var best map[string]string
	var bestSel []*podInfo
	bestScore := 0
	try := func(m map[string]string) {
		sel := c.ns.selectPods(exactSelector(m))
		if len(sel) == 0 || !ok(sel) {
			return
		}
		s := score(sel)
		if best != nil && cmp.Or(cmp.Compare(bestScore, s), cmp.Compare(volatile(m), volatile(best)), strings.Compare(setString(m), setString(best))) >= 0 {
			return
		}
		best, bestSel, bestScore = m, sel, s
	}
	// The fewest labels first: none, one, then two.
	try(with())
	if best == nil {
		for i := range extra {
			try(with(extra[i]))
		}
	}
	if best == nil && len(extra) <= maxPairSearch {
		for i := range extra {
			for j := i + 1; j < len(extra); j++ {
				try(with(extra[i], extra[j]))
			}
		}
	}
	if best != nil {
		return normalize(best), bestSel
	}
	// From all of x down: drop volatile labels first, then in key order,
	// each that the selection can do without.
	order := slices.Clone(extra)
	slices.SortStableFunc(order, func(a, b string) int {
		return cmp.Compare(btoi(!volatileLabels[a]), btoi(!volatileLabels[b]))
	})
	keep := map[string]bool{}
	for _, k := range extra {
		keep[k] = true
	}
	keys := func() []string {
		var out []string
		for _, k := range extra {
			if keep[k] {
				out = append(out, k)
			}
		}
		return out
	}
	for _, k := range order {
		keep[k] = false
		if sel := c.ns.selectPods(exactSelector(with(keys()...))); len(sel) == 0 || !ok(sel) {
			keep[k] = true
		}
	}
	m := with(keys()...)
	return normalize(m), c.ns.selectPods(exactSelector(m))
}

// normalize returns nil for an empty label set: no selector.
func normalize(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// overlayName names an overlay of the group with projection key group by
// its selector: "|" never occurs in a label, so it never takes the name
// of a projection's policy.
func overlayName(np, group string, matchLabels map[string]string) string {
	return policyName(np, group+"|"+setString(matchLabels))
}

// baseNamed resolves a named port in the base policy: every pod of the
// group agrees on it, or the base is the fallback of some pods; otherwise
// overlays carry it.
func (c *tctx) baseNamed(plan *portPlan) func(*compiledPort) []int32 {
	return func(p *compiledPort) []int32 {
		switch {
		case !plan.vary[p.name]:
			// Every pod of the group agrees on it.
			if len(plan.group.pods) == 0 {
				return nil
			}
			return portNumbers(plan.group.pods[0], p.name)
		case plan.base != nil:
			return c.resolveNamed(p, plan.group.name, plan.group.pods, plan.base)
		}
		return nil
	}
}

// overlayNamed resolves the varying named ports in overlay o.
func (c *tctx) overlayNamed(plan *portPlan, o *overlay) func(*compiledPort) []int32 {
	return func(p *compiledPort) []int32 {
		if !plan.vary[p.name] {
			return nil
		}
		return c.resolveNamed(p, o.name, o.pods, o.fb)
	}
}

// resolveNamed resolves named port p against the pods that policy
// selects. Where they disagree, fb says which pods the policy is the
// fallback of: if every pod has all their numbers, those are exact;
// otherwise permissive opens them on all the pods and strict none, and
// both report NamedPortVaries. Without fb (which the plan never leaves
// where pods disagree) all the pods stand for the defining ones.
func (c *tctx) resolveNamed(p *compiledPort, policy string, pods []*podInfo, fb *fallback) []int32 {
	byNumbers := map[string][]*podInfo{}
	numbers := map[string][]int32{}
	var lacking []*podInfo
	for _, pod := range pods {
		nums := portNumbers(pod, p.name)
		if len(nums) == 0 {
			lacking = append(lacking, pod)
			continue
		}
		key := joinPorts(nums)
		byNumbers[key] = append(byNumbers[key], pod)
		numbers[key] = nums
	}
	if len(byNumbers) == 0 {
		// No pod declares it: the NetworkPolicy allows nothing through
		// it either.
		return nil
	}
	if len(byNumbers) == 1 && len(lacking) == 0 {
		for _, nums := range numbers {
			return nums
		}
	}
	defining := pods
	if fb != nil {
		defining = fb.defining
	}
	// What the pods that cannot be told apart open: their union.
	var union []int32
	var losers []*podInfo
	for _, pod := range defining {
		if nums := portNumbers(pod, p.name); len(nums) > 0 {
			union = append(union, nums...)
			losers = append(losers, pod)
		}
	}
	slices.Sort(union)
	union = slices.Compact(union)
	if len(union) == 0 {
		// They lack it: they open nothing, and the others are told
		// apart by overlays of their own.
		return nil
	}
	// The others must have every number of it, or they open more.
	var widened []*podInfo
	for _, pod := range pods {
		nums := portNumbers(pod, p.name)
		for _, n := range union {
			if _, found := slices.BinarySearch(nums, n); !found {
				widened = append(widened, pod)
				break
			}
		}
	}
	if len(widened) == 0 {
		return union
	}

	keys := slices.SortedFunc(maps.Keys(byNumbers), func(a, b string) int {
		return slices.Compare(numbers[a], numbers[b])
	})
	var parts []string
	for _, k := range keys {
		ps := byNumbers[k]
		parts = append(parts, fmt.Sprintf("%s on %s %s", k, plural(len(ps), "pod", "pods"), podNames(c.ns.name, ps)))
	}
	if len(lacking) > 0 {
		parts = append(parts, fmt.Sprintf("not declared on %s %s", plural(len(lacking), "pod", "pods"), podNames(c.ns.name, lacking)))
	}
	msg := fmt.Sprintf("named port %q of %s is not the same port on pods that no Istio selector tells apart: %s", p.name, p.path, strings.Join(parts, "; "))
	if fb != nil {
		if len(fb.defining) == len(pods) {
			msg += fmt.Sprintf(" (they carry the same labels {%s})", setString(fb.labels))
		} else {
			msg += fmt.Sprintf(" (every label of %s, {%s}, is on all of them)", podNames(c.ns.name, fb.defining), setString(fb.labels))
		}
	}
	const do = "give the pods of each number a label of their own"
	if c.fidelity == FidelityPermissive {
		c.f.add(NamedPortVaries, fmt.Sprintf("%s; permissive: AuthorizationPolicy %s allows %s on all of them; %s", msg, policy, joinPorts(union), do), podRefs(pods)...)
		return union
	}
	c.f.add(NamedPortVaries, fmt.Sprintf("%s; strict: the port was left out, so %s %s %s through this NetworkPolicy; %s",
		msg, plural(len(losers), "pod", "pods"), podNames(c.ns.name, losers), pick(len(losers) == 1, "does not open it", "do not open it"), do), podRefs(losers)...)
	return nil
}
