package verify

import (
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// netpol is a NetworkPolicy as the evaluator reads it, compiled once. This
// is Kubernetes' semantics written independently of the translator, so
// that the two can be compared.
type netpol struct {
	ref types.NamespacedName
	sel labels.Selector
	// ingress and egress are the effective policyTypes.
	ingress, egress bool
	in, out         []npRule
}

type npRule struct {
	// anyPeer: no from (to): every source (destination).
	anyPeer bool
	peers   []npPeer
	// portsGiven: the rule lists ports, so only the TCP ones among them
	// match TCP traffic (possibly none).
	portsGiven bool
	ports      []npPort
	// srcStrict and srcLoose cache the source classes an ingress rule's
	// peers match, without and with ipBlocks matching pod addresses.
	srcStrict, srcLoose bitset
}

type npPeer struct {
	block *cidrBlock
	// nsSel nil: the policy's own namespace.
	nsSel labels.Selector
	// podSel nil: every pod of the namespaces.
	podSel labels.Selector
}

type cidrBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
}

func (b *cidrBlock) contains(addr netip.Addr) bool {
	if !inPrefix(addr, b.cidr) {
		return false
	}
	for _, e := range b.except {
		if inPrefix(addr, e) {
			return false
		}
	}
	return true
}

// npPort is one TCP entry of a rule's ports.
type npPort struct {
	any         bool
	name        string
	first, last int32
}

// compileNetpol reads np; an error means the API server would reject it.
func compileNetpol(np *networkingv1.NetworkPolicy) (*netpol, error) {
	p := &netpol{ref: types.NamespacedName{Namespace: np.Namespace, Name: np.Name}}
	if np.Namespace == "" {
		return nil, errors.New("no namespace")
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("spec.podSelector: %w", err)
	}
	p.sel = sel
	if len(np.Spec.PolicyTypes) == 0 {
		p.ingress, p.egress = true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			p.ingress = true
		case networkingv1.PolicyTypeEgress:
			p.egress = true
		default:
			return nil, fmt.Errorf("spec.policyTypes: unsupported value %q", t)
		}
	}
	if p.ingress {
		for i, r := range np.Spec.Ingress {
			rule, err := compileRule(r.From, r.Ports)
			if err != nil {
				return nil, fmt.Errorf("spec.ingress[%d]: %w", i, err)
			}
			p.in = append(p.in, rule)
		}
	}
	if p.egress {
		for i, r := range np.Spec.Egress {
			rule, err := compileRule(r.To, r.Ports)
			if err != nil {
				return nil, fmt.Errorf("spec.egress[%d]: %w", i, err)
			}
			p.out = append(p.out, rule)
		}
	}
	return p, nil
}

func compileRule(peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (npRule, error) {
	r := npRule{anyPeer: len(peers) == 0, portsGiven: len(ports) > 0}
	for _, peer := range peers {
		var cp npPeer
		switch {
		case peer.IPBlock != nil && (peer.PodSelector != nil || peer.NamespaceSelector != nil):
			return r, errors.New("a peer with ipBlock and a selector")
		case peer.IPBlock != nil:
			cidr, err := netip.ParsePrefix(peer.IPBlock.CIDR)
			if err != nil {
				return r, err
			}
			cp.block = &cidrBlock{cidr: cidr.Masked()}
			for _, e := range peer.IPBlock.Except {
				ex, err := netip.ParsePrefix(e)
				if err != nil {
					return r, err
				}
				cp.block.except = append(cp.block.except, ex.Masked())
			}
		case peer.PodSelector == nil && peer.NamespaceSelector == nil:
			return r, errors.New("an empty peer")
		default:
			var err error
			if peer.NamespaceSelector != nil {
				if cp.nsSel, err = metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err != nil {
					return r, err
				}
			}
			if peer.PodSelector != nil {
				if cp.podSel, err = metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
					return r, err
				}
			}
		}
		r.peers = append(r.peers, cp)
	}
	for _, port := range ports {
		if port.Protocol != nil && *port.Protocol != corev1.ProtocolTCP {
			continue // UDP and SCTP: verify checks TCP only
		}
		var cp npPort
		switch {
		case port.Port == nil:
			cp.any = true
		case port.Port.Type == intstr.String:
			cp.name = port.Port.StrVal
		default:
			cp.first, cp.last = port.Port.IntVal, port.Port.IntVal
			if port.EndPort != nil {
				cp.last = *port.EndPort
			}
		}
		r.ports = append(r.ports, cp)
	}
	return r, nil
}

// portsAt resolves the rule's ports on destination d: named ports are the
// numbers of d's TCP container ports of that name. nil: no TCP port.
func (r *npRule) portsAt(d *dstClass) portSet {
	if !r.portsGiven {
		return allPorts
	}
	var rs []PortRange
	for _, p := range r.ports {
		switch {
		case p.any:
			return allPorts
		case p.name != "":
			for _, n := range d.namedPorts[p.name] {
				rs = append(rs, PortRange{n, n})
			}
		default:
			rs = append(rs, PortRange{p.first, p.last})
		}
	}
	return portsOf(rs...)
}

// npEval evaluates NetworkPolicies over the classes of a world.
type npEval struct {
	w   *world
	nps []*netpol
	// byNS lists the policies of each namespace.
	byNS map[string][]*netpol
	// egressIsolated has the source classes some egress policy selects.
	egressIsolated bitset
	// egressAny lists egress rules that may match a destination in any
	// namespace (no peers, or an ipBlock peer); egressByNS those whose
	// selector peers may match a destination in that namespace.
	egressAny  []egressRule
	egressByNS map[string][]egressRule
	// selected caches the source classes each policy selects.
	selected map[*netpol]bitset
	// egressPolicies are those with egress rules in force, and
	// egressSelected the source classes each selects.
	egressPolicies []*netpol
	egressSelected []bitset
	// admin evaluates the admin network policies; nil without any.
	admin *adminEval
}

type egressRule struct {
	np   *netpol
	rule *npRule
}

func newNPEval(w *world, nps []*netpol) *npEval {
	e := &npEval{w: w, nps: nps, byNS: map[string][]*netpol{}, egressByNS: map[string][]egressRule{}, selected: map[*netpol]bitset{}}
	e.egressIsolated = w.newSrcSet()
	for _, np := range nps {
		e.byNS[np.ref.Namespace] = append(e.byNS[np.ref.Namespace], np)
		if !np.egress {
			continue
		}
		e.egressPolicies = append(e.egressPolicies, np)
		e.egressSelected = append(e.egressSelected, e.selectedSources(np))
		e.egressIsolated.or(e.selectedSources(np))
		for i := range np.out {
			r := egressRule{np, &np.out[i]}
			if r.rule.anyPeer {
				e.egressAny = append(e.egressAny, r)
				continue
			}
			nss := map[string]bool{}
			block := false
			for _, peer := range r.rule.peers {
				switch {
				case peer.block != nil:
					block = true
				case peer.nsSel == nil:
					nss[np.ref.Namespace] = true
				default:
					for _, ns := range w.nsSorted {
						if peer.nsSel.Matches(ns.labels) {
							nss[ns.name] = true
						}
					}
				}
			}
			if block {
				e.egressAny = append(e.egressAny, r)
				continue
			}
			for ns := range nss {
				e.egressByNS[ns] = append(e.egressByNS[ns], r)
			}
		}
	}
	for i := range nps {
		for j := range nps[i].in {
			r := &nps[i].in[j]
			r.srcStrict, r.srcLoose = e.peerSources(nps[i], r)
		}
	}
	return e
}

// selectedSources are the source classes a policy's podSelector selects.
func (e *npEval) selectedSources(np *netpol) bitset {
	if b, ok := e.selected[np]; ok {
		return b
	}
	b := e.w.newSrcSet()
	for _, i := range e.w.srcByNS[np.ref.Namespace] {
		if np.sel.Matches(e.w.srcs[i].labels) {
			b.set(i)
		}
	}
	e.selected[np] = b
	return b
}

// selects says whether the policy's podSelector selects destination d.
func (np *netpol) selects(d *dstClass) bool {
	return d.ns.name == np.ref.Namespace && np.sel.Matches(d.labels)
}

// peerSources are the source classes an ingress rule's peers match: with
// ipBlocks never matching pods (strict), and matching pods by address
// (loose). Selectors never match a source outside the cluster; ipBlocks
// match it by its address in both readings.
func (e *npEval) peerSources(np *netpol, r *npRule) (strict, loose bitset) {
	if r.anyPeer {
		return e.w.allSrc, e.w.allSrc
	}
	strict, loose = e.w.newSrcSet(), e.w.newSrcSet()
	for _, peer := range r.peers {
		if peer.block != nil {
			// Addresses outside the cluster are what ipBlock is for: they
			// match in both readings.
			for i, c := range e.w.srcs {
				if peer.block.contains(c.addr) {
					loose.set(i)
					if c.external != nil {
						strict.set(i)
					}
				}
			}
			continue
		}
		for _, ns := range e.peerNamespaces(np, &peer) {
			for _, i := range e.w.srcByNS[ns.name] {
				if peer.podSel == nil || peer.podSel.Matches(e.w.srcs[i].labels) {
					strict.set(i)
				}
			}
		}
	}
	loose.or(strict)
	return strict, loose
}

func (e *npEval) peerNamespaces(np *netpol, peer *npPeer) []*nsInfo {
	if peer.nsSel == nil {
		if ns := e.w.namespaces[np.ref.Namespace]; ns != nil {
			return []*nsInfo{ns}
		}
		return nil
	}
	var out []*nsInfo
	for _, ns := range e.w.nsSorted {
		if peer.nsSel.Matches(ns.labels) {
			out = append(out, ns)
		}
	}
	return out
}

// peerMatchesDst says whether an egress peer matches destination d, with
// ipBlocks never matching pods (strict) and matching by address (loose).
func peerMatchesDst(np *netpol, peer *npPeer, d *dstClass) (strict, loose bool) {
	if peer.block != nil {
		return false, peer.block.contains(d.addr)
	}
	if peer.nsSel == nil {
		if d.ns.name != np.ref.Namespace {
			return false, false
		}
	} else if !peer.nsSel.Matches(d.ns.labels) {
		return false, false
	}
	ok := peer.podSel == nil || peer.podSel.Matches(d.labels)
	return ok, ok
}

// npContrib is one rule's share of what reaches a destination: sources
// times ports.
type npContrib struct {
	strict, loose bool // which reading of ipBlock it counts in
	src           bitset
	srcLoose      bitset // ingress only: the loose reading's sources
	ports         portSet
	np            *netpol
}

// npAt is what the NetworkPolicies say about one destination class.
type npAt struct {
	// isolating: the policies selecting d for ingress; when empty, d
	// accepts everything.
	isolating []*netpol
	ingress   []npContrib
	egress    []npContrib
	// admin: the admin network policies at d; nil when none applies.
	admin *adminAt
}

func (e *npEval) at(d *dstClass) *npAt {
	out := &npAt{}
	for _, np := range e.byNS[d.ns.name] {
		if !np.ingress || !np.selects(d) {
			continue
		}
		out.isolating = append(out.isolating, np)
		for i := range np.in {
			r := &np.in[i]
			if ports := r.portsAt(d); len(ports) > 0 {
				out.ingress = append(out.ingress, npContrib{strict: true, loose: true, src: r.srcStrict, srcLoose: r.srcLoose, ports: ports, np: np})
			}
		}
	}
	add := func(r egressRule) {
		strict, loose := r.rule.anyPeer, r.rule.anyPeer
		for i := range r.rule.peers {
			s, l := peerMatchesDst(r.np, &r.rule.peers[i], d)
			strict, loose = strict || s, loose || l
		}
		if !loose {
			return
		}
		if ports := r.rule.portsAt(d); len(ports) > 0 {
			out.egress = append(out.egress, npContrib{strict: strict, loose: loose, src: e.selectedSources(r.np), ports: ports, np: r.np})
		}
	}
	for _, r := range e.egressAny {
		add(r)
	}
	for _, r := range e.egressByNS[d.ns.name] {
		add(r)
	}
	if e.admin != nil {
		out.admin = e.admin.at(d)
	}
	return out
}

func (a *npAt) portSets() []portSet {
	out := make([]portSet, 0, len(a.ingress)+len(a.egress))
	for _, c := range a.ingress {
		out = append(out, c.ports)
	}
	for _, c := range a.egress {
		out = append(out, c.ports)
	}
	if a.admin != nil {
		out = append(out, a.admin.portSets()...)
	}
	return out
}

// verdict fills the sources the NetworkPolicies let reach d on port p:
// both d's ingress and the source's egress must allow it. strict reads
// ipBlocks as never matching pods, loose as matching their addresses.
// egress gets the sources whose own egress allows it (strict reading), so
// that a denial can be told to come from the source's egress.
func (e *npEval) verdict(a *npAt, p int32, strict, loose, egress, looseEg bitset) {
	// Ingress.
	if len(a.isolating) == 0 {
		strict.copyFrom(e.w.allSrc)
		loose.copyFrom(e.w.allSrc)
	} else {
		strict.clear()
		loose.clear()
		for _, c := range a.ingress {
			if c.ports.contains(p) {
				strict.or(c.src)
				loose.or(c.srcLoose)
			}
		}
	}
	// Egress: sources no egress policy selects, and those an egress rule
	// allows to reach d.
	egress.copyFrom(e.w.allSrc)
	if e.egressIsolated.empty() && a.admin == nil {
		return
	}
	looseEg.copyFrom(egress)
	if !e.egressIsolated.empty() {
		egress.andNot(e.egressIsolated)
		looseEg.copyFrom(egress)
		for _, c := range a.egress {
			if !c.ports.contains(p) {
				continue
			}
			if c.strict {
				egress.or(c.src)
			}
			if c.loose {
				looseEg.or(c.src)
			}
		}
	}
	// The admin network policies decide before the NetworkPolicies, and
	// the baseline where none selects the pod.
	if a.admin != nil {
		a.admin.apply(p, strict, loose, egress, looseEg, len(a.isolating) > 0, e.egressIsolated)
	}
	strict.and(egress)
	loose.and(looseEg)
}
