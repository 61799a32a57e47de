package translate

import (
	"fmt"
	"slices"
	"strconv"

	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// Admin rules behind a waypoint. Where a Service's traffic passes a
// waypoint, the pods' ztunnel sees the waypoint's identity, so the
// selector-bound policies of the admin rules cannot tell its clients
// apart: an Allow would deny them (permissive would narrow), a Deny would
// let them through (strict would widen). The admin rules are therefore
// also bound to each such Service, as the NetworkPolicy's own rules are
// (servicePolicies), with the client's identity and the service ports:
//
//   - an Allow rule as an ALLOW policy bound to the Service; its
//     selector-bound policy admits the waypoint's principal (admin);
//   - a Deny rule (strict) as a DENY policy bound to the Service.
//
// A policy bound to a Service applies to all of its endpoints, and a
// service port reaches a target port per pod. Where the Service also
// fronts pods the admin policy does not select, or a port matches on some
// pods only: an Allow is bound in permissive and left out in strict, a
// Deny is bound (strict errs on denying); each is reported
// WaypointInPath.

// adminServices binds the admin-tier rules of rels to the Services of the
// waypoint plan.
func (c *tctx) adminServices(plan *waypointPlan, rels []relevantAdmin) []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, s := range plan.services {
		u := plan.svcUse[s]
		endpoints := s.endpoints()
		var higher []adminRuleAt
		// Every admin policy over the Service's pods orders the rules
		// there; only those over the NetworkPolicy's pods are bound by it
		// (the others by the NetworkPolicies of their pods).
		for _, pol := range c.idx.admin.policies {
			if pol.Tier != adminpolicy.TierAdmin || len(pol.Ingress) == 0 {
				continue
			}
			subj := map[*podInfo]bool{}
			var outside []*podInfo
			for _, e := range endpoints {
				if pol.Selects(e.ns.labels, e.labels) {
					subj[e] = true
				} else {
					outside = append(outside, e)
				}
			}
			if len(subj) == 0 {
				continue
			}
			bind := slices.ContainsFunc(rels, func(rel relevantAdmin) bool { return rel.pol == pol })
			g := &targetGroup{pods: inOrder(endpoints, subj)}
			var allow, deny []*secv1beta1.Rule
			for ri := range pol.Ingress {
				r := &pol.Ingress[ri]
				at := adminRuleAt{pol: pol, rule: r, subj: subj, ports: c.adminPortRanges(r, subj)}
				if !bind {
					higher = append(higher, at)
					continue
				}
				// The rule's sources and precedence are judged, and
				// reported, for the pods' selector-bound policies (by the
				// NetworkPolicies of the Service's other pods for theirs);
				// here only what the Service adds is reported.
				saved := c.f
				var rule *secv1beta1.Rule
				switch r.Action {
				case adminpolicy.ActionAllow:
					rule = c.adminAllow(g, &at, higher)
				case adminpolicy.ActionDeny:
					rule = c.adminDeny(g, &at, higher)
				}
				c.f = saved
				higher = append(higher, at)
				if rule == nil {
					continue
				}
				isDeny := r.Action == adminpolicy.ActionDeny
				ports, keep := c.adminServicePorts(s, u, &at, g.pods, isDeny)
				if !keep {
					continue
				}
				sr := &secv1beta1.Rule{From: rule.From}
				if len(ports) > 0 {
					sr.To = []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{Ports: ports}}}
				}
				if isDeny {
					deny = append(deny, sr)
				} else {
					allow = append(allow, sr)
				}
			}
			if ap := c.adminServicePolicy(s, u, pol, g.pods, outside, secv1beta1.AuthorizationPolicy_ALLOW, allow); ap != nil {
				out = append(out, ap)
			}
			if ap := c.adminServicePolicy(s, u, pol, g.pods, outside, secv1beta1.AuthorizationPolicy_DENY, deny); ap != nil {
				out = append(out, ap)
			}
		}
	}
	return out
}

// adminServicePolicy builds the policy of one admin policy's rules bound
// to Service s, and reports it; nil without rules, or for an Allow that
// strict may not bind because s also fronts pods outside the admin
// policy's subject.
func (c *tctx) adminServicePolicy(s *svcInfo, u *wpUse, pol *adminpolicy.Compiled, subj, outside []*podInfo, action secv1beta1.AuthorizationPolicy_Action, rules []*secv1beta1.Rule) *securityv1.AuthorizationPolicy {
	if len(rules) == 0 {
		return nil
	}
	deny := action == secv1beta1.AuthorizationPolicy_DENY
	name := policyName(c.np.Name, "admin-service|"+string(pol.Kind)+"/"+pol.Name+"|"+action.String()+"|"+s.svc.Name)
	kind := pick(deny, "Deny", "Allow")
	refs := append([]ObjectRef{adminRef(pol), s.ref(), gatewayRef(u.ref), npRef(c.np.Namespace, c.np.Name)}, podRefs(append(slices.Clone(subj), outside...))...)
	what := fmt.Sprintf("traffic to Service %s passes waypoint %s, where the client's identity is seen and the pods' ztunnel sees the waypoint's", s.svc.Name, u.ref)
	if len(outside) > 0 {
		also := fmt.Sprintf("%s; Service %s also fronts %s %s, which %s does not select, and the waypoint checks the Service's traffic before it picks a pod",
			what, s.svc.Name, plural(len(outside), "pod", "pods"), podNames(c.ns.name, outside), pol.Ref())
		switch {
		case deny:
			c.f.add(WaypointInPath, fmt.Sprintf("%s; strict: the %s rules of %s are bound to the Service as DENY policy %s, so %s also lose that traffic through the Service; give the Service's pods one admin subject, or split the Service",
				also, kind, pol.Ref(), name, podNames(c.ns.name, outside)), refs...)
		case c.fidelity == FidelityPermissive:
			c.f.add(WaypointInPath, fmt.Sprintf("%s; permissive: the %s rules of %s are bound to the Service as AuthorizationPolicy %s, so %s also accept their sources through the Service; give the Service's pods one admin subject, or split the Service",
				also, kind, pol.Ref(), name, podNames(c.ns.name, outside)), refs...)
		default:
			c.f.add(WaypointInPath, fmt.Sprintf("%s; strict: the %s rules of %s are not bound to the Service, so %s accept through the Service only what the NetworkPolicies allow; give the Service's pods one admin subject, or split the Service",
				also, kind, pol.Ref(), podNames(c.ns.name, subj)), refs...)
			return nil
		}
	} else {
		c.f.add(WaypointApplies, fmt.Sprintf("%s: the %s rules of %s are also bound to the Service there, as %s policy %s", what, kind, pol.Ref(), action, name), refs...)
	}
	ap := c.newPolicy(&targetGroup{name: name}, rules)
	ap.Spec.Selector = nil
	ap.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Group: serviceGroup, Kind: kindService, Name: s.svc.Name}}
	ap.Spec.Action = action
	labelAdmin(ap, pol)
	return ap
}

// adminServicePorts renders the ports of an admin rule at Service s: the
// TCP service ports whose target port the rule matches on the subject
// pods; nil with keep for every port, keep false for none. A port that
// matches on some pods only (a named port with a number per pod) is kept
// by a Deny and a permissive Allow, left out by a strict Allow, reported.
func (c *tctx) adminServicePorts(s *svcInfo, u *wpUse, at *adminRuleAt, subj []*podInfo, deny bool) (ports []string, keep bool) {
	r := at.rule
	if r.Ports == nil {
		return nil, true
	}
	ref := r.Ref(at.pol)
	for _, sp := range s.svc.Ports {
		if !sp.TCP() {
			continue
		}
		yes, no := c.servicePortReach(sp, subj, func(p *podInfo, t int32) bool {
			return r.MatchesPort(t, func(name string) []int32 { return portNumbers(p, name) })
		})
		switch {
		case len(yes) == 0:
			continue
		case len(no) == 0:
			ports = append(ports, strconv.Itoa(int(sp.Port)))
			continue
		}
		msg := fmt.Sprintf("port %d of Service %s reaches a port %s matches on %s but not on %s (a named port with a number per pod), and waypoint %s checks the Service's port before it picks a pod",
			sp.Port, s.svc.Name, ref, podNames(c.ns.name, yes), podNames(c.ns.name, no), u.ref)
		refs := append([]ObjectRef{adminRef(at.pol), s.ref(), gatewayRef(u.ref), npRef(c.np.Namespace, c.np.Name)}, podRefs(append(slices.Clone(yes), no...))...)
		switch {
		case deny:
			ports = append(ports, strconv.Itoa(int(sp.Port)))
			c.f.add(WaypointInPath, msg+fmt.Sprintf("; strict: the DENY policy bound to the Service denies it, so %s also %s it through the Service; give the pods one number per port name", podNames(c.ns.name, no), pick(len(no) == 1, "loses", "lose")), refs...)
		case c.fidelity == FidelityPermissive:
			ports = append(ports, strconv.Itoa(int(sp.Port)))
			c.f.add(WaypointInPath, msg+fmt.Sprintf("; permissive: the policy bound to the Service allows it, so %s also %s it through the Service; give the pods one number per port name", podNames(c.ns.name, no), pick(len(no) == 1, "accepts", "accept")), refs...)
		default:
			c.f.add(WaypointInPath, msg+fmt.Sprintf("; strict: the policy bound to the Service leaves it out, so %s %s it through the Service; give the pods one number per port name", podNames(c.ns.name, yes), pick(len(yes) == 1, "loses", "lose")), refs...)
		}
	}
	if len(ports) == 0 {
		return nil, false
	}
	return ports, true
}
