package verify

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	secv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Waypoints (docs/verify.md#waypoints). Traffic from a mesh source to an
// ambient destination d on container port p takes one of several paths,
// chosen by the source: to d's pod IP, or to the address of a Service
// that selects d and has a port targeting p. Each path goes straight to
// d's ztunnel (which sees the client), or through a waypoint (which checks
// the policies bound to the Service, or only those bound to its Gateway for
// pod-IP traffic, with the client's identity and the port the client sent
// to), after which d's ztunnel sees the waypoint's identity and address.
// Sources outside the mesh never use a waypoint. Istio allows a connection
// more than the NetworkPolicies when some path allows it, and denies it
// more when some path denies it.
//
// Which path passes which waypoint is Istio's choice from the
// istio.io/use-waypoint labels, written here from Istio's source apart
// from the translator's.

const (
	labelUseWaypoint   = "istio.io/use-waypoint"
	labelUseWaypointNS = "istio.io/use-waypoint-namespace"
	labelWaypointFor   = "istio.io/waypoint-for"
	labelGatewayName   = "gateway.networking.k8s.io/gateway-name"
	annotationWPSA     = "gateway.istio.io/service-account"
)

// vWaypoint is a Gateway that istiod uses as a waypoint.
type vWaypoint struct {
	ns, name string
	gw       *translate.Gateway
	// ids are what the destination's ztunnel sees of it: one per pod of
	// the waypoint, or its ServiceAccount at an unknown address.
	ids []wpIdentity
}

func (v *vWaypoint) key() string { return "Gateway/" + v.ns + "/" + v.name }

type wpIdentity struct {
	principal, ns, sa string
	addr              netip.Addr
}

// vService is a Service as verify reads it.
type vService struct {
	svc *translate.Service
	sel labels.Selector // nil: selects nothing
	// wp is its waypoint; nil: its traffic goes straight to the pods.
	wp *vWaypoint
}

func (s *vService) key() string { return "Service/" + s.svc.Namespace + "/" + s.svc.Name }

// waypoints is the topology of a snapshot.
type waypoints struct {
	services map[string][]*vService
	gateways map[string]*translate.Gateway
	ready    map[string]*vWaypoint
}

func (w *world) buildWaypoints(s translate.Snapshot) {
	wp := &waypoints{services: map[string][]*vService{}, gateways: map[string]*translate.Gateway{}, ready: map[string]*vWaypoint{}}
	w.wp = wp
	for i := range s.Gateways {
		g := &s.Gateways[i]
		if prev, ok := wp.gateways[g.Namespace+"/"+g.Name]; !ok || translate.GatewayPrecedes(g, prev) {
			wp.gateways[g.Namespace+"/"+g.Name] = g
		}
	}
	svcs := make([]*translate.Service, 0, len(s.Services))
	for i := range s.Services {
		svcs = append(svcs, &s.Services[i])
	}
	slices.SortStableFunc(svcs, func(a, b *translate.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	svcs = slices.CompactFunc(svcs, func(a, b *translate.Service) bool { return a.Namespace == b.Namespace && a.Name == b.Name })
	for _, svc := range svcs {
		ns := w.namespaces[svc.Namespace]
		if ns == nil {
			continue
		}
		v := &vService{svc: svc}
		if len(svc.Selector) > 0 {
			v.sel = labels.SelectorFromSet(svc.Selector)
		}
		v.wp = w.useWaypoint(svc.Labels, ns, false)
		wp.services[svc.Namespace] = append(wp.services[svc.Namespace], v)
	}
}

// addWaypointKeys splits classes by what decides paths: the Services'
// selectors and the use-waypoint labels.
func addWaypointKeys(k *classKeys, s translate.Snapshot) {
	if len(s.Services) == 0 && len(s.Gateways) == 0 {
		return
	}
	k.dstLabels[labelUseWaypoint] = true
	k.dstLabels[labelUseWaypointNS] = true
	for _, svc := range s.Services {
		for key := range svc.Selector {
			k.dstLabels[key] = true
		}
	}
}

// useWaypoint is the waypoint Istio sends an object's traffic to: the one
// its own label names, else its namespace's ("none" opts out), if that
// Gateway has addresses, serves this kind of traffic and admits the
// namespace; nil otherwise.
func (w *world) useWaypoint(own map[string]string, ns *nsInfo, workload bool) *vWaypoint {
	lbls := own
	name, ok := own[labelUseWaypoint]
	if !ok {
		lbls = ns.labels
		name = lbls[labelUseWaypoint]
	}
	if name == "" || name == "none" {
		return nil
	}
	wns := cmp.Or(lbls[labelUseWaypointNS], ns.name)
	gw := w.wp.gateways[wns+"/"+name]
	if gw == nil || !gw.Addressed {
		return nil
	}
	kind := cmp.Or(gw.Labels[labelWaypointFor], "service")
	if kind != "all" && kind != map[bool]string{true: "workload", false: "service"}[workload] {
		return nil
	}
	if gw.Namespace != ns.name {
		switch gw.AttachFrom {
		case "All":
		case "Selector":
			sel, err := metav1.LabelSelectorAsSelector(gw.AttachSelector)
			if gw.AttachSelector == nil || err != nil || !sel.Matches(ns.labels) {
				return nil
			}
		default:
			return nil
		}
	}
	return w.waypoint(gw)
}

// waypoint is the waypoint of a Gateway, with the identities its pods
// present.
func (w *world) waypoint(gw *translate.Gateway) *vWaypoint {
	key := gw.Namespace + "/" + gw.Name
	if v := w.wp.ready[key]; v != nil {
		return v
	}
	v := &vWaypoint{ns: gw.Namespace, name: gw.Name, gw: gw}
	for _, p := range w.pods {
		if p.ns.name == gw.Namespace && p.labels[labelGatewayName] == gw.Name {
			v.ids = append(v.ids, wpIdentity{principal: w.principal(gw.Namespace, p.sa), ns: gw.Namespace, sa: p.sa, addr: p.addr})
		}
	}
	if len(v.ids) == 0 {
		sa := cmp.Or(gw.Annotations[annotationWPSA], gw.Name)
		v.ids = []wpIdentity{{principal: w.principal(gw.Namespace, sa), ns: gw.Namespace, sa: sa}}
	}
	w.wp.ready[key] = v
	return v
}

// wpAt is the paths to one destination class that pass a waypoint.
type wpAt struct {
	// podIP is the waypoint of pod-IP traffic; nil: straight to ztunnel.
	podIP *vWaypoint
	// paths are, by container port, the Services whose ports target it.
	paths map[int32][]svcPath
	ports portSet
}

type svcPath struct {
	svc *vService
	// port is the service port the client sends to.
	port int32
}

// waypointsAt returns the paths of d, nil when none passes a waypoint
// (then every path is the direct one).
func (e *engine) waypointsAt(d *dstClass) *wpAt {
	w := e.w
	if w.wp == nil || !d.inMesh || d.sidecar || !d.ns.ambient {
		return nil
	}
	out := &wpAt{podIP: w.useWaypoint(d.labels, d.ns, true), paths: map[int32][]svcPath{}}
	through := out.podIP != nil
	for _, s := range w.wp.services[d.ns.name] {
		if s.sel == nil || !s.sel.Matches(d.labels) {
			continue
		}
		for _, sp := range s.svc.Ports {
			if !sp.TCP() {
				continue
			}
			var targets []int32
			switch {
			case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
				targets = d.namedPorts[sp.TargetPort.StrVal]
			case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
				targets = []int32{sp.TargetPort.IntVal}
			default:
				targets = []int32{sp.Port}
			}
			for _, t := range targets {
				out.paths[t] = append(out.paths[t], svcPath{svc: s, port: sp.Port})
				out.ports = out.ports.union(portsOf(PortRange{t, t}))
				through = through || s.wp != nil
			}
		}
	}
	if !through {
		return nil
	}
	return out
}

// pathVerdict turns direct, the sources Istio lets reach d on port p
// straight through its ztunnel, into any and all: the sources some path,
// and every path, lets through.
func (e *engine) pathVerdict(ev *istioEval, at *istioAt, wa *wpAt, p int32, enforcedOnly bool, direct, all, tmp bitset) {
	mesh := e.w.meshSrc
	all.copyFrom(direct)
	// direct becomes any; both start from the direct path, which sources
	// outside the mesh always take and mesh sources take unless every
	// path they can take passes a waypoint.
	first := true
	anyMesh, allMesh := e.w.newSrcSet(), e.w.newSrcSet()
	add := func(b bitset) {
		anyMesh.or(b)
		if first {
			allMesh.copyFrom(b)
			first = false
		} else {
			allMesh.and(b)
		}
	}
	through := func(v *vWaypoint, keys []string, port int32) {
		zAny, zAll := e.waypointPeer(at, v, p, enforcedOnly)
		if !zAny {
			add(e.w.newSrcSet())
			return
		}
		e.chainVerdict(ev, keys, port, enforcedOnly, tmp)
		if zAll {
			add(tmp)
			return
		}
		// Some of the waypoint's pods are let through, others not: any
		// path may allow, none allows for certain.
		anyMesh.or(tmp)
		allMesh.clear()
		first = false
	}
	if wa.podIP != nil {
		through(wa.podIP, []string{wa.podIP.key()}, p)
	} else {
		add(direct)
	}
	for _, sp := range wa.paths[p] {
		if sp.svc.wp == nil {
			add(direct)
			continue
		}
		through(sp.svc.wp, []string{sp.svc.key(), sp.svc.wp.key()}, sp.port)
	}
	// Outside the mesh: the direct path. In it: the paths.
	direct.andNot(mesh)
	all.andNot(mesh)
	anyMesh.and(mesh)
	allMesh.and(mesh)
	direct.or(anyMesh)
	all.or(allMesh)
}

// chainVerdict fills out with the sources the policies bound (targetRefs)
// to keys let through a waypoint on service port port.
func (e *engine) chainVerdict(ev *istioEval, keys []string, port int32, enforcedOnly bool, out bitset) {
	deny := e.w.newSrcSet()
	allowPolicies := false
	allow := e.w.newSrcSet()
	for _, k := range keys {
		for _, a := range ev.byTarget[k] {
			if (enforcedOnly && a.dryRun) || a.action == secv1beta1.AuthorizationPolicy_AUDIT || a.action == secv1beta1.AuthorizationPolicy_CUSTOM {
				continue
			}
			if a.action == secv1beta1.AuthorizationPolicy_ALLOW {
				allowPolicies = true
			}
			for i := range a.rules {
				r := &a.rules[i]
				if r.skip || !r.ports.contains(port) {
					continue
				}
				// A waypoint is Envoy, as a sidecar: kind 1.
				if r.src[1] == nil {
					r.src[1] = ev.ruleSources(r, true)
				}
				if a.action == secv1beta1.AuthorizationPolicy_DENY {
					deny.or(r.src[1])
				} else {
					allow.or(r.src[1])
				}
			}
		}
	}
	if allowPolicies {
		out.copyFrom(allow)
	} else {
		out.copyFrom(e.w.allSrc)
	}
	out.andNot(deny)
}

// waypointPeer says whether d's ztunnel lets the waypoint's traffic in on
// port p: for some of its identities, and for all.
func (e *engine) waypointPeer(at *istioAt, v *vWaypoint, p int32, enforcedOnly bool) (anyOK, allOK bool) {
	allOK = true
	for _, id := range v.ids {
		ok := e.allowsIdentity(at, id, p, enforcedOnly)
		anyOK = anyOK || ok
		allOK = allOK && ok
	}
	return anyOK, allOK
}

// allowsIdentity evaluates the selector-bound policies of a destination
// for one peer that is not a source class: a waypoint.
func (e *engine) allowsIdentity(at *istioAt, id wpIdentity, p int32, enforcedOnly bool) bool {
	if !at.enforced {
		return true
	}
	allowPolicies, allowed := false, false
	for _, a := range at.applying {
		if (enforcedOnly && a.dryRun) || (a.action != secv1beta1.AuthorizationPolicy_ALLOW && a.action != secv1beta1.AuthorizationPolicy_DENY) {
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

func (e *engine) ruleMatchesIdentity(r *authzRule, id wpIdentity) bool {
	if !r.anySource && !slices.ContainsFunc(r.sources, func(fields []srcField) bool {
		return !slices.ContainsFunc(fields, func(f srcField) bool { return !e.fieldMatchesIdentity(f, id) })
	}) {
		return false
	}
	return !slices.ContainsFunc(r.conds, func(f srcField) bool { return !e.fieldMatchesIdentity(f, id) })
}

func (e *engine) fieldMatchesIdentity(f srcField, id wpIdentity) bool {
	match := func(pat string) bool {
		switch f.attr {
		case attrPrincipal:
			return istioMatch(pat, id.principal)
		case attrNamespace:
			return istioMatch(pat, id.ns)
		case attrServiceAccount:
			ns, sa, ok := strings.Cut(pat, "/")
			if !ok {
				ns, sa = f.ns, pat
			}
			return ns == id.ns && sa == id.sa
		case attrTrustDomain:
			return istioMatch(pat, e.w.trustDomain)
		default:
			prefix, ok := parseIPBlock(pat)
			return ok && inPrefix(id.addr, prefix)
		}
	}
	if len(f.values) > 0 && !slices.ContainsFunc(f.values, match) {
		return false
	}
	return !slices.ContainsFunc(f.notValues, match)
}

// waypointNotes says which policies bound with targetRefs verify
// evaluates: those bound to a Service or Gateway a waypoint serves.
func (e *engine) waypointNotes(policies []*authz) {
	served := map[string]bool{}
	if e.w.wp != nil {
		for _, list := range e.w.wp.services {
			for _, s := range list {
				if s.wp != nil {
					served[s.key()] = true
					served[s.wp.key()] = true
				}
			}
		}
		for _, p := range e.w.pods {
			if v := e.w.useWaypoint(p.labels, p.ns, true); v != nil {
				served[v.key()] = true
			}
		}
	}
	for _, a := range policies {
		if len(a.targets) == 0 {
			continue
		}
		evaluated := false
		for _, t := range a.targets {
			evaluated = evaluated || served[t]
		}
		if !evaluated {
			e.note("AuthorizationPolicy", a.ref, "it is bound with targetRefs to "+strings.Join(a.targets, ", ")+", which no waypoint here serves (a gateway, or a Service without waypoint), so verify does not evaluate it")
		}
	}
}

// waypointsOf lists the waypoints in the paths of a group's connections.
func (e *engine) waypointsOf(grp *group, ats []*dstAt) []WaypointPath {
	byName := map[string]*WaypointPath{}
	add := func(v *vWaypoint, via string, keys []string) {
		name := v.ns + "/" + v.name
		wp := byName[name]
		if wp == nil {
			wp = &WaypointPath{Waypoint: name, Via: []string{}, Policies: []string{}, Principals: []string{}}
			for _, id := range v.ids {
				wp.Principals = append(wp.Principals, id.principal)
			}
			byName[name] = wp
		}
		wp.Via = append(wp.Via, via)
		for _, k := range keys {
			for _, a := range e.force.byTarget[k] {
				wp.Policies = append(wp.Policies, a.ref.String())
			}
		}
	}
	for _, di := range grp.dsts {
		wa := ats[di].wp
		if wa == nil {
			continue
		}
		if wa.podIP != nil {
			add(wa.podIP, "pod IP", []string{wa.podIP.key()})
		}
		for p, paths := range wa.paths {
			if !grp.ports.contains(p) {
				continue
			}
			for _, sp := range paths {
				if sp.svc.wp != nil {
					add(sp.svc.wp, fmt.Sprintf("Service %s/%s port %d", sp.svc.svc.Namespace, sp.svc.svc.Name, sp.port), []string{sp.svc.key(), sp.svc.wp.key()})
				}
			}
		}
	}
	out := make([]WaypointPath, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		wp := byName[name]
		for _, l := range []*[]string{&wp.Via, &wp.Policies, &wp.Principals} {
			slices.Sort(*l)
			*l = slices.Compact(*l)
		}
		out = append(out, *wp)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
