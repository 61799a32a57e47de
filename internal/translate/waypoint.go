package translate

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// Waypoints (ambient): where traffic to a destination passes a waypoint,
// its ztunnel sees the waypoint's identity, not the client's
// (docs/translation.md#waypoints). Which traffic passes which waypoint is
// Istio's decision from labels:
//
//   - istio.io/use-waypoint on a Service names the waypoint of traffic
//     sent to its address (the VIP), on a pod that of traffic sent to its
//     pod IP; the namespace's label applies where the object has none, and
//     an object's "none" opts out. istio.io/use-waypoint-namespace on the
//     same object names the waypoint's namespace (default: its own).
//   - The waypoint's istio.io/waypoint-for says what it serves: service
//     (the default), workload, all or none. A label inherited from the
//     namespace that names a waypoint of the other kind binds nothing.
//   - A Gateway is a waypoint only once it has status.addresses; one in
//     another namespace only if its HBONE listener admits the namespace.
//
// What a waypoint enforces: policies bound to a Service (targetRefs), with
// the client's identity and the service port, on that Service's traffic;
// policies bound to its Gateway on all of its traffic. The destination's
// ztunnel then applies the selector-bound policies with the waypoint's
// identity. So for the pods of a NetworkPolicy behind a waypoint the
// engine writes, besides the selector-bound policies:
//
//   - one policy per Service bound to a waypoint, bound to the Service,
//     with the NetworkPolicy's sources and its ports as service ports;
//   - the waypoint's principal as one more source of every rule with a
//     `from` in the selector-bound policies, where that is safe (strict)
//     or always (permissive), each choice reported.

// Labels and annotations of Istio's waypoints.
const (
	LabelUseWaypoint           = "istio.io/use-waypoint"
	LabelUseWaypointNamespace  = "istio.io/use-waypoint-namespace"
	LabelWaypointFor           = "istio.io/waypoint-for"
	LabelGatewayName           = "gateway.networking.k8s.io/gateway-name"
	AnnotationWaypointAccount  = "gateway.istio.io/service-account"
	WaypointClass              = "istio-waypoint"
	waypointNone               = "none"
	waypointForService         = "service"
	waypointForWorkload        = "workload"
	waypointForAll             = "all"
	attachAll                  = "All"
	attachSelector             = "Selector"
	waypointPeer               = "istio.io/use-waypoint"
	kindService, kindGateway   = "Service", "Gateway"
	gatewayGroup, serviceGroup = "gateway.networking.k8s.io", ""
)

// waypointRef names a Gateway.
type waypointRef struct{ ns, name string }

func (r waypointRef) String() string { return r.ns + "/" + r.name }

// bindState is how far an object's waypoint label takes effect.
type bindState int

const (
	// bound: istiod sends the object's traffic to the waypoint.
	bound bindState = iota
	// notAddressed: the Gateway has no status.addresses yet; traffic goes
	// straight to the pods until it has.
	notAddressed
	// missing: no Gateway of that name.
	missing
	// wrongKind: the waypoint does not serve this kind of traffic.
	wrongKind
	// denied: the waypoint does not admit the object's namespace.
	denied
)

// binding is the waypoint an object's labels name, and what came of it.
type binding struct {
	ref   waypointRef
	gw    *Gateway
	state bindState
	// via is the object whose label names the waypoint, labels those
	// labels.
	via    ObjectRef
	labels map[string]string
}

// svcInfo is one Service of a namespace.
type svcInfo struct {
	svc *Service
	ns  *nsInfo
	// sel is nil for a Service without selector.
	sel labels.Selector
	// bind is its service waypoint, computed once; bindDone says so.
	bind     *binding
	bindDone bool
}

func (s *svcInfo) ref() ObjectRef {
	return ObjectRef{Kind: kindService, Namespace: s.svc.Namespace, Name: s.svc.Name}
}

// endpoints are the counted pods of its namespace it selects, by name.
func (s *svcInfo) endpoints() []*podInfo {
	if s.sel == nil {
		return nil
	}
	var out []*podInfo
	for _, p := range s.ns.pods {
		if s.sel.Matches(p.labels) {
			out = append(out, p)
		}
	}
	return out
}

// waypointIndex is the Services, Gateways and isolation of a snapshot.
type waypointIndex struct {
	services map[string][]*svcInfo
	gateways map[waypointRef]*Gateway
	// isolating holds, by namespace, the ingress NetworkPolicies there
	// (translated or not).
	isolating map[string][]*isolatingPolicy
	podBind   map[*podInfo]*binding
	// labelled holds the namespaces with a Service that names a
	// waypoint.
	labelled map[string]bool
}

func (idx *index) buildWaypoints(s Snapshot) {
	w := &waypointIndex{services: map[string][]*svcInfo{}, gateways: map[waypointRef]*Gateway{}, isolating: map[string][]*isolatingPolicy{},
		podBind: map[*podInfo]*binding{}, labelled: map[string]bool{}}
	idx.wp = w
	svcs := make([]*Service, 0, len(s.Services))
	for i := range s.Services {
		if s.Services[i].Namespace != "" && s.Services[i].Name != "" {
			svcs = append(svcs, &s.Services[i])
		}
	}
	// A name given twice (manifests read twice) keeps the smallest.
	slices.SortFunc(svcs, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(fmt.Sprintf("%+v", *a), fmt.Sprintf("%+v", *b)))
	})
	svcs = slices.CompactFunc(svcs, func(a, b *Service) bool { return a.Namespace == b.Namespace && a.Name == b.Name })
	for _, svc := range svcs {
		ns := idx.namespaces[svc.Namespace]
		if ns == nil {
			continue // no pod and no policy there: it selects nothing that matters
		}
		si := &svcInfo{svc: svc, ns: ns}
		if len(svc.Selector) > 0 {
			si.sel = labels.SelectorFromSet(svc.Selector)
		}
		w.services[svc.Namespace] = append(w.services[svc.Namespace], si)
		if _, ok := svc.Labels[LabelUseWaypoint]; ok {
			w.labelled[svc.Namespace] = true
		}
	}
	for i := range s.Gateways {
		g := &s.Gateways[i]
		ref := waypointRef{g.Namespace, g.Name}
		if prev, ok := w.gateways[ref]; !ok || GatewayPrecedes(g, prev) {
			w.gateways[ref] = g
		}
	}
	for _, list := range [][]networkingv1.NetworkPolicy{s.NetworkPolicies, s.OtherPolicies} {
		for i := range list {
			np := &list[i]
			if !isolatesIngress(np) {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				continue // invalid: the API server would not have it
			}
			w.isolating[np.Namespace] = append(w.isolating[np.Namespace], &isolatingPolicy{np: np, sel: sel})
		}
	}
}

// GatewayPrecedes says which of two Gateways of one namespace and name (the
// same manifest given twice, offline) is read: the first by content, so
// that input order never shows. verify reads the same one.
func GatewayPrecedes(a, b *Gateway) bool {
	return fmt.Sprintf("%+v", *a) < fmt.Sprintf("%+v", *b)
}

// isolatesIngress says whether a NetworkPolicy restricts ingress.
func isolatesIngress(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return true
	}
	return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// isolatingPolicy is an ingress NetworkPolicy of a namespace with a
// waypoint, its rules compiled on first use.
type isolatingPolicy struct {
	np       *networkingv1.NetworkPolicy
	sel      labels.Selector
	compiled bool
	// cp is nil for a policy that does not compile.
	cp *compiledPolicy
}

// isolated says whether some ingress NetworkPolicy selects p.
func (idx *index) isolated(p *podInfo) bool {
	for _, ip := range idx.wp.isolating[p.ns.name] {
		if ip.sel.Matches(p.labels) {
			return true
		}
	}
	return false
}

// waypointReaches says whether the policies generated for pod p may let a
// waypoint in at its ztunnel on TCP port t: p is isolated by no
// NetworkPolicy, or a rule of one that isolates it allows t there (a rule
// with peers admits the waypoint on its ports where it is safe, one without
// admits everyone), or an admin Allow rule over p matches t (its policy
// admits the waypoint likewise). It errs on yes: a pod that is not an
// ambient one (no ztunnel checks it), a NetworkPolicy that does not
// compile, a range past the cap.
func (idx *index) waypointReaches(p *podInfo, t int32) bool {
	if !p.inMesh || p.pod.Sidecar || !p.ns.ambient {
		return true
	}
	isolated := false
	for _, ip := range idx.wp.isolating[p.ns.name] {
		if !ip.sel.Matches(p.labels) {
			continue
		}
		isolated = true
		if !ip.compiled {
			ip.compiled = true
			if cp, errs := compile(ip.np); len(errs) == 0 {
				ip.cp = cp
			}
		}
		if ip.cp == nil {
			return true
		}
		for i := range ip.cp.rules {
			if ruleAllowsPort(&ip.cp.rules[i], p, t) {
				return true
			}
		}
	}
	if !isolated {
		return true
	}
	named := func(name string) []int32 { return portNumbers(p, name) }
	for _, pol := range idx.admin.policies {
		if pol.Tier != adminpolicy.TierAdmin || !pol.Selects(p.ns.labels, p.labels) {
			continue
		}
		for i := range pol.Ingress {
			r := &pol.Ingress[i]
			if r.Action == adminpolicy.ActionAllow && r.MatchesPort(t, named) {
				return true
			}
		}
	}
	return false
}

// ruleAllowsPort says whether a NetworkPolicy rule allows TCP port t at
// pod p: it lists no port, or a TCP port, range or named port of p that is
// t.
func ruleAllowsPort(r *compiledRule, p *podInfo, t int32) bool {
	if len(r.ports) == 0 {
		return true
	}
	for _, port := range r.ports {
		switch {
		case port.protocol != corev1.ProtocolTCP:
		case port.any:
			return true
		case port.name != "":
			if slices.Contains(portNumbers(p, port.name), t) {
				return true
			}
		case port.first <= t && t <= port.last:
			return true
		}
	}
	return false
}

// servicesOf are the Services of p's namespace that select p, by name.
func (idx *index) servicesOf(p *podInfo) []*svcInfo {
	var out []*svcInfo
	for _, s := range idx.wp.services[p.ns.name] {
		if s.sel != nil && s.sel.Matches(p.labels) {
			out = append(out, s)
		}
	}
	return out
}

func (idx *index) serviceBinding(s *svcInfo) *binding {
	if !s.bindDone {
		s.bind, s.bindDone = idx.resolveWaypoint(s.ref(), s.svc.Labels, s.ns, false), true
	}
	return s.bind
}

func (idx *index) podBinding(p *podInfo) *binding {
	b, ok := idx.wp.podBind[p]
	if !ok {
		b = idx.resolveWaypoint(podRef(p), p.pod.Labels, p.ns, true)
		idx.wp.podBind[p] = b
	}
	return b
}

// resolveWaypoint is Istio's choice of the waypoint of an object: its own
// label, else its namespace's; nil when none is named (or "none").
func (idx *index) resolveWaypoint(ref ObjectRef, own map[string]string, ns *nsInfo, workload bool) *binding {
	via, lbls := ref, own
	name, explicit := own[LabelUseWaypoint]
	if !explicit {
		via, lbls = namespaceRef(ns.name), ns.labels
		name = lbls[LabelUseWaypoint]
	}
	if name == "" || name == waypointNone {
		return nil
	}
	b := &binding{ref: waypointRef{cmp.Or(lbls[LabelUseWaypointNamespace], ns.name), name}, via: via,
		labels: map[string]string{LabelUseWaypoint: name}}
	if v, ok := lbls[LabelUseWaypointNamespace]; ok {
		b.labels[LabelUseWaypointNamespace] = v
	}
	gw := idx.wp.gateways[b.ref]
	if gw == nil {
		b.state = missing
		return b
	}
	b.gw = gw
	switch kind := waypointFor(gw); {
	case kind == waypointForAll, workload && kind == waypointForWorkload, !workload && kind == waypointForService:
	case !explicit:
		return nil // Istio binds nothing, and says nothing
	default:
		b.state = wrongKind
		return b
	}
	switch {
	case !attaches(gw, ns):
		b.state = denied
	case !gw.Addressed:
		b.state = notAddressed
	}
	return b
}

// waypointFor is the traffic a waypoint serves.
func waypointFor(gw *Gateway) string {
	return cmp.Or(gw.Labels[LabelWaypointFor], waypointForService)
}

// attaches says whether the waypoint admits Services and pods of ns.
func attaches(gw *Gateway, ns *nsInfo) bool {
	switch {
	case gw.Namespace == ns.name || gw.AttachFrom == attachAll:
		return true
	case gw.AttachFrom == attachSelector && gw.AttachSelector != nil:
		sel, err := metav1.LabelSelectorAsSelector(gw.AttachSelector)
		return err == nil && sel.Matches(ns.labels)
	}
	return false
}

// waypointAccounts are the ServiceAccounts a waypoint runs as: its
// annotation's (else its name), and those of its pods in the snapshot;
// pods are its counted pods.
func (idx *index) waypointAccounts(gw *Gateway) (sas []string, pods []*podInfo) {
	sas = []string{cmp.Or(gw.Annotations[AnnotationWaypointAccount], gw.Name)}
	if ns := idx.namespaces[gw.Namespace]; ns != nil {
		for _, p := range ns.byLabel[labelKey(LabelGatewayName, gw.Name)] {
			sas = append(sas, p.sa)
			pods = append(pods, p)
		}
	}
	slices.Sort(sas)
	return slices.Compact(sas), pods
}

// wpUse is one waypoint as the pods of a NetworkPolicy use it.
type wpUse struct {
	ref      waypointRef
	gw       *Gateway
	state    bindState
	services []*svcInfo // Services of the selected pods bound to it
	svcPods  []*podInfo // selected pods behind those Services
	pods     []*podInfo // selected pods bound to it for pod-IP traffic
	// via are the objects whose labels name it, with those labels.
	via []IdentitySource
}

func (u *wpUse) addVia(b *binding) {
	if !slices.ContainsFunc(u.via, func(s IdentitySource) bool { return s.Ref == b.via }) {
		u.via = append(u.via, IdentitySource{Ref: b.via, Labels: maps.Clone(b.labels)})
	}
}

// allPods are the selected pods whose traffic passes u, by name.
func (u *wpUse) allPods() []*podInfo {
	out := append(slices.Clone(u.svcPods), u.pods...)
	slices.SortFunc(out, func(a, b *podInfo) int { return cmp.Compare(a.pod.Name, b.pod.Name) })
	return slices.Compact(out)
}

func (u *wpUse) viaText(home string) string {
	var parts []string
	for _, s := range u.via {
		parts = append(parts, strings.ToLower(s.Ref.Kind)+" "+relName(home, s.Ref)+" {"+setString(s.Labels)+"}")
	}
	return nameList(parts)
}

func relName(home string, r ObjectRef) string {
	if r.Namespace == "" || r.Namespace == home {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

func gatewayRef(r waypointRef) ObjectRef {
	return ObjectRef{Kind: kindGateway, Namespace: r.ns, Name: r.name}
}

// waypointPlan is what the waypoints of one NetworkPolicy's pods add.
type waypointPlan struct {
	uses []*wpUse // by waypoint
	// services are the Services bound (or about to be) to a waypoint, by
	// name, with their waypoint.
	services []*svcInfo
	svcUse   map[*svcInfo]*wpUse
	// leftOut are the bound waypoints whose principal strict left out at
	// ztunnel (admitWaypoints), for the admin rules' own check.
	leftOut []leftOutWaypoint
}

// leftOutWaypoint is a waypoint strict does not admit at ztunnel: its
// principals and its pods.
type leftOutWaypoint struct {
	u          *wpUse
	principals []string
	pods       []*podInfo
}

// planWaypoints finds the waypoints the selected ambient pods use, and
// reports the labels that name one without effect. nil when none.
func (c *tctx) planWaypoints(selected []*podInfo) *waypointPlan {
	// Without a Gateway, only labels naming one are worth a finding.
	if len(c.idx.wp.gateways) == 0 && !c.idx.wp.labelled[c.ns.name] && !hasWaypointLabels(c.ns, selected) {
		return nil
	}
	plan := &waypointPlan{svcUse: map[*svcInfo]*wpUse{}}
	byRef := map[waypointRef]*wpUse{}
	use := func(b *binding) *wpUse {
		u := byRef[b.ref]
		if u == nil {
			u = &wpUse{ref: b.ref, gw: b.gw, state: b.state}
			byRef[b.ref] = u
		}
		u.addVia(b)
		return u
	}
	type idle struct {
		b    *binding
		what string
		pods []*podInfo
	}
	var idles []*idle
	idleOf := map[string]*idle{}
	addIdle := func(b *binding, what string, p *podInfo) {
		key := b.via.Kind + "/" + b.via.Namespace + "/" + b.via.Name + "|" + what
		if idleOf[key] == nil {
			idleOf[key] = &idle{b: b, what: what}
			idles = append(idles, idleOf[key])
		}
		idleOf[key].pods = append(idleOf[key].pods, p)
	}
	for _, d := range selected {
		if !d.inMesh || d.pod.Sidecar || !d.ns.ambient {
			continue
		}
		for _, s := range c.idx.servicesOf(d) {
			b := c.idx.serviceBinding(s)
			switch {
			case b == nil:
			case b.state == bound || b.state == notAddressed:
				u := use(b)
				if plan.svcUse[s] == nil {
					plan.svcUse[s] = u
					plan.services = append(plan.services, s)
					u.services = append(u.services, s)
				}
				if !slices.Contains(u.svcPods, d) {
					u.svcPods = append(u.svcPods, d)
				}
			default:
				addIdle(b, "traffic to Service "+s.svc.Name, d)
			}
		}
		switch b := c.idx.podBinding(d); {
		case b == nil:
		case b.state == bound || b.state == notAddressed:
			u := use(b)
			u.pods = append(u.pods, d)
		default:
			addIdle(b, "traffic to pod IPs", d)
		}
	}
	for _, x := range idles {
		c.idleWaypoint(x.b, x.what, x.pods)
	}
	if len(byRef) == 0 {
		return nil
	}
	for _, ref := range slices.SortedFunc(maps.Keys(byRef), func(a, b waypointRef) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name))
	}) {
		plan.uses = append(plan.uses, byRef[ref])
	}
	slices.SortFunc(plan.services, func(a, b *svcInfo) int { return cmp.Compare(a.svc.Name, b.svc.Name) })
	return plan
}

// hasWaypointLabels says whether the namespace or a selected pod names a
// waypoint, which is worth a finding even without Services or Gateways.
func hasWaypointLabels(ns *nsInfo, pods []*podInfo) bool {
	if _, ok := ns.labels[LabelUseWaypoint]; ok {
		return true
	}
	for _, p := range pods {
		if _, ok := p.pod.Labels[LabelUseWaypoint]; ok {
			return true
		}
	}
	return false
}

// idleWaypoint reports a waypoint label Istio does not act on: traffic
// goes straight to the pods, which the translation already covers.
func (c *tctx) idleWaypoint(b *binding, what string, pods []*podInfo) {
	var why string
	switch b.state {
	case missing:
		why = fmt.Sprintf("no Gateway %s exists, so Istio uses no waypoint", b.ref)
	case wrongKind:
		why = fmt.Sprintf("waypoint %s serves %s traffic only (%s), so Istio does not use it for this", b.ref, waypointFor(b.gw), LabelWaypointFor)
		if waypointFor(b.gw) == waypointNone {
			why = fmt.Sprintf("waypoint %s serves no traffic (%s=%s), so Istio does not use it", b.ref, LabelWaypointFor, waypointNone)
		}
	default:
		why = fmt.Sprintf("waypoint %s does not admit namespace %s (allowedRoutes of its HBONE listener), so Istio does not use it", b.ref, c.ns.name)
	}
	msg := fmt.Sprintf("%s %s {%s} names waypoint %s for %s (%s %s), but %s: that traffic goes straight to the pods' ztunnel, which the generated policies cover; nothing was generated for the waypoint, and the translation follows when it takes effect",
		strings.ToLower(b.via.Kind), relName(c.ns.name, b.via), setString(b.labels), b.ref, what, plural(len(pods), "pod", "pods"), podNames(c.ns.name, pods), why)
	c.f.add(WaypointApplies, msg, append([]ObjectRef{b.via, gatewayRef(b.ref), npRef(c.np.Namespace, c.np.Name)}, podRefs(pods)...)...)
}

// admitWaypoints decides, per waypoint, whether its principal joins the
// rules with a `from` of the selector-bound policies, and reports why
// where that is not exact. It returns the source to add, nil for none.
func (c *tctx) admitWaypoints(plan *waypointPlan, cp *compiledPolicy, froms []*resolvedFrom, kept []int) *sourceSpec {
	self := npRef(c.np.Namespace, c.np.Name)
	var principals []string
	for _, u := range plan.uses {
		sas, wpPods := c.idx.waypointAccounts(u.gw)
		var principalsOf []string
		for _, sa := range sas {
			principalsOf = append(principalsOf, c.idx.principal(u.ref.ns, sa))
		}
		refs := append([]ObjectRef{gatewayRef(u.ref), self}, podRefs(u.allPods())...)
		for _, s := range u.services {
			refs = append(refs, s.ref())
		}
		for _, v := range u.via {
			refs = append(refs, v.Ref)
		}
		// The reasons the waypoint's principal may let through more than
		// the NetworkPolicy allows.
		var risks []string
		if len(u.pods) > 0 {
			risks = append(risks, fmt.Sprintf("it checks the traffic to pod IPs (%s=%s) only against AuthorizationPolicies bound to its Gateway, and netpol2authz writes none (there, a policy cannot tell the pods apart: istio/istio#56505)",
				LabelWaypointFor, waypointFor(u.gw)))
		}
		if u.gw.ClassName != WaypointClass {
			risks = append(risks, fmt.Sprintf("its class is %q, not %s, so the Service-bound policies may not be enforced there", u.gw.ClassName, WaypointClass))
		}
		if u.gw.AttachFrom == attachAll || u.gw.AttachFrom == attachSelector {
			risks = append(risks, fmt.Sprintf("it admits Services of other namespaces (allowedRoutes from %s), and a Service without selector there may send it traffic for these pods under no policy of netpol2authz", u.gw.AttachFrom))
		}
		if sel := c.selectorless(u); len(sel) > 0 {
			risks = append(risks, fmt.Sprintf("Services without selector (%s) use it too, whose traffic may reach these pods under no policy of netpol2authz", nameList(sel)))
		}
		if shared := c.sharingWaypointAccount(u.ref, sas); len(shared) > 0 {
			risks = append(risks, fmt.Sprintf("pods that are not the waypoint run as its ServiceAccount (%s) and present its identity", podNames(c.ns.name, shared)))
			refs = append(refs, podRefs(shared)...)
		}
		admit := c.fidelity == FidelityPermissive || (len(risks) == 0 && u.state == bound)
		allowed := ""
		if admit {
			var ok, held []string
			for _, sa := range sas {
				if c.review.admit(ServiceAccountIdentity(u.ref.ns, sa), waypointPeer, func() []IdentitySource { return slices.Clone(u.via) }) {
					ok = append(ok, c.idx.principal(u.ref.ns, sa))
				} else {
					held = append(held, c.idx.principal(u.ref.ns, sa))
				}
			}
			principals = append(principals, ok...)
			allowed = allowedText(ok, held)
		}
		what := c.waypointWhat(u)
		blocked := c.waypointPodsBlocked(cp, wpPods)
		if blocked != "" {
			c.f.add(AmbientPortBlocked, fmt.Sprintf("traffic through waypoint %s arrives at the pods of NetworkPolicy %s from the waypoint's pods on TCP %d, but no rule of it admits %s there, so the network plugin blocks it; add a rule allowing the waypoint's pods on TCP %d",
				u.ref, c.np.Name, hbonePort, blocked, hbonePort), append([]ObjectRef{gatewayRef(u.ref), self}, podRefs(wpPods)...)...)
		}
		switch {
		case admit && len(risks) > 0:
			c.f.add(WaypointInPath, fmt.Sprintf("%s; %s, but %s; permissive: kept, so clients the waypoint lets through may reach the pods beyond what the NetworkPolicy allows; %s",
				what, allowed, strings.Join(risks, "; and "), waypointFix(u)), refs...)
		case admit && u.state == notAddressed:
			c.f.add(WaypointApplies, fmt.Sprintf("%s; it has no address yet (status.addresses), so istiod does not use it and traffic goes straight to the pods; ahead of that, the policies bound to the Services are in place and %s", what, allowed), refs...)
		case admit:
			c.f.add(WaypointApplies, fmt.Sprintf("%s; %s", what, allowed), refs...)
		case u.state == notAddressed && len(risks) == 0:
			c.f.add(WaypointApplies, fmt.Sprintf("%s; it has no address yet (status.addresses), so istiod does not use it and traffic goes straight to the pods; strict: its principal %s is allowed at the pods' ztunnel only once it has one (until the next translation, traffic through it is denied)", what, nameList(principalsOf)), refs...)
		default:
			c.f.add(WaypointInPath, fmt.Sprintf("%s, but %s; strict: its principal %s is not allowed at the pods' ztunnel, so traffic through the waypoint to %s is denied; %s",
				what, strings.Join(risks, "; and "), nameList(principalsOf), podNames(c.ns.name, u.allPods()), waypointFix(u)), refs...)
			c.accidentalWaypoint(u, principalsOf, wpPods, cp, froms, kept)
			if u.state == bound {
				plan.leftOut = append(plan.leftOut, leftOutWaypoint{u, principalsOf, wpPods})
			}
		}
	}
	if len(principals) == 0 {
		return nil
	}
	slices.Sort(principals)
	return &sourceSpec{principals: slices.Compact(principals)}
}

// allowedText says what became of a waypoint's principals at ztunnel:
// allowed, or held back by identity review.
func allowedText(ok, held []string) string {
	var parts []string
	if len(ok) > 0 {
		parts = append(parts, fmt.Sprintf("its principal %s is allowed at the pods' ztunnel on the NetworkPolicy's ports, where the waypoint is the peer", nameList(ok)))
	}
	if len(held) > 0 {
		parts = append(parts, fmt.Sprintf("its principal %s is pending review (IdentityPending) and left out at the pods' ztunnel, so traffic through the waypoint is denied there until it is approved", nameList(held)))
	}
	return strings.Join(parts, "; ")
}

// waypointWhat says which traffic of the NetworkPolicy's pods passes u.
func (c *tctx) waypointWhat(u *wpUse) string {
	var parts []string
	if len(u.services) > 0 {
		var names, policies []string
		for _, s := range u.services {
			names = append(names, s.svc.Name)
			policies = append(policies, servicePolicyName(c.np.Name, s.svc.Name))
		}
		parts = append(parts, fmt.Sprintf("traffic to %s %s (%s %s) passes waypoint %s, which checks the clients' identities against %s %s bound to %s",
			plural(len(names), "Service", "Services"), nameList(names), plural(len(u.svcPods), "pod", "pods"), podNames(c.ns.name, u.svcPods),
			u.ref, plural(len(policies), "AuthorizationPolicy", "AuthorizationPolicies"), nameList(policies), plural(len(names), "it", "them")))
	}
	if len(u.pods) > 0 {
		parts = append(parts, fmt.Sprintf("traffic to the pod IPs of %s passes waypoint %s", podNames(c.ns.name, u.pods), u.ref))
	}
	return strings.Join(parts, ", and ") + " (" + u.viaText(c.ns.name) + ")"
}

func waypointFix(u *wpUse) string {
	if len(u.pods) > 0 {
		return fmt.Sprintf("use the waypoint for Services only (%s=%s on Gateway %s) or add AuthorizationPolicies bound to the Gateway", LabelWaypointFor, waypointForService, u.ref)
	}
	return fmt.Sprintf("give these Services a waypoint of their own (class %s, allowedRoutes from Same) that nothing else uses", WaypointClass)
}

// selectorless are the Services of the namespace without selector that
// use waypoint u.
func (c *tctx) selectorless(u *wpUse) []string {
	var out []string
	for _, s := range c.idx.wp.services[c.ns.name] {
		if s.sel != nil {
			continue
		}
		if b := c.idx.serviceBinding(s); b != nil && b.ref == u.ref && (b.state == bound || b.state == notAddressed) {
			out = append(out, s.svc.Name)
		}
	}
	return out
}

// sharingWaypointAccount are the counted pods of the waypoint's namespace
// that run as one of its ServiceAccounts but are not its pods.
func (c *tctx) sharingWaypointAccount(ref waypointRef, sas []string) []*podInfo {
	ns := c.idx.namespaces[ref.ns]
	if ns == nil {
		return nil
	}
	var out []*podInfo
	for _, sa := range sas {
		for _, p := range ns.bySA[sa] {
			if p.labels[LabelGatewayName] != ref.name {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b *podInfo) int { return cmp.Compare(a.pod.Name, b.pod.Name) })
	return slices.Compact(out)
}

// waypointPodsBlocked names the waypoint pods that no rule of the
// NetworkPolicy admits on the HBONE port; "" when every one is admitted
// (or none is known).
func (c *tctx) waypointPodsBlocked(cp *compiledPolicy, pods []*podInfo) string {
	var blocked []*podInfo
	for _, p := range pods {
		if !slices.ContainsFunc(cp.rules, func(r compiledRule) bool { return allowsHBONE(&r) && c.ruleAdmitsPod(&r, p) }) {
			blocked = append(blocked, p)
		}
	}
	if len(blocked) == 0 {
		return ""
	}
	return podNames(c.ns.name, blocked)
}

// ruleAdmitsPod says whether a rule's peers select pod p as the network
// plugin sees it.
func (c *tctx) ruleAdmitsPod(r *compiledRule, p *podInfo) bool {
	if len(r.peers) == 0 {
		return true
	}
	for i := range r.peers {
		peer := &r.peers[i]
		switch peer.kind {
		case peerIPBlock:
			if inBlock(p.addr, peer.cidr, peer.except) {
				return true
			}
		case peerOwnNamespace:
			if p.ns == c.ns {
				return true
			}
		default:
			nsOK := p.ns == c.ns
			if peer.nsSel != nil {
				nsOK = peer.nsSel.sel.Matches(p.ns.labels)
			}
			if nsOK && (peer.kind == peerNamespaces || peer.podSel.sel.Matches(p.labels)) {
				return true
			}
		}
	}
	return false
}

func inBlock(addr netip.Addr, cidr string, except []string) bool {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !addr.IsValid() || !p.Masked().Contains(addr) {
		return false
	}
	for _, e := range except {
		if ex, err := netip.ParsePrefix(e); err == nil && ex.Masked().Contains(addr) {
			return false
		}
	}
	return true
}

// accidentalWaypoint reports, in strict, the sources of the selector-bound
// rules that admit a waypoint whose principal was left out: through it,
// clients the NetworkPolicy denies reach the pods, and the fields Istio
// enforces at ztunnel for both sidecars and ztunnel (the contract's L4
// fields) cannot exclude it.
func (c *tctx) accidentalWaypoint(u *wpUse, principals []string, wpPods []*podInfo, cp *compiledPolicy, froms []*resolvedFrom, kept []int) {
	if u.state != bound {
		return
	}
	var paths []string
	for _, i := range kept {
		if slices.ContainsFunc(froms[i].sources, func(s sourceSpec) bool {
			return admitsWaypoint(u, principals, wpPods, s.namespaces, s.principals, s.ipBlocks, s.notIPBlocks)
		}) {
			paths = append(paths, cp.rules[i].path)
		}
	}
	if len(paths) == 0 {
		return
	}
	c.f.add(WaypointInPath, fmt.Sprintf("strict cannot keep its promise for waypoint %s: %s of NetworkPolicy %s %s the waypoint's own identity or address (its namespace %s, its principal or its pod IPs), so the pods' ztunnel admits whatever the waypoint forwards, from clients the NetworkPolicy denies; an L4 field that excludes it (notPrincipals) is outside what netpol2authz emits; narrow the peer, or stop the waypoint from serving these pods",
		u.ref, nameList(paths), c.np.Name, plural(len(paths), "admits", "admit"), u.ref.ns), append([]ObjectRef{gatewayRef(u.ref), npRef(c.np.Namespace, c.np.Name)}, podRefs(u.allPods())...)...)
}

// admitsWaypoint says whether a source admits waypoint u's own identity or
// address: its namespace (or every namespace), one of its principals, or
// an ipBlock holding one of its pods' IPs.
func admitsWaypoint(u *wpUse, principals []string, wpPods []*podInfo, namespaces, sourcePrincipals, ipBlocks, notIPBlocks []string) bool {
	if slices.Contains(namespaces, u.ref.ns) || slices.Contains(namespaces, "*") {
		return true
	}
	for _, p := range principals {
		if slices.Contains(sourcePrincipals, p) {
			return true
		}
	}
	for _, b := range ipBlocks {
		for _, wp := range wpPods {
			if inBlock(wp.addr, b, notIPBlocks) {
				return true
			}
		}
	}
	return false
}

// servicePolicyName names the policy bound to Service svc.
func servicePolicyName(np, svc string) string {
	return shorten(namePrefix+np+"-svc-"+svc, maxNameLength)
}
