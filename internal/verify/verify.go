// Package verify proves what AuthorizationPolicies allow against what the
// NetworkPolicies of the same cluster allow, for TCP between pods: it
// evaluates both (Kubernetes' and Istio's semantics, written independently
// of the translator), compares them for every source class, destination
// class and port range, and explains each difference with the findings of
// the translation. It is pure: a snapshot and policies in, a Result out.
// Semantics and limits are in docs/verify.md.
package verify

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"iter"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	secv1beta1 "istio.io/api/security/v1beta1"
)

// Verify compares the AuthorizationPolicies of in with its NetworkPolicies.
func Verify(in Input) Result {
	e := newEngine(in)
	byDst, anyDst := e.explainers()

	// What the policies say per destination is evaluated first, alone,
	// since it fills the evaluators' caches; the comparison then runs in
	// parallel and its parts are merged in destination order.
	var todo []int
	ats := make([]*dstAt, len(e.w.dsts))
	for di, d := range e.w.dsts {
		if e.inScope(d) {
			todo = append(todo, di)
			ats[di] = e.evaluate(d)
		}
	}
	parts := make([][]*part, len(e.w.dsts))
	seed := maphash.MakeSeed()
	// Each worker reuses its scratch bitsets; a pool hands them out.
	type worker struct {
		s  *scratch
		dp *dstParts
	}
	pool := sync.Pool{New: func() any { return &worker{e.newScratch(), newDstParts(len(e.w.srcs), seed, e.w.extSrc)} }}
	parallel(len(todo), func(i int) {
		w := pool.Get().(*worker)
		defer pool.Put(w)
		di := todo[i]
		xs := append(slices.Clone(byDst[di]), anyDst...)
		slices.SortFunc(xs, func(a, b *explainer) int { return cmp.Or(a.rank-b.rank, a.id-b.id) })
		e.checkDestination(e.w.dsts[di], ats[di], xs, w.dp, w.s)
		parts[di] = w.dp.take()
	})
	g := newGrouper()
	for _, di := range todo {
		g.merge(di, parts[di])
	}

	// Notes by policy; a policy's own notes in the order found.
	slices.SortStableFunc(e.notes, func(a, b Note) int {
		return cmp.Or(cmp.Compare(b.Kind, a.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	res := Result{Notes: e.notes}
	res.Differences = e.differences(g, ats)
	res.Stats = Stats{
		Pods:                  len(e.w.pods),
		SourceClasses:         e.w.extFirst,
		ExternalSources:       len(e.w.srcs) - e.w.extFirst,
		DestinationClasses:    len(e.w.dsts),
		DestinationsChecked:   len(todo),
		NetworkPolicies:       len(e.nps),
		AuthorizationPolicies: len(e.force.policies),
	}
	for _, d := range res.Differences {
		if d.Explained {
			res.Stats.Explained++
			res.Stats.ExplainedConnections += d.Connections
		} else {
			res.Stats.Unexplained++
			res.Stats.UnexplainedConnections += d.Connections
		}
	}
	return res
}

// dstAt is what every policy says about one destination class.
type dstAt struct {
	np          *npAt
	force, base *istioAt
	// wp: the paths to d that pass a waypoint; nil when none does.
	wp *wpAt
}

func (e *engine) evaluate(d *dstClass) *dstAt {
	a := &dstAt{np: e.np.at(d), force: e.force.at(d), wp: e.waypointsAt(d)}
	if e.base != nil {
		a.base = e.base.at(d)
	}
	return a
}

// scratch are the bitsets one destination is computed with, reused.
type scratch struct {
	npStrict, npLoose, npEgress bitset
	egLoose                     bitset
	allow, deny                 bitset
	enfAllow, enfDeny           bitset
	baseAllow, baseDeny         bitset
	diff, rest, same, part, amb bitset
	dry                         bitset
	// With waypoints, allow, enfAllow and baseAllow are what some path
	// allows; these what every path allows.
	allowAll, enfAll, baseAll, tmp bitset
}

func (e *engine) newScratch() *scratch {
	n := e.w.newSrcSet
	return &scratch{
		npStrict: n(), npLoose: n(), npEgress: n(), egLoose: n(),
		allow: n(), deny: n(), enfAllow: n(), enfDeny: n(),
		baseAllow: n(), baseDeny: n(), diff: n(), rest: n(), same: n(), part: n(), amb: n(), dry: n(),
		allowAll: n(), enfAll: n(), baseAll: n(), tmp: n(),
	}
}

// checkDestination compares both verdicts for every source class and port
// segment of destination d, and hands each differing part to the grouper.
func (e *engine) checkDestination(d *dstClass, at *dstAt, explainers []*explainer, g *dstParts, s *scratch) {
	npAt, forceAt, baseAt := at.np, at.force, at.base
	sets := append(npAt.portSets(), forceAt.portSets()...)
	if baseAt != nil {
		sets = append(sets, baseAt.portSets()...)
	}
	if at.wp != nil {
		sets = append(sets, at.wp.ports)
	}
	// paths turns a direct verdict into what some path (in place) and
	// every path (all) allow.
	paths := func(ev *istioEval, ia *istioAt, p int32, enforcedOnly bool, direct, all bitset) {
		if at.wp == nil {
			all.copyFrom(direct)
			return
		}
		e.pathVerdict(ev, ia, at.wp, p, enforcedOnly, direct, all, s.tmp)
	}
	explPorts := map[*netpol]portSet{}
	var adminPorts portSet
	if e.admin != nil {
		adminPorts = e.admin.allowPortsAt(d)
	}
	for _, x := range explainers {
		if x.portsOf != nil {
			if _, ok := explPorts[x.portsOf]; !ok {
				// The policy's own ports, and those of the admin Allow
				// rules the translation writes beside them, whose peers
				// raise the same findings.
				ps := adminPorts
				for i := range x.portsOf.in {
					ps = ps.union(x.portsOf.in[i].portsAt(d))
				}
				explPorts[x.portsOf] = ps
				sets = append(sets, ps)
			}
		}
	}
	for _, seg := range segments(sets) {
		p := seg.First
		e.np.verdict(npAt, p, s.npStrict, s.npLoose, s.npEgress, s.egLoose)
		switch e.in.IPBlockPods {
		case IPBlockPodsMatch:
			s.npStrict.copyFrom(s.npLoose)
		case IPBlockPodsNoMatch:
			s.npLoose.copyFrom(s.npStrict)
		}
		e.force.verdict(forceAt, p, false, s.allow, s.deny)
		paths(e.force, forceAt, p, false, s.allow, s.allowAll)
		// Dry-run: which verdicts change once dry-run policies count.
		e.force.verdict(forceAt, p, true, s.enfAllow, s.enfDeny)
		paths(e.force, forceAt, p, true, s.enfAllow, s.enfAll)
		s.dry.copyFrom(s.allow)
		xor(s.dry, s.enfAllow)
		s.tmp.copyFrom(s.allowAll)
		xor(s.tmp, s.enfAll)
		s.dry.or(s.tmp)
		s.same.copyFrom(e.w.allSrc)
		if baseAt != nil {
			e.base.verdict(baseAt, p, false, s.baseAllow, s.baseDeny)
			paths(e.base, baseAt, p, false, s.baseAllow, s.baseAll)
			xor(s.same, s.baseAllow)
			xor(s.same, s.allow)
			s.tmp.copyFrom(s.baseAll)
			xor(s.tmp, s.allowAll)
			s.same.andNot(s.tmp)
			s.same.and(e.w.allSrc)
		}
		s.amb.copyFrom(s.npLoose)
		s.amb.andNot(s.npStrict)

		for _, dir := range []Direction{IstioAllowsMore, IstioDeniesMore} {
			if dir == IstioAllowsMore {
				s.diff.copyFrom(s.allow)
				s.diff.andNot(s.npStrict)
			} else {
				s.diff.copyFrom(s.npLoose)
				s.diff.andNot(s.allowAll)
			}
			if s.diff.empty() {
				continue
			}
			s.rest.copyFrom(s.diff)
			// Connections only one reading of ipBlock allows: the most
			// precise explanation there is, computed per connection.
			s.part.copyFrom(s.rest)
			s.part.and(s.amb)
			if !s.part.empty() {
				s.rest.andNot(s.part)
				g.add(seg, partKey{dir: dir, expl: idIPBlock}, s.part, s.dry, ipBlockExplanation)
			}
			// Where the source's egress denies a connection, Istio's not
			// enforcing egress explains it first, whatever d's ingress says.
			egressDenies := false
			if dir == IstioAllowsMore {
				s.part.copyFrom(s.rest)
				s.part.andNot(s.npEgress)
				egressDenies = !s.part.empty()
			}
			for pass := range 2 {
				if pass == 0 && !egressDenies {
					continue
				}
				for _, x := range explainers {
					if (dir == IstioAllowsMore && !x.more) || (dir == IstioDeniesMore && !x.less) || (pass == 0 && !x.egress) {
						continue
					}
					if x.portsOf != nil && !explPorts[x.portsOf].contains(p) {
						continue
					}
					if x.src != nil && !x.overlaps(s.rest) {
						continue
					}
					s.part.copyFrom(s.rest)
					s.part.and(s.same)
					if pass == 0 {
						s.part.andNot(s.npEgress)
					}
					if x.src != nil {
						s.part.and(x.src)
					}
					if s.part.empty() {
						continue
					}
					s.rest.andNot(s.part)
					g.add(seg, partKey{dir: dir, expl: x.id}, s.part, s.dry, x.expl)
				}
			}
			if s.rest.empty() {
				continue
			}
			// Unexplained: split by whether the generated policies would
			// decide alike (with CheckExisting).
			s.part.copyFrom(s.rest)
			s.part.andNot(s.same)
			if !s.part.empty() {
				g.add(seg, partKey{dir: dir, expl: idNone, deviates: true}, s.part, s.dry, nil)
			}
			s.rest.and(s.same)
			if !s.rest.empty() {
				g.add(seg, partKey{dir: dir, expl: idNone}, s.rest, s.dry, nil)
			}
		}
	}
}

func xor(a, b bitset) {
	for i := range a {
		a[i] ^= b[i]
	}
}

// Explainer ids beyond the translation's.
const (
	idNone    = -1
	idIPBlock = -2
)

type partKey struct {
	dir      Direction
	expl     int
	dry      bool
	deviates bool
	// external: the sources are outside the cluster; a difference has
	// pods or addresses as sources, never both.
	external bool
}

// dstParts collects the differing parts of one destination, merging the
// port segments with the same sources.
type dstParts struct {
	cur   map[uint64][]*part
	order []*part
	// split and ext are reused by add.
	split, ext bitset
	// extSrc has the external source classes.
	extSrc bitset
	seed   maphash.Seed
}

type part struct {
	// hash is of key and src.
	hash  uint64
	key   partKey
	src   bitset
	ports []PortRange
	expl  *Explanation
}

func newDstParts(n int, seed maphash.Seed, extSrc bitset) *dstParts {
	return &dstParts{cur: map[uint64][]*part{}, split: newBitset(n), ext: newBitset(n), extSrc: extSrc, seed: seed}
}

// add records that sources src differ on segment seg; dry splits them by
// whether dry-run policies decide, and the sources outside the cluster go
// apart from the pods.
func (g *dstParts) add(seg PortRange, k partKey, src, dry bitset, expl *Explanation) {
	for _, isDry := range []bool{true, false} {
		b := g.split
		b.copyFrom(src)
		if isDry {
			b.and(dry)
		} else {
			b.andNot(dry)
		}
		if b.empty() {
			continue
		}
		k.dry = isDry
		g.ext.copyFrom(b)
		g.ext.and(g.extSrc)
		if !g.ext.empty() {
			b.andNot(g.ext)
			g.addOne(seg, k, b, expl)
			k.external = true
			b = g.ext
		}
		g.addOne(seg, k, b, expl)
		k.external = false
	}
}

// addOne records one part of add's.
func (g *dstParts) addOne(seg PortRange, k partKey, b bitset, expl *Explanation) {
	if b.empty() {
		return
	}
	h := hashPart(g.seed, k, b)
	var p *part
	for _, q := range g.cur[h] {
		if q.key == k && slices.Equal(q.src, b) {
			p = q
			break
		}
	}
	if p == nil {
		p = &part{hash: h, key: k, src: b.clone(), expl: expl}
		g.cur[h] = append(g.cur[h], p)
		g.order = append(g.order, p)
	}
	p.ports = append(p.ports, seg)
}

func hashPart(seed maphash.Seed, k partKey, b bitset) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(string(k.dir))
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(int64(k.expl)))
	h.Write(buf[:])
	flags := byte(0)
	if k.dry {
		flags |= 1
	}
	if k.deviates {
		flags |= 2
	}
	if k.external {
		flags |= 4
	}
	h.WriteByte(flags)
	for _, w := range b {
		binary.LittleEndian.PutUint64(buf[:], w)
		h.Write(buf[:])
	}
	return h.Sum64()
}

// take returns the parts in the order they were found, and starts over.
func (g *dstParts) take() []*part {
	out := g.order
	g.cur, g.order = map[uint64][]*part{}, nil
	return out
}

// grouper merges the parts of every destination: destinations whose parts
// have the same sources and ports are one group.
type grouper struct {
	groups map[uint64][]*group
	list   []*group
}

type group struct {
	hash  uint64
	key   partKey
	src   bitset
	ports portSet
	expl  *Explanation
	dsts  []int
}

func newGrouper() *grouper { return &grouper{groups: map[uint64][]*group{}} }

func (g *grouper) merge(di int, parts []*part) {
	for _, p := range parts {
		ports := portsOf(p.ports...)
		h := p.hash
		for _, r := range ports {
			h = h*1099511628211 ^ uint64(r.First)<<16 ^ uint64(r.Last)
		}
		var grp *group
		for _, q := range g.groups[h] {
			if q.key == p.key && slices.Equal(q.ports, ports) && slices.Equal(q.src, p.src) {
				grp = q
				break
			}
		}
		if grp == nil {
			grp = &group{hash: h, key: p.key, src: p.src, ports: ports, expl: p.expl}
			g.groups[h] = append(g.groups[h], grp)
			g.list = append(g.list, grp)
		}
		grp.dsts = append(grp.dsts, di)
	}
}

// differences turns the groups into Differences, with the pods and the
// policies involved, sorted.
func (e *engine) differences(g *grouper, ats []*dstAt) []Difference {
	out := make([]Difference, len(g.list))
	parallel(len(g.list), func(i int) {
		grp := g.list[i]
		d := Difference{
			Direction:   grp.key.dir,
			Explained:   grp.expl != nil,
			Explanation: grp.expl,
			DryRun:      grp.key.dry,
			Deviates:    grp.key.deviates,
			Ports:       slices.Clone(grp.ports),
		}
		if grp.key.external {
			d.Sources = e.externalSet(grp.src)
		} else {
			d.Sources = e.podSet(grp.src.all(), grp.src.has, e.w.srcByNS, func(i int) []*podInfo { return e.w.srcs[i].pods })
		}
		dsts := newBitset(len(e.w.dsts))
		for _, i := range grp.dsts {
			dsts.set(i)
		}
		d.Destinations = e.podSet(slices.Values(grp.dsts), dsts.has, e.w.dstByNS, func(i int) []*podInfo { return e.w.dsts[i].pods })
		d.Connections = int64(d.Sources.Count) * int64(d.Destinations.Count)
		d.NetworkPolicies, d.AuthorizationPolicies = e.policiesOf(grp, ats)
		d.Waypoints = e.waypointsOf(grp, ats)
		out[i] = d
	})
	slices.SortFunc(out, compareDifference)
	return out
}

// parallel calls fn(0) … fn(n-1) on every CPU. fn must only write what
// belongs to its i.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// podSet writes the pods of some classes compactly: namespaces whose every
// class is included by name, the rest pod by pod up to MaxPods. Classes are
// numbered in namespace order, so classes come grouped by namespace.
func (e *engine) podSet(classes iter.Seq[int], in func(int) bool, byNS map[string][]int, pods func(int) []*podInfo) PodSet {
	out := PodSet{AllOf: []string{}, Pods: []Pod{}}
	var ns string
	var all bool
	var list []Pod
	flush := func() {
		if len(list) == 0 {
			return
		}
		slices.SortFunc(list, comparePod)
		keep := min(len(list), MaxPods-len(out.Pods))
		out.Pods = append(out.Pods, list[:keep]...)
		out.Omitted += len(list) - keep
		list = list[:0]
	}
	first := true
	for i := range classes {
		ps := pods(i)
		if n := ps[0].ns.name; first || n != ns {
			flush()
			first, ns, all = false, n, true
			for _, j := range byNS[ns] {
				all = all && in(j)
			}
			if all {
				out.AllOf = append(out.AllOf, ns)
			}
		}
		out.Count += len(ps)
		switch {
		case all:
		case len(out.Pods) >= MaxPods:
			out.Omitted += len(ps)
		default:
			for _, p := range ps {
				list = append(list, podOf(p))
			}
		}
	}
	flush()
	return out
}

// externalSet writes the external source classes of src: their address
// ranges, in address order.
func (e *engine) externalSet(src bitset) PodSet {
	out := PodSet{AllOf: []string{}, Pods: []Pod{}, Addresses: []AddressRange{}}
	for i := range src.all() {
		if c := e.w.srcs[i]; c.external != nil {
			out.Addresses = append(out.Addresses, *c.external)
		}
	}
	out.Count = len(out.Addresses)
	return out
}

// comparePodSet orders pods before addresses outside the cluster.
func comparePodSet(a, b PodSet) int {
	return cmp.Or(compareBool(len(a.Addresses) > 0, len(b.Addresses) > 0),
		slices.Compare(a.AllOf, b.AllOf), slices.CompareFunc(a.Pods, b.Pods, comparePod),
		slices.CompareFunc(a.Addresses, b.Addresses, compareAddressRange), cmp.Compare(a.Count, b.Count))
}

func compareAddressRange(a, b AddressRange) int {
	return cmp.Or(cmp.Compare(a.CIDR, b.CIDR), slices.Compare(a.Except, b.Except))
}

func podOf(p *podInfo) Pod {
	return Pod{Namespace: p.pod.Namespace, Name: p.pod.Name, ServiceAccount: p.sa, InMesh: p.inMesh, Workload: p.pod.Template}
}

func comparePod(a, b Pod) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Workload, b.Workload))
}

func compareDifference(a, b Difference) int {
	if a.Explained != b.Explained {
		if !a.Explained {
			return -1
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(a.Direction, b.Direction),
		comparePodSet(a.Destinations, b.Destinations),
		slices.CompareFunc(a.Ports, b.Ports, func(x, y PortRange) int { return cmp.Or(cmp.Compare(x.First, y.First), cmp.Compare(x.Last, y.Last)) }),
		compareBool(a.DryRun, b.DryRun),
		compareExplanation(a.Explanation, b.Explanation),
		comparePodSet(a.Sources, b.Sources),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func compareExplanation(a, b *Explanation) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.NetworkPolicy, b.NetworkPolicy), cmp.Compare(a.Message, b.Message))
}

// policiesOf lists the policies involved in a group, and whether their
// rules match some of its connections.
func (e *engine) policiesOf(grp *group, ats []*dstAt) (nps, aps []PolicyRef) {
	npSeen, apSeen := map[PolicyRef]int{}, map[*authz]int{}
	addNP := func(ref PolicyRef, matched bool) {
		key := ref
		if i, ok := npSeen[key]; ok {
			nps[i].Matched = nps[i].Matched || matched
			return
		}
		ref.Matched = matched
		npSeen[key] = len(nps)
		nps = append(nps, ref)
	}
	overlaps := func(ports portSet) bool { return ports.overlaps(grp.ports) }
	var egress []*netpol
	for i, np := range e.np.egressPolicies {
		if e.np.egressSelected[i].intersects(grp.src) {
			egress = append(egress, np)
		}
	}
	for _, di := range grp.dsts {
		npAt := ats[di].np
		for _, np := range npAt.isolating {
			matched := false
			for _, c := range npAt.ingress {
				if c.np == np && overlaps(c.ports) && c.srcLoose.intersects(grp.src) {
					matched = true
				}
			}
			addNP(PolicyRef{Namespace: np.ref.Namespace, Name: np.ref.Name, Role: "ingress"}, matched)
		}
		for _, np := range egress {
			matched := false
			for _, c := range npAt.egress {
				if c.np == np && overlaps(c.ports) && c.src.intersects(grp.src) {
					matched = true
				}
			}
			addNP(PolicyRef{Namespace: np.ref.Namespace, Name: np.ref.Name, Role: "egress"}, matched)
		}
		at := ats[di].force
		for _, a := range at.applying {
			matched := false
			for _, l := range [][]apContrib{at.allow, at.deny, at.custom} {
				for _, c := range l {
					if c.policy == a && overlaps(c.ports) && c.src.intersects(grp.src) {
						matched = true
					}
				}
			}
			if i, ok := apSeen[a]; ok {
				aps[i].Matched = aps[i].Matched || matched
				continue
			}
			apSeen[a] = len(aps)
			aps = append(aps, PolicyRef{Namespace: a.ref.Namespace, Name: a.ref.Name, Role: actionName(a.action), Matched: matched, DryRun: a.dryRun})
		}
	}
	byName := func(a, b PolicyRef) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	slices.SortFunc(nps, byName)
	slices.SortFunc(aps, byName)
	return nps, aps
}

func actionName(a secv1beta1.AuthorizationPolicy_Action) string {
	return a.String()
}
