package translate

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// overreachAllowsAll says ap is the allow-everything policy permissive
// fidelity generates for an overreaching projection, and that a
// SelectorOverreach finding says so.
func overreachAllowsAll(t Translation, ap *securityv1.AuthorizationPolicy) bool {
	if t.Fidelity != FidelityPermissive || len(ap.Spec.Rules) != 1 ||
		len(ap.Spec.Rules[0].From)+len(ap.Spec.Rules[0].To)+len(ap.Spec.Rules[0].When) > 0 {
		return false
	}
	for _, f := range t.Findings {
		if f.Type == SelectorOverreach && strings.Contains(f.Message, "AuthorizationPolicy "+ap.Name+" allows any traffic") {
			return true
		}
	}
	return false
}

// checkInvariants returns every way r breaks what the contract promises
// about any output, whatever the input. The fuzz and determinism tests
// share it.
func checkInvariants(s Snapshot, o Options, r Result) []string { //nolint:gocyclo // the contract's invariants one after the other, a flat list of checks; split, they would be harder to read against docs/translation.md
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	nps := sortedPolicies(s.NetworkPolicies)
	if len(r.Translations) != len(nps) {
		fail("%d translations for %d NetworkPolicies", len(r.Translations), len(nps))
		return errs
	}
	trustDomain := s.Mesh.TrustDomain
	if trustDomain == "" {
		trustDomain = defaultTrustDomain
	}
	maxRange := o.MaxPortRange
	if maxRange <= 0 {
		maxRange = DefaultMaxPortRange
	}
	generated := map[string]bool{}
	for i, t := range r.Translations {
		np := nps[i]
		id := np.Namespace + "/" + np.Name
		// The policies of admin rules are checked on their own: the
		// checks below are about what the NetworkPolicy's rules give.
		all := t.Policies
		t.Policies = ownPolicies(t, id, fail)
		t.Policies = selectorPolicies(s, np, t, id, fail)
		if t.NetworkPolicy.Namespace != np.Namespace || t.NetworkPolicy.Name != np.Name {
			fail("translation %d is %s, want %s", i, t.NetworkPolicy, id)
		}
		if t.Action != ActionApply && len(t.Policies) > 0 {
			fail("%s: inactive but has %d policies", id, len(t.Policies))
		}
		for j, f := range t.Findings {
			if f.Severity != SeverityOf(f.Type) {
				fail("%s: finding %s has severity %s", id, f.Type, f.Severity)
			}
			if f.Message == "" {
				fail("%s: finding %s has no message", id, f.Type)
			}
			if !slices.IsSortedFunc(f.Objects, compareObjectRef) {
				fail("%s: finding %s objects not sorted", id, f.Type)
			}
			if j > 0 && compareFinding(t.Findings[j-1], f) >= 0 {
				fail("%s: findings not sorted or duplicated at %d", id, j)
			}
		}
		if !slices.IsSortedFunc(t.Policies, func(a, b *securityv1.AuthorizationPolicy) int { return strings.Compare(a.Name, b.Name) }) {
			fail("%s: policies not sorted by name", id)
		}

		// What the NetworkPolicy's rules allow an output rule to omit.
		var noFrom, noTo int
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				noFrom++
			}
			if len(rule.Ports) == 0 || anyTCPPort(rule.Ports, t.Fidelity, maxRange) {
				noTo++
			}
		}

		principals := map[string]bool{}
		rules := 0
		for _, ap := range t.Policies {
			key := ap.Namespace + "/" + ap.Name
			if generated[key] {
				fail("%s: policy %s generated twice", id, key)
			}
			generated[key] = true
			if ap.Namespace != np.Namespace {
				fail("%s: policy %s outside the NetworkPolicy's namespace", id, key)
			}
			if len(ap.Name) > maxNameLength || len(validation.IsDNS1123Subdomain(ap.Name)) > 0 {
				fail("%s: invalid policy name %q", id, ap.Name)
			}
			if ap.Labels[LabelManagedBy] != ManagedByValue || ap.Annotations[AnnotationSourcePolicy] != np.Name {
				fail("%s: policy %s lacks its ownership labels", id, key)
			}
			if v := ap.Labels[LabelNetworkPolicy]; len(content.IsLabelValue(v)) > 0 || v == "" {
				fail("%s: invalid label value %q", id, v)
			}
			if (ap.Annotations[AnnotationIstioDryRun] == "true") != (t.Mode == ModeDryRun) {
				fail("%s: dry-run annotation does not match mode %s", id, t.Mode)
			}
			if ap.Spec.Selector != nil && len(ap.Spec.Selector.MatchLabels) == 0 {
				fail("%s: empty selector instead of none", id)
			}
			if overreachAllowsAll(t, ap) {
				// The one widening the contract allows an empty rule for:
				// permissive's answer to SelectorOverreach, reported.
				rules++
				continue
			}
			if len(ap.Spec.Rules) > len(np.Spec.Ingress) {
				fail("%s: %d rules from %d ingress rules", id, len(ap.Spec.Rules), len(np.Spec.Ingress))
			}
			var ruleNoFrom, ruleNoTo int
			for _, rule := range ap.Spec.Rules {
				rules++
				if len(rule.From) == 0 {
					ruleNoFrom++
				}
				if len(rule.To) == 0 {
					ruleNoTo++
				}
				for _, from := range rule.From {
					src := from.GetSource()
					if src == nil || len(src.Principals)+len(src.Namespaces)+len(src.IpBlocks) == 0 {
						fail("%s: empty source in %s", id, key)
						continue
					}
					if len(src.NotIpBlocks) > 0 && len(src.IpBlocks) == 0 {
						fail("%s: notIpBlocks without ipBlocks in %s", id, key)
					}
					for _, p := range src.Principals {
						principals[p] = true
						if !strings.HasPrefix(p, trustDomain+"/ns/") {
							fail("%s: principal %q outside trust domain %s", id, p, trustDomain)
						}
					}
					for _, list := range [][]string{src.Principals, src.Namespaces, src.NotIpBlocks} {
						if !slices.IsSorted(list) {
							fail("%s: unsorted source list %v", id, list)
						}
					}
					// Pod IPs are sorted as addresses.
					if !slices.IsSortedFunc(src.IpBlocks, func(a, b string) int {
						pa, _ := netip.ParsePrefix(a)
						pb, _ := netip.ParsePrefix(b)
						return pa.Addr().Compare(pb.Addr())
					}) {
						fail("%s: unsorted ipBlocks %v", id, src.IpBlocks)
					}
				}
				for _, to := range rule.To {
					op := to.GetOperation()
					if op == nil || len(op.Ports) == 0 {
						fail("%s: empty operation in %s", id, key)
						continue
					}
					prev := 0
					for _, p := range op.Ports {
						n, err := strconv.Atoi(p)
						if err != nil || n <= prev || n > 65535 {
							fail("%s: ports %v not sorted distinct numbers", id, op.Ports)
							break
						}
						prev = n
					}
				}
			}
			if ruleNoFrom > noFrom {
				fail("%s: %d rules without from, but only %d ingress rules without from", id, ruleNoFrom, noFrom)
			}
			if ruleNoTo > noTo {
				fail("%s: %d rules without to, but only %d ingress rules may allow any port", id, ruleNoTo, noTo)
			}
		}
		if len(all) != len(t.Policies) {
			// Admin rules add principals and rules of their own.
			principals = map[string]bool{}
			rules = 0
			for _, ap := range all {
				rules += len(ap.Spec.Rules)
				for _, r := range ap.Spec.Rules {
					for _, f := range r.From {
						for _, p := range f.Source.Principals {
							principals[p] = true
						}
					}
				}
			}
		}
		if t.Principals != len(principals) || t.Rules != rules {
			fail("%s: counts %d principals, %d rules; want %d, %d", id, t.Principals, t.Rules, len(principals), rules)
		}
		errs = append(errs, checkPortsPerPod(s, np, t)...)
	}
	return errs
}

// anyTCPPort says whether a rule's ports can legitimately turn into "any
// port": a TCP entry without a port, or (permissive) a range past the cap.
func anyTCPPort(ports []networkingv1.NetworkPolicyPort, f Fidelity, maxRange int) bool {
	budget := maxRange // the ranges of one rule share the cap
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.EndPort == nil || *p.EndPort <= p.Port.IntVal {
			continue
		}
		count := int(*p.EndPort) - int(p.Port.IntVal) + 1
		if count > budget {
			if f == FidelityPermissive {
				return true
			}
			continue
		}
		budget -= count
	}
	return false
}

// blindTo says whether a selected pod that gives named port number n has
// no label that pod w lacks: then every selector of it selects w too,
// the only reason permissive may open n on w.
func blindTo(pods []*Pod, npSel labels.Selector, names map[string]bool, w *Pod, n int) bool {
	for _, d := range pods {
		if d == w || !npSel.Matches(labels.Set(d.Labels)) || !labels.SelectorFromSet(d.Labels).Matches(labels.Set(w.Labels)) {
			continue
		}
		for _, cp := range d.Ports {
			if names[cp.Name] && int(cp.Port) == n && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
				return true
			}
		}
	}
	return false
}

// checkPortsPerPod checks that a generated policy opens on each pod it
// selects only ports the NetworkPolicy may open there: a number or range
// of its rules, or the pod's own number of a named port of its rules.
// Only permissive's reported fallback (NamedPortVaries naming the pod) may
// open a named port's number on a pod that lacks it, and only where a pod
// that has it cannot be selected without this one. And a policy that
// limits ports selects only pods the NetworkPolicy selects: overlays and
// projections never reach others.
func checkPortsPerPod(s Snapshot, np *networkingv1.NetworkPolicy, t Translation) []string {
	if len(t.Policies) == 0 {
		return nil
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	id := np.Namespace + "/" + np.Name
	npSel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return []string{fmt.Sprintf("%s: policies generated for an invalid podSelector", id)}
	}
	// The pods as the engine counts them: one per namespace and name.
	var pods []*Pod
	for i := range s.Pods {
		if p := &s.Pods[i]; p.Counts() && p.Namespace == np.Namespace {
			pods = append(pods, p)
		}
	}
	slices.SortFunc(pods, ComparePods)
	pods = slices.CompactFunc(pods, func(a, b *Pod) bool { return a.Name == b.Name })

	// What the rules may open: numbers and ranges, and named ports.
	type span struct{ first, last int32 }
	var spans []span
	names := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) || p.Port == nil {
				continue
			}
			if p.Port.Type == intstr.String {
				names[p.Port.StrVal] = true
				continue
			}
			last := p.Port.IntVal
			if p.EndPort != nil {
				last = *p.EndPort
			}
			spans = append(spans, span{p.Port.IntVal, last})
		}
	}
	widened := map[ObjectRef]bool{}
	if t.Fidelity == FidelityPermissive {
		for _, f := range t.Findings {
			if f.Type == NamedPortVaries {
				for _, o := range f.Objects {
					widened[o] = true
				}
			}
		}
	}
	for _, ap := range t.Policies {
		var opened []int
		for _, rule := range ap.Spec.Rules {
			for _, to := range rule.To {
				for _, p := range to.GetOperation().GetPorts() {
					if n, err := strconv.Atoi(p); err == nil {
						opened = append(opened, n)
					}
				}
			}
		}
		if len(opened) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(ap.Spec.GetSelector().GetMatchLabels())
		for _, pod := range pods {
			if !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			if !npSel.Matches(labels.Set(pod.Labels)) {
				fail("%s: policy %s limits ports on pod %s, which the NetworkPolicy does not select", id, ap.Name, pod.Name)
				continue
			}
			ref := podRef(&podInfo{pod: pod})
			for _, n := range opened {
				ok := slices.ContainsFunc(spans, func(s span) bool { return s.first <= int32(n) && int32(n) <= s.last })
				for _, cp := range pod.Ports {
					if names[cp.Name] && int(cp.Port) == n && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
						ok = true
					}
				}
				if !ok && !(widened[ref] && blindTo(pods, npSel, names, pod, n)) {
					fail("%s: policy %s opens port %d on pod %s, which neither the rules nor its named ports give", id, ap.Name, n, pod.Name)
				}
			}
		}
	}
	return errs
}

// ownPolicies returns the policies generated from the NetworkPolicy's own
// rules, and checks those generated for admin policies' rules: labelled
// with the admin policy, an ALLOW rule never without sources, only for
// pods the NetworkPolicy's policies select.
func ownPolicies(t Translation, id string, fail func(string, ...any)) []*securityv1.AuthorizationPolicy {
	var own, admin []*securityv1.AuthorizationPolicy
	for _, ap := range t.Policies {
		if _, ok := ap.Labels[LabelAdminPolicyKind]; ok {
			admin = append(admin, ap)
		} else {
			own = append(own, ap)
		}
	}
	for _, ap := range admin {
		if ap.Labels[LabelAdminPolicy] == "" || ap.Annotations[AnnotationAdminPolicy] == "" || ap.Labels[LabelNetworkPolicy] == "" {
			fail("%s: admin policy %s lacks its labels", id, ap.Name)
		}
		if len(ap.Spec.Rules) == 0 {
			fail("%s: admin policy %s has no rules", id, ap.Name)
		}
		for _, r := range ap.Spec.Rules {
			if ap.Spec.Action.String() == "ALLOW" && len(r.From) == 0 {
				fail("%s: admin ALLOW policy %s has a rule without from", id, ap.Name)
			}
		}
		within := false
		for _, o := range own {
			sel := labels.SelectorFromSet(o.Spec.GetSelector().GetMatchLabels())
			if sel.Matches(labels.Set(ap.Spec.GetSelector().GetMatchLabels())) {
				within = true
			}
		}
		if !within {
			fail("%s: admin policy %s selects pods none of the NetworkPolicy's policies selects", id, ap.Name)
		}
	}
	return own
}

// selectorPolicies returns the policies bound by selector, and checks
// those bound to a Service at its waypoint: one Service of the
// NetworkPolicy's namespace, no selector, no more rules than the
// NetworkPolicy, ports of the Service only, and a rule allowing
// everything only where permissive reports it.
func selectorPolicies(s Snapshot, np *networkingv1.NetworkPolicy, t Translation, id string, fail func(string, ...any)) []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, ap := range t.Policies {
		refs := ap.Spec.GetTargetRefs()
		if len(refs) == 0 {
			out = append(out, ap)
			continue
		}
		if ap.Spec.Selector != nil || len(refs) != 1 || refs[0].GetKind() != "Service" || refs[0].GetGroup() != "" || refs[0].GetNamespace() != "" {
			fail("%s: policy %s: selector and targetRefs, or not one Service", id, ap.Name)
			continue
		}
		var svc *Service
		for i := range s.Services {
			if s.Services[i].Namespace == np.Namespace && s.Services[i].Name == refs[0].GetName() {
				svc = &s.Services[i]
			}
		}
		if svc == nil {
			fail("%s: policy %s bound to Service %s, which is not in the snapshot", id, ap.Name, refs[0].GetName())
			continue
		}
		if len(ap.Spec.Rules) > max(len(np.Spec.Ingress), 1) {
			fail("%s: policy %s has %d rules from %d ingress rules", id, ap.Name, len(ap.Spec.Rules), len(np.Spec.Ingress))
		}
		for _, r := range ap.Spec.Rules {
			if len(r.From)+len(r.To) == 0 && !(t.Fidelity == FidelityPermissive && reports(t, WaypointInPath, "AuthorizationPolicy "+ap.Name+" allows any source")) {
				fail("%s: policy %s allows everything, unreported", id, ap.Name)
			}
			for _, to := range r.To {
				for _, p := range to.GetOperation().GetPorts() {
					if !slices.ContainsFunc(svc.Ports, func(sp ServicePort) bool { return strconv.Itoa(int(sp.Port)) == p }) {
						fail("%s: policy %s opens port %s, not a port of Service %s", id, ap.Name, p, svc.Name)
					}
				}
			}
		}
	}
	return out
}

// reports says whether t has a finding of type ft whose message says what.
func reports(t Translation, ft FindingType, what string) bool {
	return slices.ContainsFunc(t.Findings, func(f Finding) bool { return f.Type == ft && strings.Contains(f.Message, what) })
}
