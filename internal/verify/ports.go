package verify

import (
	"slices"
	"strconv"
)

const (
	minPort = 1
	maxPort = 65535
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct {
	First int32 `json:"first"`
	Last  int32 `json:"last"`
}

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + "-" + strconv.Itoa(int(r.Last))
}

// portSet is a sorted list of disjoint, non-adjacent ranges. nil is empty.
type portSet []PortRange

var allPorts = portSet{{minPort, maxPort}}

// portsOf normalises any list of ranges into a portSet, clipping to
// 1-65535.
func portsOf(rs ...PortRange) portSet {
	var out portSet
	for _, r := range rs {
		r.First, r.Last = max(r.First, minPort), min(r.Last, maxPort)
		if r.First <= r.Last {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b PortRange) int { return int(a.First - b.First) })
	merged := out[:1]
	for _, r := range out[1:] {
		last := &merged[len(merged)-1]
		if r.First <= last.Last+1 {
			last.Last = max(last.Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

func (s portSet) contains(p int32) bool {
	_, found := slices.BinarySearchFunc(s, p, func(r PortRange, p int32) int {
		switch {
		case r.Last < p:
			return -1
		case r.First > p:
			return 1
		}
		return 0
	})
	return found
}

// overlaps says whether s and o share a port.
func (s portSet) overlaps(o portSet) bool {
	i, j := 0, 0
	for i < len(s) && j < len(o) {
		switch {
		case s[i].Last < o[j].First:
			i++
		case o[j].Last < s[i].First:
			j++
		default:
			return true
		}
	}
	return false
}

func (s portSet) union(o portSet) portSet {
	return portsOf(append(slices.Clone(s), o...)...)
}

// complement is every port not in s.
func (s portSet) complement() portSet {
	var out []PortRange
	next := int32(minPort)
	for _, r := range s {
		if r.First > next {
			out = append(out, PortRange{next, r.First - 1})
		}
		next = r.Last + 1
	}
	if next <= maxPort {
		out = append(out, PortRange{next, maxPort})
	}
	return portsOf(out...)
}

func (s portSet) intersect(o portSet) portSet {
	return s.complement().union(o.complement()).complement()
}

func (s portSet) String() string {
	out := ""
	for i, r := range s {
		if i > 0 {
			out += ","
		}
		out += r.String()
	}
	return out
}

// segments cuts 1-65535 at every boundary of the given sets, so that every
// set either contains a whole segment or none of it. Segments are returned
// in order.
func segments(sets []portSet) []PortRange {
	cuts := []int32{minPort, maxPort + 1}
	for _, s := range sets {
		for _, r := range s {
			cuts = append(cuts, r.First, r.Last+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	out := make([]PortRange, 0, len(cuts)-1)
	for i := 0; i+1 < len(cuts); i++ {
		out = append(out, PortRange{cuts[i], cuts[i+1] - 1})
	}
	return out
}
