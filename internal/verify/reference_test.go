package verify

import (
	"net/netip"
	"strings"

	secv1beta1 "istio.io/api/security/v1beta1"
)

// The reference evaluators decide one connection pod by pod, from the
// compiled policies, without classes, bitsets or indexes: the property test
// checks the fast path against them.

func refPeerMatches(np *netpol, peer *npPeer, p *podInfo) (strict, loose bool) {
	if peer.block != nil {
		return false, peer.block.contains(p.addr)
	}
	if peer.nsSel == nil {
		if p.ns.name != np.ref.Namespace {
			return false, false
		}
	} else if !peer.nsSel.Matches(p.ns.labels) {
		return false, false
	}
	ok := peer.podSel == nil || peer.podSel.Matches(p.labels)
	return ok, ok
}

func refRule(np *netpol, r *npRule, peer, dst *podInfo, port int32) (strict, loose bool) {
	if !(&dstClass{namedPorts: namedPorts(dst.pod)}).portsOK(r, port) {
		return false, false
	}
	if r.anyPeer {
		return true, true
	}
	for i := range r.peers {
		s, l := refPeerMatches(np, &r.peers[i], peer)
		strict, loose = strict || s, loose || l
	}
	return strict, loose
}

func (d *dstClass) portsOK(r *npRule, port int32) bool { return r.portsAt(d).contains(port) }

// refNP: Kubernetes semantics, the destination's ingress and the source's
// egress.
func (e *engine) refNP(src, dst *podInfo, port int32) (strict, loose bool) {
	inS, inL, isolated := false, false, false
	for _, np := range e.nps {
		if !np.ingress || np.ref.Namespace != dst.ns.name || !np.sel.Matches(dst.labels) {
			continue
		}
		isolated = true
		for i := range np.in {
			s, l := refRule(np, &np.in[i], src, dst, port)
			inS, inL = inS || s, inL || l
		}
	}
	if !isolated {
		inS, inL = true, true
	}
	egS, egL, isolated := false, false, false
	for _, np := range e.nps {
		if !np.egress || np.ref.Namespace != src.ns.name || !np.sel.Matches(src.labels) {
			continue
		}
		isolated = true
		for i := range np.out {
			s, l := refRule(np, &np.out[i], dst, dst, port)
			egS, egL = egS || s, egL || l
		}
	}
	if !isolated {
		egS, egL = true, true
	}
	return inS && egS, inL && egL
}

// refNPExternal: Kubernetes semantics for a source outside the cluster at
// addr: no egress policy selects it, so the destination's ingress decides;
// selectors never match it, ipBlocks match its address.
func (e *engine) refNPExternal(addr netip.Addr, dst *podInfo, port int32) bool {
	isolated, allowed := false, false
	for _, np := range e.nps {
		if !np.ingress || np.ref.Namespace != dst.ns.name || !np.sel.Matches(dst.labels) {
			continue
		}
		isolated = true
		for i := range np.in {
			r := &np.in[i]
			if !(&dstClass{namedPorts: namedPorts(dst.pod)}).portsOK(r, port) {
				continue
			}
			if r.anyPeer {
				allowed = true
			}
			for _, peer := range r.peers {
				if peer.block != nil && peer.block.contains(addr) {
					allowed = true
				}
			}
		}
	}
	return allowed || !isolated
}

// externalPod is a source outside the cluster as refIstio reads it: an
// address, no mesh identity.
func externalPod(addr netip.Addr) *podInfo { return &podInfo{addr: addr} }

// refIstio: Istio semantics for TCP, dry-run policies counted unless
// enforcedOnly.
func (e *engine) refIstio(ev *istioEval, src, dst *podInfo, port int32, enforcedOnly bool) bool {
	if !dst.inMesh {
		return true
	}
	allowPolicies, allowed, denied := false, false, false
	for _, a := range ev.policies {
		if a.ignored || a.action == secv1beta1.AuthorizationPolicy_AUDIT || (enforcedOnly && a.dryRun) {
			continue
		}
		if !(a.root || a.ref.Namespace == dst.ns.name) || !(a.sel == nil || a.sel.Matches(dst.labels)) {
			continue
		}
		if a.action == secv1beta1.AuthorizationPolicy_ALLOW {
			allowPolicies = true
		}
		for i := range a.rules {
			r := &a.rules[i]
			if r.skip || !r.ports.contains(port) || !e.refSource(r, src, dst.pod.Sidecar) {
				continue
			}
			switch a.action {
			case secv1beta1.AuthorizationPolicy_ALLOW:
				allowed = true
			case secv1beta1.AuthorizationPolicy_DENY:
				denied = true
			}
		}
	}
	return !denied && (allowed || !allowPolicies)
}

func (e *engine) refSource(r *authzRule, p *podInfo, sidecar bool) bool {
	for _, f := range r.conds {
		if !e.refField(f, p, sidecar) {
			return false
		}
	}
	if r.anySource {
		return true
	}
	for _, fields := range r.sources {
		ok := true
		for _, f := range fields {
			ok = ok && e.refField(f, p, sidecar)
		}
		if ok {
			return true
		}
	}
	return false
}

func (e *engine) refField(f srcField, p *podInfo, sidecar bool) bool {
	anyOf := func(patterns []string) bool {
		for _, pat := range patterns {
			if e.refMatch(f, pat, p, sidecar) {
				return true
			}
		}
		return false
	}
	return (len(f.values) == 0 || anyOf(f.values)) && !anyOf(f.notValues)
}

func (e *engine) refMatch(f srcField, pat string, p *podInfo, sidecar bool) bool {
	principal, namespace := "", ""
	if p.inMesh {
		principal, namespace = e.w.principal(p.ns.name, p.sa), p.ns.name
	}
	switch f.attr {
	case attrPrincipal:
		if istioMatch(pat, principal) {
			return true
		}
		rest, ok := strings.CutPrefix(pat, defaultTrustDomain+"/")
		return ok && sidecar && e.w.trustDomain != defaultTrustDomain && istioMatch(e.w.trustDomain+"/"+rest, principal)
	case attrNamespace:
		return istioMatch(pat, namespace)
	case attrServiceAccount:
		ns, sa, ok := strings.Cut(pat, "/")
		if !ok {
			ns, sa = f.ns, pat
		}
		return principal != "" && principal == e.w.principal(ns, sa)
	case attrTrustDomain:
		return principal != "" && istioMatch(pat, e.w.trustDomain)
	case attrIP:
		prefix, ok := parseIPBlock(pat)
		return ok && inPrefix(p.addr, prefix)
	}
	return false
}
