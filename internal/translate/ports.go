package translate

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// hbonePort is where ambient mesh traffic arrives at a pod.
const hbonePort = 15008

// resolvePorts turns a rule's ports into the port list of its `to` for the
// policy of group g. keep is false when the rule listed ports but none of
// them can be expressed: an empty `to` would allow every port, so the rule
// must be dropped. A nil list with keep means any port: no `to`.
func (c *tctx) resolvePorts(r *compiledRule, g *targetGroup) (ports []string, keep bool) {
	if len(r.ports) == 0 {
		return nil, true
	}
	anyPort := false
	var nums []int32
	// The ranges of one rule expand to at most maxRange ports together.
	budget := c.maxRange
	for i := range r.ports {
		p := &r.ports[i]
		switch {
		case p.protocol != corev1.ProtocolTCP:
			c.f.add(NonTCPNotEnforced, fmt.Sprintf("%s (%s) was left out: Istio enforces TCP only, so the NetworkPolicy remains the only control of that traffic", p.path, p),
				npRef(c.np.Namespace, c.np.Name))
		case p.any:
			anyPort = true
		case p.name != "":
			nums = append(nums, c.namedPort(p, g.pods)...)
		case p.first == p.last:
			nums = append(nums, p.first)
		default:
			count := int(p.last) - int(p.first) + 1
			if count <= budget {
				budget -= count
				for n := p.first; n <= p.last && n > 0; n++ {
					nums = append(nums, n)
				}
				continue
			}
			msg := fmt.Sprintf("%s (%s) covers %d ports, which takes the port ranges of this rule past the cap of %d ports per rule (--max-port-range), and Istio lists ports one by one", p.path, p, count, c.maxRange)
			if c.fidelity == FidelityPermissive {
				anyPort = true
				c.f.add(PortRangeTooLarge, msg+"; permissive: the rule allows any port; raise the cap or narrow the range", npRef(c.np.Namespace, c.np.Name))
			} else {
				c.f.add(PortRangeTooLarge, msg+"; strict: the range was left out; raise the cap or narrow the range", npRef(c.np.Namespace, c.np.Name))
			}
		}
	}
	if anyPort {
		return nil, true
	}
	if len(nums) == 0 {
		return nil, false
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	ports = make([]string, 0, len(nums))
	for _, n := range nums {
		ports = append(ports, strconv.Itoa(int(n)))
	}
	return ports, true
}

// namedPort resolves a named port against the TCP container ports of the
// pods a policy applies to. Where the pods disagree, permissive allows the
// union and strict allows none of it; both report NamedPortVaries.
func (c *tctx) namedPort(p *compiledPort, pods []*podInfo) []int32 {
	byNumbers := map[string][]*podInfo{}
	numbers := map[string][]int32{}
	var lacking []*podInfo
	var union []int32
	for _, pod := range pods {
		var nums []int32
		for _, cp := range pod.pod.Ports {
			if cp.Name == p.name && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) && cp.Port > 0 && cp.Port <= 65535 {
				nums = append(nums, cp.Port)
			}
		}
		if len(nums) == 0 {
			lacking = append(lacking, pod)
			continue
		}
		slices.Sort(nums)
		nums = slices.Compact(nums)
		key := joinPorts(nums)
		byNumbers[key] = append(byNumbers[key], pod)
		numbers[key] = nums
		union = append(union, nums...)
	}
	if len(byNumbers) == 0 {
		// No selected pod declares it: the NetworkPolicy allows nothing
		// through it either.
		return nil
	}
	slices.Sort(union)
	union = slices.Compact(union)
	if len(byNumbers) == 1 && len(lacking) == 0 {
		return union
	}

	keys := slices.SortedFunc(maps.Keys(byNumbers), func(a, b string) int {
		return slices.Compare(numbers[a], numbers[b])
	})
	var parts []string
	var refs []ObjectRef
	for _, k := range keys {
		ps := byNumbers[k]
		parts = append(parts, fmt.Sprintf("%s on %s %s", k, plural(len(ps), "pod", "pods"), podNames(c.ns.name, ps)))
		refs = append(refs, podRefs(ps)...)
	}
	if len(lacking) > 0 {
		parts = append(parts, fmt.Sprintf("not declared on %s %s", plural(len(lacking), "pod", "pods"), podNames(c.ns.name, lacking)))
		refs = append(refs, podRefs(lacking)...)
	}
	msg := fmt.Sprintf("named port %q of %s is not the same port on every selected pod: %s", p.name, p.path, strings.Join(parts, "; "))
	if c.fidelity == FidelityPermissive {
		c.f.add(NamedPortVaries, fmt.Sprintf("%s; permissive: Istio allows %s on all of them; give the port the same number on every selected pod", msg, joinPorts(union)), refs...)
		return union
	}
	c.f.add(NamedPortVaries, msg+"; strict: the port was left out; give the port the same number on every selected pod", refs...)
	return nil
}

func joinPorts(nums []int32) string {
	s := make([]string, len(nums))
	for i, n := range nums {
		s[i] = strconv.Itoa(int(n))
	}
	return strings.Join(s, ", ")
}

// allowsHBONE says whether a rule's ports let ambient mesh traffic in on
// TCP 15008. A rule without ports allows every port.
func allowsHBONE(r *compiledRule) bool {
	if len(r.ports) == 0 {
		return true
	}
	for _, p := range r.ports {
		if p.protocol == corev1.ProtocolTCP && (p.any || (p.name == "" && p.first <= hbonePort && hbonePort <= p.last)) {
			return true
		}
	}
	return false
}
