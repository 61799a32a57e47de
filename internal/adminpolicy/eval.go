package adminpolicy

import (
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// Endpoint is one end of a connection as the policies read it.
type Endpoint struct {
	NamespaceLabels labels.Set
	Labels          labels.Set
	// Addr is the pod's address; invalid when unknown.
	Addr netip.Addr
	// Named are the numbers of its TCP container ports, by name.
	Named map[string][]int32
	// External: an address outside the cluster, which no selector matches.
	External bool
}

func (e Endpoint) named(name string) []int32 { return e.Named[name] }

// Sort orders compiled policies by precedence (Compare), in place.
func Sort(cs []*Compiled) {
	slices.SortFunc(cs, func(a, b *Compiled) int { return Compare(a.Policy, b.Policy) })
}

// Match is the rule that decided a connection in one tier.
type Match struct {
	Policy *Compiled
	Rule   *CompiledRule
}

// Decide is the first matching rule of the policies of one tier for TCP
// from src to dst:port: ingress rules of the policies selecting dst, or
// egress rules of those selecting src. policies must be sorted (Sort); the
// zero Match means no rule matched.
func Decide(policies []*Compiled, tier Tier, ingress bool, src, dst Endpoint, port int32) Match {
	for _, c := range policies {
		if c.Tier != tier {
			continue
		}
		if ingress {
			if dst.External || !c.Selects(dst.NamespaceLabels, dst.Labels) {
				continue
			}
			for i := range c.Ingress {
				r := &c.Ingress[i]
				if !r.MatchesPort(port, dst.named) {
					continue
				}
				if (src.External && r.MatchesAddress(src.Addr)) || (!src.External && r.MatchesPod(src.NamespaceLabels, src.Labels, netip.Addr{})) {
					return Match{c, r}
				}
			}
			continue
		}
		if src.External || !c.Selects(src.NamespaceLabels, src.Labels) {
			continue
		}
		for i := range c.Egress {
			r := &c.Egress[i]
			if r.MatchesPort(port, dst.named) && r.MatchesPod(dst.NamespaceLabels, dst.Labels, dst.Addr) {
				return Match{c, r}
			}
		}
	}
	return Match{}
}

// NetworkPolicies is what the NetworkPolicies say about one direction of a
// connection: whether any selects the pod for that direction, and whether
// they allow the connection.
type NetworkPolicies struct {
	Selected, Allows bool
}

// Allowed evaluates one direction with the whole stack: the admin tier,
// then the NetworkPolicies where one selects the pod, then the baseline
// tier, then the default (allow).
func Allowed(policies []*Compiled, ingress bool, src, dst Endpoint, port int32, np NetworkPolicies) bool {
	switch m := Decide(policies, TierAdmin, ingress, src, dst, port); {
	case m.Rule != nil && m.Rule.Action == ActionAllow:
		return true
	case m.Rule != nil && m.Rule.Action == ActionDeny:
		return false
	}
	if np.Selected {
		return np.Allows
	}
	m := Decide(policies, TierBaseline, ingress, src, dst, port)
	return m.Rule == nil || m.Rule.Action != ActionDeny
}
