package translate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// hbonePort is where ambient mesh traffic arrives at a pod.
const hbonePort = 15008

// rulePorts is what a rule's ports come to before its named ports, which
// resolve against the pods of each generated policy.
type rulePorts struct {
	// given: the rule lists ports; without them it allows every port.
	given bool
	// any: some entry allows every TCP port (no port given, or a range
	// past the cap in permissive).
	any bool
	// nums are its TCP port numbers and expanded ranges.
	nums []int32
	// named are its TCP named ports, in rule order.
	named []*compiledPort
}

// rulePorts reads a rule's ports once, reporting what cannot be enforced:
// non-TCP ports and ranges past the cap.
func (c *tctx) rulePorts(r *compiledRule) *rulePorts {
	rp := &rulePorts{given: len(r.ports) > 0}
	// The ranges of one rule expand to at most maxRange ports together.
	budget := c.maxRange
	for i := range r.ports {
		p := &r.ports[i]
		switch {
		case p.protocol != corev1.ProtocolTCP:
			c.f.add(NonTCPNotEnforced, fmt.Sprintf("%s (%s) was left out: Istio enforces TCP only, so the NetworkPolicy remains the only control of that traffic", p.path, p),
				npRef(c.np.Namespace, c.np.Name))
		case p.any:
			rp.any = true
		case p.name != "":
			rp.named = append(rp.named, p)
		case p.first == p.last:
			rp.nums = append(rp.nums, p.first)
		default:
			count := int(p.last) - int(p.first) + 1
			if count <= budget {
				budget -= count
				for n := p.first; n <= p.last && n > 0; n++ {
					rp.nums = append(rp.nums, n)
				}
				continue
			}
			msg := fmt.Sprintf("%s (%s) covers %d ports, which takes the port ranges of this rule past the cap of %d ports per rule (--max-port-range), and Istio lists ports one by one", p.path, p, count, c.maxRange)
			if c.fidelity == FidelityPermissive {
				rp.any = true
				c.f.add(PortRangeTooLarge, msg+"; permissive: the rule allows any port; raise the cap or narrow the range", npRef(c.np.Namespace, c.np.Name))
			} else {
				c.f.add(PortRangeTooLarge, msg+"; strict: the range was left out; raise the cap or narrow the range", npRef(c.np.Namespace, c.np.Name))
			}
		}
	}
	return rp
}

// limited says whether the rule limits ports at all: only then do its
// named ports matter.
func (rp *rulePorts) limited() bool { return rp.given && !rp.any }

// render is the port list of the rule's `to` in one policy: its numbers
// (unless onlyNamed) and its named ports as named resolves them there.
// keep is false when the rule must be dropped from that policy: it limits
// ports and none is left, and an empty `to` would allow every port. A nil
// list with keep means any port: no `to`. A rule that allows any port is
// kept only where onlyNamed is false.
func (rp *rulePorts) render(onlyNamed bool, named func(*compiledPort) []int32) (ports []string, keep bool) {
	if !rp.limited() {
		return nil, !onlyNamed
	}
	var nums []int32
	if !onlyNamed {
		nums = slices.Clone(rp.nums)
	}
	for _, p := range rp.named {
		nums = append(nums, named(p)...)
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

// portNumbers are the numbers of a pod's TCP container ports called name,
// sorted and distinct; nil when the pod declares none.
func portNumbers(pod *podInfo, name string) []int32 {
	return appendPortNumbers(nil, pod, name)
}

// appendPortNumbers is portNumbers into buf, which callers keep on their
// stack when they compare many pods.
func appendPortNumbers(nums []int32, pod *podInfo, name string) []int32 {
	for _, cp := range pod.pod.Ports {
		if cp.Name == name && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) && cp.Port > 0 && cp.Port <= 65535 {
			nums = append(nums, cp.Port)
		}
	}
	slices.Sort(nums)
	return slices.Compact(nums)
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
