package translate

import (
	"fmt"
	"slices"
	"strconv"

	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// servicePolicies builds, for each Service of the plan, the policy bound
// to it at its waypoint: the NetworkPolicy's rules with the same sources
// (the waypoint sees the client's identity and address) and their ports
// as the Service's ports (the waypoint sees the port the client sent to).
//
// A waypoint checks a Service's traffic before choosing an endpoint, so a
// policy bound to the Service applies to every endpoint of it. Where the
// Service also fronts pods the NetworkPolicy does not select, permissive
// binds the rules anyway (those pods accept the NetworkPolicy's sources
// through the Service), or allows everything where one of them is isolated
// by no NetworkPolicy (it accepts everything); strict binds the rules only
// where those pods are isolated by none (they lose what the Service no
// longer lets through), and otherwise binds no rule. Every one of these is
// reported. Where all of them are isolated and no generated policy lets
// the waypoint in at them on a port the Service reaches (serviceShut), the
// rules are bound as if the Service fronted the selected pods alone: what
// it passes to those pods is denied at their ztunnel.
func (c *tctx) servicePolicies(plan *waypointPlan, cp *compiledPolicy, froms []*resolvedFrom, kept []int, rps []*rulePorts, selected []*podInfo) []*securityv1.AuthorizationPolicy {
	isSelected := make(map[*podInfo]bool, len(selected))
	for _, p := range selected {
		isSelected[p] = true
	}
	self := npRef(c.np.Namespace, c.np.Name)
	out := make([]*securityv1.AuthorizationPolicy, 0, len(plan.services))
	for _, s := range plan.services {
		u := plan.svcUse[s]
		name := servicePolicyName(c.np.Name, s.svc.Name)
		var own, outside, open []*podInfo
		for _, e := range s.endpoints() {
			switch {
			case isSelected[e]:
				own = append(own, e)
			case !c.idx.isolated(e):
				open = append(open, e)
				outside = append(outside, e)
			default:
				outside = append(outside, e)
			}
		}
		refs := append([]ObjectRef{s.ref(), gatewayRef(u.ref), self}, podRefs(outside)...)
		also := fmt.Sprintf("Service %s also fronts %s %s, which NetworkPolicy %s does not select, and its waypoint %s checks the Service's traffic before it picks a pod",
			s.svc.Name, plural(len(outside), "pod", "pods"), podNames(c.ns.name, outside), c.np.Name, u.ref)
		var rules []*secv1beta1.Rule
		switch {
		case len(outside) == 0 || (len(open) == 0 && c.serviceShut(s, outside)):
			// No other pod, or none the waypoint is let in at on a port
			// the Service reaches there: what it passes them is denied
			// at their ztunnel.
			rules = c.serviceRules(s, u, own, cp, froms, kept, rps)
		case c.fidelity == FidelityPermissive && len(open) > 0:
			rules = []*secv1beta1.Rule{{}}
			c.f.add(WaypointInPath, fmt.Sprintf("%s; no NetworkPolicy isolates %s, so %s everything; permissive: AuthorizationPolicy %s allows any source through the Service, so %s also %s any client through it on the NetworkPolicy's ports; give the Service's pods one set of NetworkPolicies, or split the Service",
				also, podNames(c.ns.name, open), pick(len(open) == 1, "it accepts", "they accept"), name, podNames(c.ns.name, own), pick(len(own) == 1, "accepts", "accept")), refs...)
		case c.fidelity == FidelityPermissive:
			rules = c.serviceRules(s, u, own, cp, froms, kept, rps)
			c.f.add(WaypointInPath, fmt.Sprintf("%s; permissive: AuthorizationPolicy %s applies this NetworkPolicy's rules to the whole Service, so those pods also accept its sources through the Service; give the Service's pods one set of NetworkPolicies, or split the Service",
				also, name), refs...)
		case len(open) == len(outside):
			rules = c.serviceRules(s, u, own, cp, froms, kept, rps)
			c.f.add(WaypointInPath, fmt.Sprintf("%s; no NetworkPolicy isolates those pods, so they accept everything; strict: AuthorizationPolicy %s applies this NetworkPolicy's rules to the whole Service, so they accept through the Service only its sources; give the Service's pods one set of NetworkPolicies, or split the Service",
				also, name), refs...)
		default:
			c.f.add(WaypointInPath, fmt.Sprintf("%s, which other NetworkPolicies isolate; strict: AuthorizationPolicy %s binds no rule to the Service (it may not open those pods to this NetworkPolicy's sources), so %s %s nothing through it; give the Service's pods one set of NetworkPolicies, or split the Service",
				also, name, podNames(c.ns.name, own), pick(len(own) == 1, "accepts", "accept")), append(refs, podRefs(own)...)...)
		}
		ap := c.newPolicy(&targetGroup{name: name}, rules)
		ap.Spec.Selector = nil
		ap.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Group: serviceGroup, Kind: kindService, Name: s.svc.Name}}
		out = append(out, ap)
	}
	return out
}

// serviceRules are the NetworkPolicy's kept rules at Service s: the same
// sources, the ports as service ports. A rule left without a port is
// dropped: it opens nothing through this Service.
func (c *tctx) serviceRules(s *svcInfo, u *wpUse, pods []*podInfo, cp *compiledPolicy, froms []*resolvedFrom, kept []int, rps []*rulePorts) []*secv1beta1.Rule {
	var rules []*secv1beta1.Rule
	for _, i := range kept {
		var ports []string
		if rps[i].limited() {
			ports = c.servicePorts(s, u, pods, &cp.rules[i], rps[i])
			if len(ports) == 0 {
				continue
			}
		}
		var sources []sourceSpec
		if !froms[i].anySource {
			sources = froms[i].sources
		}
		rules = append(rules, newRule(sources, ports))
	}
	return rules
}

// servicePorts are the TCP ports of Service s whose target port a rule
// allows on the pods behind it. A port that reaches some pods on a port
// the rule allows and others on one it does not (a named targetPort, or a
// named port of the rule, with a number per pod) is kept in permissive
// and left out in strict, reported.
func (c *tctx) servicePorts(s *svcInfo, u *wpUse, pods []*podInfo, r *compiledRule, rp *rulePorts) []string {
	var ports []string
	for _, sp := range s.svc.Ports {
		if !sp.TCP() {
			continue
		}
		yes, no := c.servicePortReach(sp, pods, rp.allows)
		switch {
		case len(yes) == 0:
			continue
		case len(no) == 0:
			ports = append(ports, strconv.Itoa(int(sp.Port)))
			continue
		}
		msg := fmt.Sprintf("port %d of Service %s reaches a port %s allows on %s but not on %s (a named port with a number per pod), and waypoint %s checks the Service's port before it picks a pod",
			sp.Port, s.svc.Name, r.path, podNames(c.ns.name, yes), podNames(c.ns.name, no), u.ref)
		refs := append([]ObjectRef{s.ref(), gatewayRef(u.ref), npRef(c.np.Namespace, c.np.Name)}, podRefs(append(slices.Clone(yes), no...))...)
		if c.fidelity == FidelityPermissive {
			ports = append(ports, strconv.Itoa(int(sp.Port)))
			c.f.add(WaypointInPath, msg+fmt.Sprintf("; permissive: AuthorizationPolicy %s allows it, so %s also %s it through the Service; give the pods one number per port name", servicePolicyName(c.np.Name, s.svc.Name), podNames(c.ns.name, no), pick(len(no) == 1, "accepts", "accept")), refs...)
			continue
		}
		c.f.add(WaypointInPath, msg+fmt.Sprintf("; strict: AuthorizationPolicy %s leaves it out, so %s %s it through the Service; give the pods one number per port name", servicePolicyName(c.np.Name, s.svc.Name), podNames(c.ns.name, yes), pick(len(yes) == 1, "loses", "lose")), refs...)
	}
	slices.SortFunc(ports, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return slices.Compact(ports)
}

// servicePortReach splits pods by whether service port sp reaches, on
// each, a target port that matches: yes, or no. A pod where sp reaches no
// container is in neither, and so are the no pods when the waypoint is let
// in on none of the ports sp reaches there (waypointShut): a rule bound to
// sp then lets nothing more through to them.
func (c *tctx) servicePortReach(sp ServicePort, pods []*podInfo, matches func(p *podInfo, t int32) bool) (yes, no []*podInfo) {
	for _, p := range pods {
		targets := targetNumbers(sp, p)
		if len(targets) == 0 {
			continue // the port reaches no container of this pod
		}
		if slices.ContainsFunc(targets, func(t int32) bool { return matches(p, t) }) {
			yes = append(yes, p)
		} else {
			no = append(no, p)
		}
	}
	if len(no) > 0 && c.waypointShut(sp, no) {
		no = nil
	}
	return yes, no
}

// serviceShut says whether every TCP port of Service s reaches, on every
// pod of pods, only target ports where no generated policy lets a
// waypoint in (waypointShut).
func (c *tctx) serviceShut(s *svcInfo, pods []*podInfo) bool {
	for _, sp := range s.svc.Ports {
		if sp.TCP() && !c.waypointShut(sp, pods) {
			return false
		}
	}
	return true
}

// waypointShut says whether service port sp reaches, on every pod of
// pods, only target ports where no generated policy lets a waypoint in at
// the pod's ztunnel (waypointReaches): traffic the waypoint lets through
// on sp is denied there.
func (c *tctx) waypointShut(sp ServicePort, pods []*podInfo) bool {
	for _, p := range pods {
		for _, t := range targetNumbers(sp, p) {
			if c.idx.waypointReaches(p, t) {
				return false
			}
		}
	}
	return true
}

// targetNumbers are the container port numbers a service port reaches on
// pod p: its targetPort number (its port when unset), or the pod's TCP
// container ports of that name.
func targetNumbers(sp ServicePort, p *podInfo) []int32 {
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		return portNumbers(p, sp.TargetPort.StrVal)
	case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
		return []int32{sp.TargetPort.IntVal}
	}
	return []int32{sp.Port}
}

// allows says whether the rule's TCP ports include q on pod p.
func (rp *rulePorts) allows(p *podInfo, q int32) bool {
	if !rp.limited() {
		return true
	}
	if slices.Contains(rp.nums, q) {
		return true
	}
	for _, n := range rp.named {
		if slices.Contains(portNumbers(p, n.name), q) {
			return true
		}
	}
	return false
}
