package verify

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

const (
	labelMetadataName    = "kubernetes.io/metadata.name"
	defaultTrustDomain   = "cluster.local"
	defaultRootNamespace = "istio-system"
)

// world is the snapshot's pods grouped into equivalence classes. A source
// class holds pods that every NetworkPolicy peer and every Istio source
// treats alike: same namespace, ServiceAccount, mesh membership, values of
// the labels some peer or egress policy reads, and membership in every CIDR
// mentioned. A destination class holds pods that every podSelector,
// workload selector, named port and egress ipBlock treats alike. Verdicts
// are computed per class, never per pod. After the pods' source classes
// come the external ones: one per part of the addresses outside the
// cluster (externalParts), without pods or mesh identity.
type world struct {
	trustDomain   string
	rootNamespace string
	namespaces    map[string]*nsInfo
	// nsSorted holds every namespace, known or referenced, by name.
	nsSorted []*nsInfo
	// pods that count, sorted by namespace and name.
	pods []*podInfo
	srcs []*srcClass
	dsts []*dstClass
	// srcByNS and dstByNS list class indices per namespace.
	srcByNS map[string][]int
	dstByNS map[string][]int
	// srcByPrincipal lists the mesh source classes of each principal.
	srcByPrincipal map[string][]int
	// srcByAddr lists the source classes holding each known pod address.
	srcByAddr map[netip.Addr][]int
	// allSrc has every source class; extSrc the external ones, numbered
	// from extFirst on.
	allSrc   bitset
	extSrc   bitset
	extFirst int
	// podByRef finds a pod by the ObjectRef a finding names it with.
	podByRef map[string][]*podInfo
	// meshSrc has the source classes with a mesh identity: only they
	// use waypoints.
	meshSrc bitset
	// wp is the snapshot's Services and waypoints.
	wp *waypoints
}

type nsInfo struct {
	name    string
	labels  labels.Set
	partial bool
	ambient bool
}

type podInfo struct {
	pod    *translate.Pod
	ns     *nsInfo
	labels labels.Set
	sa     string
	inMesh bool
	// addr is the pod IP without zone; invalid when unknown.
	addr     netip.Addr
	src, dst int
}

type srcClass struct {
	ns     *nsInfo
	sa     string
	labels labels.Set // projected on the keys sources are selected by
	inMesh bool
	// principal is empty when the class presents no mesh identity.
	principal string
	addr      netip.Addr // of any pod: all agree on every CIDR mentioned
	pods      []*podInfo
	// external, for a class of addresses outside the cluster: its part
	// (addr is the part's representative; no pods, no namespace).
	external *AddressRange
}

type dstClass struct {
	ns     *nsInfo
	labels labels.Set // projected on the keys destinations are selected by
	inMesh bool
	// sidecar: enforced by a sidecar (else by ztunnel, when in the mesh).
	sidecar bool
	// namedPorts are the TCP container ports by name.
	namedPorts map[string][]int32
	addr       netip.Addr
	pods       []*podInfo
}

// classKeys are what the policies read, and so what splits classes.
type classKeys struct {
	srcLabels, dstLabels map[string]bool
	srcCIDRs, dstCIDRs   []netip.Prefix
}

func newClassKeys() *classKeys {
	return &classKeys{srcLabels: map[string]bool{}, dstLabels: map[string]bool{}}
}

func (k *classKeys) addSelector(to map[string]bool, sel labels.Selector) {
	if sel == nil {
		return
	}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		to[r.Key()] = true
	}
}

func buildWorld(s translate.Snapshot, keys *classKeys, extraNamespaces []string) *world {
	w := &world{
		trustDomain:    cmp.Or(s.Mesh.TrustDomain, defaultTrustDomain),
		rootNamespace:  cmp.Or(s.Mesh.RootNamespace, defaultRootNamespace),
		namespaces:     map[string]*nsInfo{},
		srcByNS:        map[string][]int{},
		dstByNS:        map[string][]int{},
		srcByPrincipal: map[string][]int{},
		srcByAddr:      map[netip.Addr][]int{},
		podByRef:       map[string][]*podInfo{},
	}
	// A namespace listed twice: a full entry wins over a partial one, then
	// the smaller, as the engine decides.
	chosen := map[string]*translate.Namespace{}
	for i := range s.Namespaces {
		n := &s.Namespaces[i]
		if n.Name == "" {
			continue
		}
		if prev, ok := chosen[n.Name]; !ok || translate.PreferNamespace(n, prev) {
			chosen[n.Name] = n
		}
	}
	for name, n := range chosen {
		w.addNamespace(name, n.Labels, n.Partial)
	}

	pods := make([]*translate.Pod, 0, len(s.Pods))
	for i := range s.Pods {
		if s.Pods[i].Counts() {
			pods = append(pods, &s.Pods[i])
		}
	}
	slices.SortFunc(pods, translate.ComparePods)
	pods = slices.CompactFunc(pods, func(a, b *translate.Pod) bool {
		return a.Namespace == b.Namespace && a.Name == b.Name
	})
	for _, p := range pods {
		ns := w.namespaces[p.Namespace]
		if ns == nil {
			ns = w.addNamespace(p.Namespace, nil, true)
		}
		pi := &podInfo{pod: p, ns: ns, labels: labels.Set(p.Labels), sa: cmp.Or(p.ServiceAccount, "default")}
		pi.inMesh = p.InMesh(ns.ambient)
		if p.IP.IsValid() {
			pi.addr = p.IP.WithZone("")
		}
		w.pods = append(w.pods, pi)
		w.podByRef[podRefKey(p)] = append(w.podByRef[podRefKey(p)], pi)
	}
	for _, n := range extraNamespaces {
		if n != "" && w.namespaces[n] == nil {
			w.addNamespace(n, nil, true)
		}
	}
	for _, ns := range w.namespaces {
		w.nsSorted = append(w.nsSorted, ns)
	}
	slices.SortFunc(w.nsSorted, func(a, b *nsInfo) int { return cmp.Compare(a.name, b.name) })

	srcCIDRs, dstCIDRs := newCIDRIndex(keys.srcCIDRs), newCIDRIndex(keys.dstCIDRs)
	srcIndex, dstIndex := map[string]int{}, map[string]int{}
	for _, p := range w.pods {
		sk := srcKey(p, keys.srcLabels, srcCIDRs)
		i, ok := srcIndex[sk]
		if !ok {
			i = len(w.srcs)
			srcIndex[sk] = i
			c := &srcClass{ns: p.ns, sa: p.sa, labels: project(p.labels, keys.srcLabels), inMesh: p.inMesh, addr: p.addr}
			if p.inMesh {
				c.principal = w.principal(p.ns.name, p.sa)
				w.srcByPrincipal[c.principal] = append(w.srcByPrincipal[c.principal], i)
			}
			w.srcs = append(w.srcs, c)
			w.srcByNS[p.ns.name] = append(w.srcByNS[p.ns.name], i)
		}
		p.src = i
		w.srcs[i].pods = append(w.srcs[i].pods, p)
		if p.addr.IsValid() {
			if l := w.srcByAddr[p.addr]; len(l) == 0 || l[len(l)-1] != i {
				w.srcByAddr[p.addr] = append(l, i)
			}
		}

		dk := dstKey(p, keys.dstLabels, dstCIDRs)
		j, ok := dstIndex[dk]
		if !ok {
			j = len(w.dsts)
			dstIndex[dk] = j
			w.dsts = append(w.dsts, &dstClass{
				ns: p.ns, labels: project(p.labels, keys.dstLabels), inMesh: p.inMesh,
				sidecar: p.pod.Sidecar, namedPorts: namedPorts(p.pod), addr: p.addr,
			})
			w.dstByNS[p.ns.name] = append(w.dstByNS[p.ns.name], j)
		}
		p.dst = j
		w.dsts[j].pods = append(w.dsts[j].pods, p)
	}
	// Sources outside the cluster: one class per part of the addresses
	// that are not pods', by every CIDR a source is matched with.
	w.extFirst = len(w.srcs)
	podAddrs := make(map[netip.Addr]bool, len(w.pods))
	for _, p := range w.pods {
		if p.addr.IsValid() {
			podAddrs[p.addr] = true
		}
	}
	for _, part := range externalParts(keys.srcCIDRs, podAddrs) {
		i := len(w.srcs)
		w.srcs = append(w.srcs, &srcClass{labels: labels.Set{}, addr: part.rep, external: &part.rng})
		w.srcByAddr[part.rep] = append(w.srcByAddr[part.rep], i)
	}
	w.allSrc = fullBitset(len(w.srcs))
	w.extSrc = w.newSrcSet()
	for i := w.extFirst; i < len(w.srcs); i++ {
		w.extSrc.set(i)
	}
	w.meshSrc = w.newSrcSet()
	for i, c := range w.srcs {
		if c.inMesh {
			w.meshSrc.set(i)
		}
	}
	if len(s.Services) > 0 || len(s.Gateways) > 0 {
		w.buildWaypoints(s)
	}
	return w
}

func (w *world) addNamespace(name string, lbls map[string]string, partial bool) *nsInfo {
	set := labels.Set{}
	if !partial {
		maps.Copy(set, lbls)
	}
	// The API server always sets this label to the namespace's name.
	set[labelMetadataName] = name
	ns := &nsInfo{name: name, labels: set, partial: partial, ambient: translate.AmbientNamespace(set)}
	w.namespaces[name] = ns
	return ns
}

func (w *world) principal(namespace, sa string) string {
	return translate.Principal(w.trustDomain, namespace, sa)
}

func (w *world) newSrcSet() bitset { return newBitset(len(w.srcs)) }

// podRefKey is how findings name a pod: the pod, or the workload its
// template came from.
func podRefKey(p *translate.Pod) string {
	if p.Template != "" {
		return p.Template
	}
	return "Pod/" + p.Namespace + "/" + p.Name
}

func objectKey(o translate.ObjectRef) string { return o.Kind + "/" + o.Namespace + "/" + o.Name }

func project(l labels.Set, keys map[string]bool) labels.Set {
	out := labels.Set{}
	for k, v := range l {
		if keys[k] {
			out[k] = v
		}
	}
	return out
}

func labelString(l labels.Set, keys map[string]bool) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if keys[k] {
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(l[k])
			b.WriteByte(0)
		}
	}
	return b.String()
}

func srcKey(p *podInfo, keys map[string]bool, cidrs *cidrIndex) string {
	return strings.Join([]string{
		p.ns.name, p.sa, fmt.Sprint(p.inMesh, p.pod.Template != ""),
		labelString(p.labels, keys), cidrs.signature(p.addr),
	}, "\x01")
}

func dstKey(p *podInfo, keys map[string]bool, cidrs *cidrIndex) string {
	var ports []string
	for name, nums := range namedPorts(p.pod) {
		ports = append(ports, fmt.Sprint(name, nums))
	}
	slices.Sort(ports)
	return strings.Join([]string{
		p.ns.name, fmt.Sprint(p.inMesh, p.pod.Sidecar, p.pod.Template != ""),
		labelString(p.labels, keys), strings.Join(ports, ","), cidrs.signature(p.addr),
	}, "\x01")
}

// namedPorts are a pod's TCP container ports by name, sorted, as a named
// NetworkPolicy port resolves against them.
func namedPorts(p *translate.Pod) map[string][]int32 {
	out := map[string][]int32{}
	for _, cp := range p.Ports {
		if cp.Name == "" || (cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP) || cp.Port < minPort || cp.Port > maxPort {
			continue
		}
		out[cp.Name] = append(out[cp.Name], cp.Port)
	}
	for name, nums := range out {
		slices.Sort(nums)
		out[name] = slices.Compact(nums)
	}
	return out
}

// inPrefix says whether addr is in p. An unknown address (a pending pod, a
// workload template) is some address nobody knows: it is only certain to
// be in a /0.
func inPrefix(addr netip.Addr, p netip.Prefix) bool {
	if !addr.IsValid() {
		return p.Bits() == 0
	}
	return p.Contains(addr)
}

// cidrIndex computes which of the CIDRs mentioned an address is in, so that
// pods in the same CIDRs share a class. Single addresses (the /32 ipBlocks
// of pods without a sidecar) are looked up in a map.
type cidrIndex struct {
	hosts map[netip.Addr]bool
	nets  []netip.Prefix
}

func newCIDRIndex(prefixes []netip.Prefix) *cidrIndex {
	c := &cidrIndex{hosts: map[netip.Addr]bool{}}
	seen := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		p = p.Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		if p.IsSingleIP() {
			c.hosts[p.Addr()] = true
			continue
		}
		c.nets = append(c.nets, p)
	}
	return c
}

func (c *cidrIndex) signature(addr netip.Addr) string {
	if !addr.IsValid() {
		return "?"
	}
	b := make([]byte, len(c.nets), len(c.nets)+20)
	for i, p := range c.nets {
		b[i] = '0'
		if p.Contains(addr) {
			b[i] = '1'
		}
	}
	if c.hosts[addr] {
		b = append(b, addr.String()...)
	}
	return string(b)
}
