package verify

import (
	"net/netip"
	"slices"
	"strings"

	secv1beta1 "istio.io/api/security/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
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
// egress, each decided by the whole stack: the admin tier (admin, from
// refAdminPolicies), then the NetworkPolicies where one selects the pod,
// then the baseline tier.
func (e *engine) refNP(admin []*adminpolicy.Compiled, src, dst *podInfo, port int32) (strict, loose bool) {
	inS, inL, inIsolated := false, false, false
	for _, np := range e.nps {
		if !np.ingress || np.ref.Namespace != dst.ns.name || !np.sel.Matches(dst.labels) {
			continue
		}
		inIsolated = true
		for i := range np.in {
			s, l := refRule(np, &np.in[i], src, dst, port)
			inS, inL = inS || s, inL || l
		}
	}
	egS, egL, egIsolated := false, false, false
	for _, np := range e.nps {
		if !np.egress || np.ref.Namespace != src.ns.name || !np.sel.Matches(src.labels) {
			continue
		}
		egIsolated = true
		for i := range np.out {
			s, l := refRule(np, &np.out[i], dst, dst, port)
			egS, egL = egS || s, egL || l
		}
	}
	stack := func(ingress, selected, allows bool) bool {
		if !selected {
			allows = true
		}
		if len(admin) == 0 {
			return allows
		}
		return adminpolicy.Allowed(admin, ingress, refEndpoint(src), refEndpoint(dst), port, adminpolicy.NetworkPolicies{Selected: selected, Allows: allows})
	}
	strict = stack(true, inIsolated, inS) && stack(false, egIsolated, egS)
	loose = stack(true, inIsolated, inL) && stack(false, egIsolated, egL)
	return strict, loose
}

// refAdminPolicies are the snapshot's admin policies the API server would
// accept, compiled anew and in precedence order.
func (e *engine) refAdminPolicies() []*adminpolicy.Compiled {
	var out []*adminpolicy.Compiled
	for i := range e.in.Snapshot.AdminPolicies {
		p := e.in.Snapshot.AdminPolicies[i]
		if c, errs := adminpolicy.Compile(&p); len(errs) == 0 {
			out = append(out, c)
		}
	}
	adminpolicy.Sort(out)
	return out
}

// refEndpoint is a pod as the admin policies read it.
func refEndpoint(p *podInfo) adminpolicy.Endpoint {
	return adminpolicy.Endpoint{NamespaceLabels: p.ns.labels, Labels: p.labels, Addr: p.addr, Named: namedPorts(p.pod)}
}

// refNPExternal: Kubernetes semantics for a source outside the cluster at
// addr: no egress policy selects it, so the destination's ingress decides,
// with the admin policies above and below; selectors never match it,
// ipBlocks match its address.
func (e *engine) refNPExternal(admin []*adminpolicy.Compiled, addr netip.Addr, dst *podInfo, port int32) bool {
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
	if len(admin) > 0 {
		return adminpolicy.Allowed(admin, true, adminpolicy.Endpoint{External: true, Addr: addr}, refEndpoint(dst), port, adminpolicy.NetworkPolicies{Selected: isolated, Allows: allowed})
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

// refIstioPaths: Istio semantics over every path from src to dst on port
// p (docs/verify.md#waypoints), pod by pod: whether some path, and every
// path, lets the connection through.
func (e *engine) refIstioPaths(ev *istioEval, src, dst *podInfo, p int32, enforcedOnly bool) (some, every bool) {
	direct := e.refIstio(ev, src, dst, p, enforcedOnly)
	if e.w.wp == nil || !src.inMesh || !dst.inMesh || dst.pod.Sidecar || !dst.ns.ambient {
		return direct, direct
	}
	some, every = false, true
	path := func(s, a bool) { some, every = some || s, every && a }
	if v := e.w.useWaypoint(dst.labels, dst.ns, true); v != nil {
		path(e.refThrough(ev, src, dst, v, []string{v.key()}, p, p, enforcedOnly))
	} else {
		path(direct, direct)
	}
	for _, s := range e.w.wp.services[dst.ns.name] {
		if s.sel == nil || !s.sel.Matches(dst.labels) {
			continue
		}
		for _, sp := range s.svc.Ports {
			if sp.Protocol != "" && sp.Protocol != "TCP" {
				continue
			}
			target := []int32{sp.Port}
			switch {
			case sp.TargetPort.StrVal != "":
				target = namedPorts(dst.pod)[sp.TargetPort.StrVal]
			case sp.TargetPort.IntVal != 0:
				target = []int32{sp.TargetPort.IntVal}
			}
			if !slices.Contains(target, p) {
				continue
			}
			if s.wp == nil {
				path(direct, direct)
				continue
			}
			path(e.refThrough(ev, src, dst, s.wp, []string{s.key(), s.wp.key()}, sp.Port, p, enforcedOnly))
		}
	}
	return some, every
}

// refThrough: the policies bound to keys at waypoint v, with the client's
// identity on port sport, then dst's ztunnel with each identity of v on
// port p.
func (e *engine) refThrough(ev *istioEval, src, dst *podInfo, v *vWaypoint, keys []string, sport, p int32, enforcedOnly bool) (some, every bool) {
	allowPolicies, allowed, denied := false, false, false
	for _, k := range keys {
		for _, a := range ev.byTarget[k] {
			if (enforcedOnly && a.dryRun) || (a.action != secv1beta1.AuthorizationPolicy_ALLOW && a.action != secv1beta1.AuthorizationPolicy_DENY) {
				continue
			}
			if a.action == secv1beta1.AuthorizationPolicy_ALLOW {
				allowPolicies = true
			}
			for i := range a.rules {
				r := &a.rules[i]
				if r.skip || !r.ports.contains(sport) || !e.refSource(r, src, true) {
					continue
				}
				if a.action == secv1beta1.AuthorizationPolicy_DENY {
					denied = true
				} else {
					allowed = true
				}
			}
		}
	}
	if denied || (allowPolicies && !allowed) {
		return false, false
	}
	every = true
	for _, id := range v.ids {
		ok := e.refIdentity(ev, id, dst, p, enforcedOnly)
		some, every = some || ok, every && ok
	}
	return some, every
}

// refIdentity: dst's selector-bound policies for a waypoint's identity.
func (e *engine) refIdentity(ev *istioEval, id wpIdentity, dst *podInfo, p int32, enforcedOnly bool) bool {
	allowPolicies, allowed := false, false
	for _, a := range ev.policies {
		if a.ignored || (enforcedOnly && a.dryRun) || (a.action != secv1beta1.AuthorizationPolicy_ALLOW && a.action != secv1beta1.AuthorizationPolicy_DENY) {
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
			if r.skip || !r.ports.contains(p) || !e.ruleMatchesIdentity(r, id) {
				continue
			}
			if a.action == secv1beta1.AuthorizationPolicy_DENY {
				return false
			}
			allowed = true
		}
	}
	return allowed || !allowPolicies
}
