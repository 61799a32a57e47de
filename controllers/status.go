package controllers

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Reasons of the Ready, Exact and IstioAccepted conditions beyond finding
// types and the reasons istiod gives.
const (
	reasonApplied     = "Applied"
	reasonApplyFailed = "ApplyFailed"
	// ReasonGatherFailed: the inputs could not be read (the mesh config
	// does not parse, the cache failed).
	reasonGatherFailed = "GatherFailed"
	// ReasonRecordFailed: the identities of a first translation could not
	// be recorded, so nothing was applied.
	reasonRecordFailed = "RecordFailed"
	reasonExact        = "Exact"
	// ReasonIstioNotAccepted: Ready is False because istiod did not accept
	// a generated policy.
	reasonIstioNotAccepted = "IstioNotAccepted"
	// ReasonAccepted: istiod accepted every generated policy.
	reasonAccepted = "Accepted"
	// ReasonRefused: the API server refused a generated policy (Istio's
	// webhook or the CRD's schema).
	reasonRefused = "Refused"
	// ReasonNoStatus: no istiod wrote a status on the generated policies.
	reasonNoStatus = "NoStatus"
	// ReasonPartialStatus: istiod wrote a status on some of them only.
	reasonPartialStatus = "PartialStatus"
	// ReasonNoPolicies: nothing was generated, so nothing to accept.
	reasonNoPolicies = "NoPolicies"
)

// maxMessage is the longest finding message the API accepts.
const maxMessage = 2048

// outcome is everything the status of one NetworkPolicy is built from.
type outcome struct {
	Translation translate.Translation
	// appliedPolicies is what Apply put in place; empty when the translation was
	// not active.
	applied appliedPolicies
	// ApplyError is set when the API refused a generated policy for good
	// (invalid), so Ready says so instead of the reconcile retrying.
	ApplyError error
	// Istio is what Istio wrote on the policies in place: one entry per
	// policy, sorted by name.
	Istio []istioVerdict
	// Ambient says the NetworkPolicy's namespace is in ambient mode, where
	// ztunnel enforces: only there does istiod's ZtunnelAccepted speak of
	// the namespace's workloads.
	Ambient bool
}

// Conditions istiod writes on an AuthorizationPolicy: ZtunnelAccepted on
// those ztunnel enforces (a selector or none), WaypointAccepted on those
// bound to a Service or Gateway (targetRefs), which waypoints enforce.
const (
	ztunnelAccepted  = "ZtunnelAccepted"
	waypointAccepted = "WaypointAccepted"
	// reasonAncestorNotBound: WaypointAccepted=False because the Service
	// the policy is bound to uses no waypoint yet (its Gateway has no
	// status.addresses): netpol2authz writes the Service's policy ahead,
	// so that nothing is denied the moment the waypoint is ready; traffic
	// goes straight to the pods until then, where the selector-bound
	// policies apply (docs/translation.md#waypoints).
	reasonAncestorNotBound = "AncestorNotBound"
)

// istioVerdict is the status istiod wrote on one generated
// AuthorizationPolicy.
type istioVerdict struct {
	Policy     string
	Generation int64
	// Conditions istiod wrote (ZtunnelAccepted…); empty when none did.
	Conditions []istioConditionSpec
}

// istioConditionSpec is one condition of an Istio status.
type istioConditionSpec struct {
	Type, Status, Reason, Message string
	ObservedGeneration            int64
}

// istioVerdicts reads Istio's status off the policies in place.
func istioVerdicts(aps []*securityv1.AuthorizationPolicy, inPlace []string) []istioVerdict {
	var out []istioVerdict
	for _, ap := range aps {
		if !slices.Contains(inPlace, ap.Name) {
			continue
		}
		v := istioVerdict{Policy: ap.Name, Generation: ap.Generation}
		for _, c := range ap.Status.GetConditions() {
			if c.GetType() == "" {
				continue
			}
			v.Conditions = append(v.Conditions, istioConditionSpec{Type: c.GetType(), Status: c.GetStatus(), Reason: c.GetReason(), Message: c.GetMessage(), ObservedGeneration: c.GetObservedGeneration()})
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b istioVerdict) int { return cmp.Compare(a.Policy, b.Policy) })
	return out
}

// Findings are the translation's findings and the conflicts met applying
// it, sorted by type then message.
func (o outcome) Findings() []translate.Finding {
	out := slices.Concat(o.Translation.Findings, o.applied.Conflicts)
	slices.SortStableFunc(out, func(a, b translate.Finding) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Message, b.Message))
	})
	return out
}

// Result names the outcome for the translations_total metric: invalid,
// error, conflict, inexact or exact.
func (o outcome) Result() string {
	findings := o.Findings()
	switch {
	case o.Translation.Action != translate.ActionApply:
		return "invalid"
	case o.ApplyError != nil:
		return "error"
	case len(o.applied.Conflicts) > 0:
		return "conflict"
	case firstInexact(findings) != "":
		return "inexact"
	default:
		return "exact"
	}
}

// buildStatus is the status of the translation of a NetworkPolicy of the
// given generation: prev is the current status (so that conditions keep
// their LastTransitionTime when they do not change) and now the time of a
// transition. It never mutates prev.
func buildStatus(prev *policyv1alpha1.NetworkPolicyTranslationStatus, generation int64, o outcome, now metav1.Time) policyv1alpha1.NetworkPolicyTranslationStatus {
	t := o.Translation
	findings := o.Findings()
	principals, rules := t.Principals, t.Rules
	if len(o.applied.Conflicts) > 0 {
		principals, rules = countInPlace(t.Policies, o.applied.Policies)
	}
	st := policyv1alpha1.NetworkPolicyTranslationStatus{
		ObservedGeneration: generation,
		Mode:               policyv1alpha1.Mode(t.Mode),
		Fidelity:           policyv1alpha1.Fidelity(t.Fidelity),
		Principals:         int32(principals),
		Rules:              int32(rules),
		FindingsCount:      int32(len(findings)),
		Findings:           apiFindings(findings),
		Identity:           policyv1alpha1.IdentityMode(t.Identity),
		Pending:            int32(len(t.Pending)),
		PendingIdentities:  apiPending(t.Pending),
	}
	if n := len(o.applied.Policies); n > 0 {
		st.AuthorizationPolicies = slices.Clone(o.applied.Policies[:min(n, policyv1alpha1.MaxAuthorizationPolicies)])
	}
	for _, c := range prev.Conditions {
		if c.Type == policyv1alpha1.ConditionReady || c.Type == policyv1alpha1.ConditionExact || c.Type == policyv1alpha1.ConditionIstioAccepted {
			st.Conditions = append(st.Conditions, *c.DeepCopy())
		}
	}
	istio := istioCondition(o, meta.FindStatusCondition(prev.Conditions, policyv1alpha1.ConditionIstioAccepted))
	ready := readyCondition(o, findings, istio)
	exact := exactCondition(findings)
	for _, c := range []*metav1.Condition{&ready, &exact, &istio} {
		c.ObservedGeneration = generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&st.Conditions, *c)
	}
	slices.SortFunc(st.Conditions, func(a, b metav1.Condition) int { return cmp.Compare(a.Type, b.Type) })
	return st
}

// countInPlace counts the distinct principals and the rules of the
// policies whose names are in place, when conflicts kept some out.
func countInPlace(policies []*securityv1.AuthorizationPolicy, inPlace []string) (principals, rules int) {
	seen := map[string]bool{}
	for _, ap := range policies {
		if !slices.Contains(inPlace, ap.Name) {
			continue
		}
		rules += len(ap.Spec.Rules)
		for _, r := range ap.Spec.Rules {
			for _, f := range r.From {
				for _, p := range f.Source.GetPrincipals() {
					seen[p] = true
				}
			}
		}
	}
	return len(seen), rules
}

func readyCondition(o outcome, findings []translate.Finding, istio metav1.Condition) metav1.Condition {
	c := metav1.Condition{Type: policyv1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	switch {
	case o.Translation.Action != translate.ActionApply:
		// Inactive yet reported: the namespace's annotation or the
		// policy itself is invalid, and the message says what stays.
		f := firstOfSeverity(findings, translate.SeverityError)
		c.Reason, c.Message = string(f.Type), f.Message
	case o.ApplyError != nil:
		c.Reason, c.Message = reasonApplyFailed, "the API server refused a generated AuthorizationPolicy: "+o.ApplyError.Error()
	case len(o.applied.Conflicts) > 0:
		c.Reason = string(translate.Conflict)
		c.Message = fmt.Sprintf("%d of %d AuthorizationPolicies in place; %d held by objects netpol2authz does not own (see the Conflict findings)",
			len(o.applied.Policies), len(o.Translation.Policies), len(o.applied.Conflicts))
	case istio.Status == metav1.ConditionFalse:
		c.Reason, c.Message = reasonIstioNotAccepted, "in place, but Istio did not accept them: "+istio.Message
	default:
		c.Status, c.Reason = metav1.ConditionTrue, reasonApplied
		c.Message = countOf(len(o.applied.Policies), "AuthorizationPolicy", "AuthorizationPolicies") + " in place"
	}
	c.Message = truncate(c.Message, 32768)
	return c
}

// istioCondition says what Istio made of the generated policies: refused
// by the API server (its webhook), not accepted by istiod (a False
// condition istiod wrote on one of them), accepted (every one carries
// istiod's True conditions: ZtunnelAccepted on the selector-bound ones,
// WaypointAccepted on those bound to a Service), or unknown (no istiod
// writes status: sidecar meshes, older Istio). A policy bound to a Service
// whose waypoint is not ready yet (WaypointAccepted=False,
// AncestorNotBound) counts as accepted, and the message says it waits: it
// is written ahead on purpose. While istiod has not yet judged the current
// generation of a policy, the previous verdict stands, so that an update
// costs no extra status write.
func istioCondition(o outcome, prev *metav1.Condition) metav1.Condition {
	c := metav1.Condition{Type: policyv1alpha1.ConditionIstioAccepted, Status: metav1.ConditionUnknown}
	if o.ApplyError != nil {
		c.Status, c.Reason = metav1.ConditionFalse, reasonRefused
		c.Message = truncate("the API server refused a generated AuthorizationPolicy: "+o.ApplyError.Error(), 32768)
		return c
	}
	if len(o.Istio) == 0 {
		c.Reason, c.Message = reasonNoPolicies, "no AuthorizationPolicy is in place, so there is nothing for Istio to accept"
		return c
	}
	var accepted, silent, waiting []string
	var stale, ztunnelOnly bool
	for _, v := range o.Istio {
		conds := v.Conditions
		if !o.Ambient {
			// Sidecars enforce here: ZtunnelAccepted=True still says istiod
			// took the policy in, but a False one speaks of ztunnel alone
			// (such as "dry-run is not supported in ztunnel").
			conds = slices.DeleteFunc(slices.Clone(conds), func(c istioConditionSpec) bool {
				return c.Type == ztunnelAccepted && c.Status != string(metav1.ConditionTrue)
			})
			ztunnelOnly = ztunnelOnly || len(conds) < len(v.Conditions)
		}
		if len(conds) == 0 {
			silent = append(silent, v.Policy)
			continue
		}
		ok, waits := true, false
		for _, ic := range conds {
			if ic.ObservedGeneration != 0 && ic.ObservedGeneration < v.Generation {
				stale = true
			}
			if ic.Type == waypointAccepted && ic.Status == string(metav1.ConditionFalse) && ic.Reason == reasonAncestorNotBound {
				waits = true
				continue
			}
			if ic.Status == string(metav1.ConditionFalse) {
				c.Status, c.Reason = metav1.ConditionFalse, cmp.Or(conditionReason(ic.Reason), reasonIstioNotAccepted)
				c.Message = truncate(fmt.Sprintf("istiod set %s=False on AuthorizationPolicy %s (%s): %s", ic.Type, v.Policy, ic.Reason, ic.Message), 32768)
				return c
			}
			if ic.Status != string(metav1.ConditionTrue) {
				ok = false
			}
		}
		if ok {
			accepted = append(accepted, v.Policy)
			if waits {
				waiting = append(waiting, v.Policy)
			}
		}
	}
	if stale && prev != nil {
		return *prev.DeepCopy()
	}
	switch {
	case len(accepted) == len(o.Istio):
		c.Status, c.Reason = metav1.ConditionTrue, reasonAccepted
		c.Message = "istiod accepted " + countOf(len(accepted), "AuthorizationPolicy", "AuthorizationPolicies")
		if types := conditionTypes(o.Istio); types != "" {
			c.Message += " (" + types + ")"
		}
		if len(waiting) > 0 {
			c.Message += fmt.Sprintf("; waiting for a waypoint to be ready (WaypointAccepted=False, %s: the Service they are bound to uses no waypoint yet, so its traffic goes straight to the pods): %s",
				reasonAncestorNotBound, strings.Join(waiting, ", "))
		}
		c.Message = truncate(c.Message, 32768)
	case len(silent) == len(o.Istio) && ztunnelOnly:
		c.Reason = reasonNoStatus
		c.Message = "admitted by the API server (and istiod's webhook, where it is installed); istiod's only verdict on the generated AuthorizationPolicies, ZtunnelAccepted=False, speaks of ztunnel only, and this namespace is not ambient: its sidecars are not judged there"
	case len(silent) == len(o.Istio):
		c.Reason = reasonNoStatus
		c.Message = "admitted by the API server, but no istiod wrote a status on the generated AuthorizationPolicies: sidecar-only meshes and Istio versions without ambient status do not, so whether istiod accepted them is not known here"
	default:
		c.Reason = reasonPartialStatus
		c.Message = fmt.Sprintf("istiod accepted %d of %d AuthorizationPolicies; it wrote no status on %s", len(accepted), len(o.Istio), strings.Join(silent, ", "))
	}
	return c
}

// conditionReason makes istiod's reason a valid condition reason (CamelCase).
func conditionReason(r string) string {
	out := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return -1
	}, r)
	if out == "" || !(out[0] >= 'a' && out[0] <= 'z' || out[0] >= 'A' && out[0] <= 'Z') {
		return ""
	}
	return out
}

func conditionTypes(vs []istioVerdict) string {
	var types []string
	for _, v := range vs {
		for _, c := range v.Conditions {
			if c.Status != string(metav1.ConditionTrue) {
				continue
			}
			if !slices.Contains(types, c.Type) {
				types = append(types, c.Type)
			}
		}
	}
	slices.Sort(types)
	return strings.Join(types, ", ")
}

func exactCondition(findings []translate.Finding) metav1.Condition {
	first := firstInexact(findings)
	if first == "" {
		return metav1.Condition{Type: policyv1alpha1.ConditionExact, Status: metav1.ConditionTrue, Reason: reasonExact,
			Message: "Istio allows exactly what the NetworkPolicy allows, for TCP"}
	}
	n := 0
	for _, f := range findings {
		if f.Severity != translate.SeverityInfo {
			n++
		}
	}
	return metav1.Condition{Type: policyv1alpha1.ConditionExact, Status: metav1.ConditionFalse, Reason: string(first),
		Message: countOf(n, "finding", "findings") + " of Warning or Error severity; see status.findings"}
}

// countOf renders "1 thing" or "n things".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// firstInexact is the type of the first finding of Warning or Error
// severity, or "".
func firstInexact(findings []translate.Finding) translate.FindingType {
	for _, f := range findings {
		if f.Severity != translate.SeverityInfo {
			return f.Type
		}
	}
	return ""
}

func firstOfSeverity(findings []translate.Finding, s translate.Severity) translate.Finding {
	for _, f := range findings {
		if f.Severity == s {
			return f
		}
	}
	if len(findings) > 0 {
		return findings[0]
	}
	return translate.Finding{Type: "NotTranslated", Message: "the NetworkPolicy was not translated"}
}

// apiFindings converts findings for the status, within the API's bounds.
// When there are more than MaxFindings, the first of every type is kept
// before the rest fill the list, so the listed types are all the types and
// events on appearing and clearing types stay right.
func apiFindings(in []translate.Finding) []policyv1alpha1.Finding {
	if len(in) == 0 {
		return nil
	}
	keep := make([]bool, len(in))
	if len(in) <= policyv1alpha1.MaxFindings {
		for i := range keep {
			keep[i] = true
		}
	} else {
		n := 0
		for i := range in {
			if i == 0 || in[i].Type != in[i-1].Type {
				keep[i] = true
				n++
			}
		}
		for i := range in {
			if n >= policyv1alpha1.MaxFindings {
				break
			}
			if !keep[i] {
				keep[i] = true
				n++
			}
		}
	}
	out := make([]policyv1alpha1.Finding, 0, min(len(in), policyv1alpha1.MaxFindings))
	for i, f := range in {
		if !keep[i] {
			continue
		}
		af := policyv1alpha1.Finding{
			Type:     string(f.Type),
			Severity: policyv1alpha1.Severity(f.Severity),
			Message:  truncate(cmp.Or(f.Message, string(f.Type)), maxMessage),
		}
		for _, o := range f.Objects[:min(len(f.Objects), policyv1alpha1.MaxFindingObjects)] {
			af.Objects = append(af.Objects, policyv1alpha1.ObjectReference{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name})
		}
		out = append(out, af)
	}
	return out
}

// apiPending converts the pending identities for the status, within the
// API's bounds.
func apiPending(in []translate.PendingIdentity) []policyv1alpha1.PendingIdentity {
	if len(in) == 0 {
		return nil
	}
	out := make([]policyv1alpha1.PendingIdentity, 0, min(len(in), policyv1alpha1.MaxPendingIdentities))
	for _, p := range in[:min(len(in), policyv1alpha1.MaxPendingIdentities)] {
		ap := policyv1alpha1.PendingIdentity{Identity: string(p.Identity), Peers: slices.Clone(p.Peers[:min(len(p.Peers), 32)])}
		for _, s := range p.Sources[:min(len(p.Sources), policyv1alpha1.MaxIdentitySources)] {
			src := policyv1alpha1.IdentitySource{Kind: s.Ref.Kind, Namespace: s.Ref.Namespace, Name: s.Ref.Name, FieldManagers: slices.Clone(s.FieldManagers)}
			if len(s.Labels) > 0 {
				src.Labels = maps.Clone(s.Labels)
			}
			ap.Sources = append(ap.Sources, src)
		}
		out = append(out, ap)
	}
	return out
}

// truncate cuts s to at most limit bytes on a rune boundary, marking the cut.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = "…"
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// findingTypes are the distinct finding types of a status, with the
// severity of each.
func findingTypes(findings []policyv1alpha1.Finding) map[string]policyv1alpha1.Severity {
	out := make(map[string]policyv1alpha1.Severity, len(findings))
	for _, f := range findings {
		if _, ok := out[f.Type]; !ok {
			out[f.Type] = f.Severity
		}
	}
	return out
}
