package verify

import (
	"cmp"
	"net/netip"
	"slices"
)

// AddressRange is a set of addresses outside the cluster, written as a
// NetworkPolicy ipBlock is: a CIDR minus the CIDRs in Except.
type AddressRange struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except"`
}

// Contains says whether addr is in the range.
func (r AddressRange) Contains(addr netip.Addr) bool {
	p, err := netip.ParsePrefix(r.CIDR)
	if err != nil || !p.Contains(addr) {
		return false
	}
	for _, e := range r.Except {
		if q, err := netip.ParsePrefix(e); err == nil && q.Contains(addr) {
			return false
		}
	}
	return true
}

func (r AddressRange) String() string {
	s := r.CIDR
	for i, e := range r.Except {
		if i == 0 {
			s += " except "
		} else {
			s += ", "
		}
		s += e
	}
	return s
}

// externalPart is one part of the addresses that are not pod addresses:
// every CIDR a policy names for a source contains all of it or none of it,
// so one address (rep) decides for all of it.
type externalPart struct {
	rng AddressRange
	rep netip.Addr
}

// externalParts partitions the addresses outside the cluster by the CIDRs
// the policies name for sources. CIDRs nest or are disjoint, so the CIDRs
// containing an address are the chain above the smallest one containing
// it: a part is a CIDR minus the CIDRs directly inside it (the roots
// 0.0.0.0/0 and ::/0 always count). A single address that is a pod's
// splits nothing off: it holds no outside address. A part whose every
// address is a pod's is left out. The number of parts is at most the
// number of distinct CIDRs plus two; pods only cost a lookup per address
// tried.
func externalParts(cidrs []netip.Prefix, podAddrs map[netip.Addr]bool) []externalPart {
	ps := []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.PrefixFrom(netip.IPv6Unspecified(), 0)}
	for _, p := range cidrs {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if p.IsSingleIP() && podAddrs[p.Addr()] {
			continue
		}
		ps = append(ps, p)
	}
	// By family, then address, then the larger first: a CIDR comes before
	// the CIDRs inside it, and these in address order.
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Addr().BitLen(), b.Addr().BitLen()), a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	ps = slices.Compact(ps)
	children := make([][]netip.Prefix, len(ps))
	var stack []int
	for i, p := range ps {
		for len(stack) > 0 && !contains(ps[stack[len(stack)-1]], p) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			parent := stack[len(stack)-1]
			children[parent] = append(children[parent], p)
		}
		stack = append(stack, i)
	}
	var out []externalPart
	for i, p := range ps {
		rep, ok := representative(p, children[i], podAddrs)
		if !ok {
			continue
		}
		r := AddressRange{CIDR: p.String(), Except: []string{}}
		for _, c := range children[i] {
			r.Except = append(r.Except, c.String())
		}
		out = append(out, externalPart{rng: r, rep: rep})
	}
	return out
}

// contains says whether p contains q (the same family).
func contains(p, q netip.Prefix) bool {
	return p.Addr().BitLen() == q.Addr().BitLen() && p.Bits() <= q.Bits() && p.Contains(q.Addr())
}

// representative is the first address of p outside the sorted, disjoint
// prefixes except that is not a pod's.
func representative(p netip.Prefix, except []netip.Prefix, podAddrs map[netip.Addr]bool) (netip.Addr, bool) {
	from := p.Addr()
	try := func(first, last netip.Addr) (netip.Addr, bool) {
		for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
			if !podAddrs[a] {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	for _, e := range except {
		if from.Compare(e.Addr()) < 0 {
			if a, ok := try(from, e.Addr().Prev()); ok {
				return a, true
			}
		}
		from = lastAddr(e).Next()
		if !from.IsValid() {
			return netip.Addr{}, false // e reaches the end of the family
		}
	}
	return try(from, lastAddr(p))
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
