package verify

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// annotationDryRun marks an AuthorizationPolicy Istio evaluates and logs
// without enforcing.
const annotationDryRun = "istio.io/dry-run"

// authz is an AuthorizationPolicy as the evaluator reads it: Istio's
// semantics for TCP traffic, written independently of the translator.
type authz struct {
	ref    types.NamespacedName
	action secv1beta1.AuthorizationPolicy_Action
	dryRun bool
	// sel nil: every workload in scope.
	sel labels.Selector
	// root: in the root namespace, so it applies in every namespace.
	root bool
	// ignored: bound with targetRefs to gateways or waypoints, not to
	// pods: it applies where a waypoint serves one of targets.
	ignored bool
	// targets are its targetRefs, as "Kind/namespace/name".
	targets []string
	rules   []authzRule
}

type authzRule struct {
	// skip: Istio drops this rule for TCP traffic (an ALLOW rule with
	// HTTP-only fields, or a rule Istio rejects).
	skip bool
	// anySource: no from.
	anySource bool
	sources   [][]srcField // each ANDs its fields; the rule ORs them
	// conds are the rule's when conditions on the source, ANDed.
	conds []srcField
	ports portSet
	// src caches the matching source classes, by destination kind
	// (0 ztunnel, 1 sidecar: only sidecars honour the cluster.local alias).
	src [2]bitset
}

type srcAttr int

const (
	attrPrincipal srcAttr = iota
	attrNamespace
	attrServiceAccount
	attrTrustDomain
	attrIP
)

// srcField is one source attribute test: the value must match one of
// values (when given) and none of notValues.
type srcField struct {
	attr              srcAttr
	values, notValues []string
	// ns is the policy's namespace, which a bare serviceAccounts entry
	// names.
	ns string
}

// compileAuthz reads one AuthorizationPolicy. notes say where Istio's TCP
// semantics or verify's model change what the policy says.
func compileAuthz(ap *securityv1.AuthorizationPolicy, rootNamespace string) (*authz, []string) {
	spec := &ap.Spec
	a := &authz{
		ref:    types.NamespacedName{Namespace: ap.Namespace, Name: ap.Name},
		action: spec.GetAction(),
		root:   ap.Namespace == rootNamespace,
	}
	a.dryRun, _ = strconv.ParseBool(ap.Annotations[annotationDryRun])
	var notes []string
	note := func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }
	if spec.GetTargetRef() != nil || len(spec.GetTargetRefs()) > 0 {
		// Where a waypoint serves a target, it evaluates the rules with
		// the client's identity; the engine notes those no waypoint serves.
		a.ignored = true
		for _, t := range append(spec.GetTargetRefs(), spec.GetTargetRef()) {
			if t != nil {
				a.targets = append(a.targets, t.GetKind()+"/"+ap.Namespace+"/"+t.GetName())
			}
		}
	}
	if ml := spec.GetSelector().GetMatchLabels(); len(ml) > 0 {
		a.sel = labels.SelectorFromSet(ml)
	}
	if a.action == secv1beta1.AuthorizationPolicy_AUDIT {
		return a, notes
	}
	for i, r := range spec.GetRules() {
		rule, http, unknown := compileAuthzRule(r, ap.Namespace)
		path := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case len(unknown) > 0:
			rule.skip = true
			note("%s has conditions Istio does not know (%s) and is rejected, so it never matches", path, strings.Join(unknown, ", "))
		case len(http) > 0 && a.action == secv1beta1.AuthorizationPolicy_ALLOW:
			rule.skip = true
			note("%s uses fields TCP traffic does not carry (%s): Istio ignores this ALLOW rule for TCP", path, strings.Join(http, ", "))
		case len(http) > 0:
			note("%s uses fields TCP traffic does not carry (%s): Istio leaves them out for TCP, so this %s rule matches more", path, strings.Join(http, ", "), a.action)
		}
		for _, k := range unevaluated(r) {
			note("%s: verify does not evaluate condition %s and treats it as matching", path, k)
		}
		for _, p := range badPorts(r) {
			note("%s: port %q is not a port number and matches nothing", path, p)
		}
		a.rules = append(a.rules, rule)
	}
	return a, notes
}

// Condition keys Istio evaluates for TCP traffic.
const (
	condSourceIP        = "source.ip"
	condRemoteIP        = "remote.ip"
	condSourceNamespace = "source.namespace"
	condSourcePrincipal = "source.principal"
	condDestinationPort = "destination.port"
	condDestinationIP   = "destination.ip"
	condConnectionSNI   = "connection.sni"
)

// compileAuthzRule reads one rule for TCP. http lists the HTTP-only fields
// it uses (left out of the result), unknown the condition keys Istio
// rejects.
func compileAuthzRule(r *secv1beta1.Rule, namespace string) (rule authzRule, http, unknown []string) {
	if r == nil {
		return authzRule{anySource: true, ports: allPorts}, nil, nil
	}
	rule.anySource = len(r.GetFrom()) == 0
	for _, f := range r.GetFrom() {
		s := f.GetSource()
		if len(s.GetRequestPrincipals())+len(s.GetNotRequestPrincipals()) > 0 {
			http = append(http, "requestPrincipals")
		}
		rule.sources = append(rule.sources, sourceFields(s, namespace))
	}
	ports := portSet(nil)
	if len(r.GetTo()) == 0 {
		ports = allPorts
	}
	for _, t := range r.GetTo() {
		op := t.GetOperation()
		for _, f := range []struct {
			name string
			n    int
		}{
			{"hosts", len(op.GetHosts()) + len(op.GetNotHosts())},
			{"methods", len(op.GetMethods()) + len(op.GetNotMethods())},
			{"paths", len(op.GetPaths()) + len(op.GetNotPaths())},
		} {
			if f.n > 0 {
				http = append(http, f.name)
			}
		}
		ports = ports.union(portMatch(op.GetPorts(), op.GetNotPorts()))
	}
	for _, c := range r.GetWhen() {
		k := c.GetKey()
		switch {
		case k == condSourceIP || k == condRemoteIP:
			rule.conds = append(rule.conds, srcField{attr: attrIP, values: c.GetValues(), notValues: c.GetNotValues()})
		case k == condSourceNamespace:
			rule.conds = append(rule.conds, srcField{attr: attrNamespace, values: c.GetValues(), notValues: c.GetNotValues()})
		case k == condSourcePrincipal:
			rule.conds = append(rule.conds, srcField{attr: attrPrincipal, values: c.GetValues(), notValues: c.GetNotValues()})
		case k == condDestinationPort:
			ports = ports.intersect(portMatch(c.GetValues(), c.GetNotValues()))
		case k == condDestinationIP || k == condConnectionSNI:
		case strings.HasPrefix(k, "request.") || strings.HasPrefix(k, "experimental."):
			http = append(http, "when "+k)
		default:
			unknown = append(unknown, k)
		}
	}
	rule.ports = ports
	slices.Sort(http)
	return rule, slices.Compact(http), unknown
}

func sourceFields(s *secv1beta1.Source, namespace string) []srcField {
	var out []srcField
	add := func(attr srcAttr, values, notValues []string) {
		if len(values)+len(notValues) > 0 {
			out = append(out, srcField{attr: attr, values: values, notValues: notValues, ns: namespace})
		}
	}
	add(attrPrincipal, s.GetPrincipals(), s.GetNotPrincipals())
	add(attrNamespace, s.GetNamespaces(), s.GetNotNamespaces())
	add(attrServiceAccount, s.GetServiceAccounts(), s.GetNotServiceAccounts())
	add(attrTrustDomain, s.GetTrustDomains(), s.GetNotTrustDomains())
	add(attrIP, s.GetIpBlocks(), s.GetNotIpBlocks())
	// Pod-to-pod traffic crosses no proxy that would set X-Forwarded-For
	// or the proxy protocol: the remote address is the source address.
	add(attrIP, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())
	return out
}

// unevaluated lists the TCP conditions of a rule verify does not model.
func unevaluated(r *secv1beta1.Rule) []string {
	var out []string
	for _, c := range r.GetWhen() {
		if k := c.GetKey(); k == condDestinationIP || k == condConnectionSNI {
			out = append(out, k)
		}
	}
	return out
}

func badPorts(r *secv1beta1.Rule) []string {
	var out []string
	check := func(list []string) {
		for _, p := range list {
			if _, ok := parsePort(p); !ok {
				out = append(out, p)
			}
		}
	}
	for _, t := range r.GetTo() {
		check(t.GetOperation().GetPorts())
		check(t.GetOperation().GetNotPorts())
	}
	for _, c := range r.GetWhen() {
		if c.GetKey() == condDestinationPort {
			check(c.GetValues())
			check(c.GetNotValues())
		}
	}
	return out
}

func parsePort(s string) (int32, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < minPort || n > maxPort {
		return 0, false
	}
	return int32(n), true
}

// portMatch is the ports a ports/notPorts pair matches.
func portMatch(values, notValues []string) portSet {
	set := allPorts
	if len(values) > 0 {
		var rs []PortRange
		for _, v := range values {
			if n, ok := parsePort(v); ok {
				rs = append(rs, PortRange{n, n})
			}
		}
		set = portsOf(rs...)
	}
	if len(notValues) > 0 {
		var rs []PortRange
		for _, v := range notValues {
			if n, ok := parsePort(v); ok {
				rs = append(rs, PortRange{n, n})
			}
		}
		set = set.intersect(portsOf(rs...).complement())
	}
	return set
}

// istioMatch is Istio's string match: exact, prefix "abc*", suffix "*abc",
// and presence "*". An absent value (a source without mesh identity)
// matches nothing.
func istioMatch(pattern, value string) bool {
	switch {
	case value == "":
		return false
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(value, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(value, pattern[:len(pattern)-1])
	default:
		return value == pattern
	}
}

// istioEval evaluates a set of AuthorizationPolicies over a world.
type istioEval struct {
	w        *world
	policies []*authz
	byNS     map[string][]*authz
	root     []*authz
	// fields caches the source classes one field matches.
	fields map[string]bitset
	// byTarget lists the policies bound with targetRefs, by target.
	byTarget map[string][]*authz
}

func newIstioEval(w *world, policies []*authz) *istioEval {
	e := &istioEval{w: w, policies: policies, byNS: map[string][]*authz{}, fields: map[string]bitset{}, byTarget: map[string][]*authz{}}
	for _, a := range policies {
		for _, t := range a.targets {
			e.byTarget[t] = append(e.byTarget[t], a)
		}
		if a.ignored || a.action == secv1beta1.AuthorizationPolicy_AUDIT {
			continue
		}
		if a.root {
			e.root = append(e.root, a)
		} else {
			e.byNS[a.ref.Namespace] = append(e.byNS[a.ref.Namespace], a)
		}
	}
	return e
}

// applies says whether the policy applies to destination d.
func (a *authz) applies(d *dstClass) bool {
	return (a.root || a.ref.Namespace == d.ns.name) && (a.sel == nil || a.sel.Matches(d.labels))
}

// apContrib is one rule's share at a destination.
type apContrib struct {
	policy *authz
	src    bitset
	ports  portSet
}

// istioAt is what the AuthorizationPolicies say about one destination.
type istioAt struct {
	// enforced: d has a proxy; without one Istio enforces nothing.
	enforced bool
	// applying lists the policies that apply to d.
	applying []*authz
	// allowPolicies, allowPoliciesEnforced: some ALLOW policy applies
	// (with or without counting dry-run ones), so d denies what none
	// allows.
	allowPolicies, allowPoliciesEnforced bool
	allow, deny, custom                  []apContrib
}

func (e *istioEval) at(d *dstClass) *istioAt {
	out := &istioAt{enforced: d.inMesh}
	if !d.inMesh {
		return out
	}
	kind := 0
	if d.sidecar {
		kind = 1
	}
	for _, list := range [][]*authz{e.root, e.byNS[d.ns.name]} {
		for _, a := range list {
			if !a.applies(d) {
				continue
			}
			out.applying = append(out.applying, a)
			target := &out.allow
			switch a.action {
			case secv1beta1.AuthorizationPolicy_ALLOW:
				out.allowPolicies = true
				out.allowPoliciesEnforced = out.allowPoliciesEnforced || !a.dryRun
			case secv1beta1.AuthorizationPolicy_DENY:
				target = &out.deny
			case secv1beta1.AuthorizationPolicy_CUSTOM:
				target = &out.custom
			default:
				continue
			}
			for i := range a.rules {
				r := &a.rules[i]
				if r.skip || len(r.ports) == 0 {
					continue
				}
				if r.src[kind] == nil {
					r.src[kind] = e.ruleSources(r, kind == 1)
				}
				if !r.src[kind].empty() {
					*target = append(*target, apContrib{policy: a, src: r.src[kind], ports: r.ports})
				}
			}
		}
	}
	return out
}

func (a *istioAt) portSets() []portSet {
	var out []portSet
	for _, l := range [][]apContrib{a.allow, a.deny, a.custom} {
		for _, c := range l {
			out = append(out, c.ports)
		}
	}
	return out
}

// verdict fills the sources Istio lets reach the destination on port p.
// enforcedOnly leaves dry-run policies out, as Istio does today; without
// it they count as if enforced. CUSTOM policies can only deny further, by
// an external authorizer verify cannot ask: they are listed with the
// differences they match, not evaluated.
func (e *istioEval) verdict(a *istioAt, p int32, enforcedOnly bool, allowed, deny bitset) {
	if !a.enforced {
		allowed.copyFrom(e.w.allSrc)
		return
	}
	deny.clear()
	for _, c := range a.deny {
		if (!enforcedOnly || !c.policy.dryRun) && c.ports.contains(p) {
			deny.or(c.src)
		}
	}
	if (enforcedOnly && !a.allowPoliciesEnforced) || !a.allowPolicies {
		allowed.copyFrom(e.w.allSrc)
	} else {
		allowed.clear()
		for _, c := range a.allow {
			if (!enforcedOnly || !c.policy.dryRun) && c.ports.contains(p) {
				allowed.or(c.src)
			}
		}
	}
	allowed.andNot(deny)
}

// ruleSources are the source classes a rule matches.
func (e *istioEval) ruleSources(r *authzRule, sidecar bool) bitset {
	out := e.w.allSrc.clone()
	if !r.anySource {
		anyOf := e.w.newSrcSet()
		for _, fields := range r.sources {
			one := e.w.allSrc.clone()
			for _, f := range fields {
				one.and(e.fieldSources(f, sidecar))
			}
			anyOf.or(one)
		}
		out.and(anyOf)
	}
	for _, f := range r.conds {
		out.and(e.fieldSources(f, sidecar))
	}
	return out
}

func (e *istioEval) fieldSources(f srcField, sidecar bool) bitset {
	key := fmt.Sprintf("%d %t %q %q %s", f.attr, sidecar && f.attr == attrPrincipal, f.values, f.notValues, f.ns)
	if b, ok := e.fields[key]; ok {
		return b
	}
	b := e.w.allSrc.clone()
	if len(f.values) > 0 {
		b = e.matching(f, f.values, sidecar)
	}
	if len(f.notValues) > 0 {
		b.andNot(e.matching(f, f.notValues, sidecar))
	}
	e.fields[key] = b
	return b
}

// matching are the source classes whose attribute matches any pattern.
func (e *istioEval) matching(f srcField, patterns []string, sidecar bool) bitset {
	w := e.w
	b := w.newSrcSet()
	setAll := func(idx []int) {
		for _, i := range idx {
			b.set(i)
		}
	}
	for _, pat := range patterns {
		switch f.attr {
		case attrPrincipal:
			pats := []string{pat}
			// Sidecars read the cluster.local trust domain in a policy as
			// the mesh's own; ztunnel does not.
			if rest, ok := strings.CutPrefix(pat, defaultTrustDomain+"/"); ok && sidecar && w.trustDomain != defaultTrustDomain {
				pats = append(pats, w.trustDomain+"/"+rest)
			}
			for _, p := range pats {
				if !strings.Contains(p, "*") {
					setAll(w.srcByPrincipal[p])
					continue
				}
				for principal, idx := range w.srcByPrincipal {
					if istioMatch(p, principal) {
						setAll(idx)
					}
				}
			}
		case attrNamespace:
			for _, ns := range w.nsSorted {
				if istioMatch(pat, ns.name) {
					for _, i := range w.srcByNS[ns.name] {
						if w.srcs[i].inMesh {
							b.set(i)
						}
					}
				}
			}
		case attrServiceAccount:
			// "ns/sa", or "sa" in the policy's namespace; exact only.
			ns, sa, ok := strings.Cut(pat, "/")
			if !ok {
				ns, sa = f.ns, pat
			}
			setAll(w.srcByPrincipal[w.principal(ns, sa)])
		case attrTrustDomain:
			if istioMatch(pat, w.trustDomain) {
				for _, idx := range w.srcByPrincipal {
					setAll(idx)
				}
			}
		case attrIP:
			prefix, ok := parseIPBlock(pat)
			if !ok {
				continue
			}
			if prefix.IsSingleIP() {
				setAll(w.srcByAddr[prefix.Addr()])
				continue
			}
			for i, c := range w.srcs {
				if inPrefix(c.addr, prefix) {
					b.set(i)
				}
			}
		}
	}
	return b
}

// parseIPBlock reads "10.0.0.0/8" or a single address.
func parseIPBlock(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}
