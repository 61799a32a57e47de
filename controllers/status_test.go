package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

var (
	t0 = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 = metav1.NewTime(t0.Add(time.Hour))
)

func finding(t translate.FindingType, msg string) translate.Finding {
	return translate.Finding{Type: t, Severity: translate.SeverityOf(t), Message: msg}
}

func TestBuildStatus(t *testing.T) {
	active := translate.Translation{Action: translate.ActionApply, Mode: translate.ModeEnforce, Fidelity: translate.FidelityPermissive, Principals: 2, Rules: 1,
		Policies: nil, Findings: []translate.Finding{finding(translate.NoPodsSelected, "no pod")}}
	tests := map[string]struct {
		o         outcome
		wantReady metav1.Condition
		wantExact metav1.Condition
		wantIstio metav1.Condition
	}{
		"applied and exact (an Info finding)": {
			o:         outcome{Translation: active, applied: appliedPolicies{Policies: []string{"netpol-db"}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "True", Reason: "Applied", Message: "1 AuthorizationPolicy in place"},
			wantExact: metav1.Condition{Type: "Exact", Status: "True", Reason: "Exact", Message: "Istio allows exactly what the NetworkPolicy allows, for TCP"},
			wantIstio: noPolicies,
		},
		"a conflict": {
			o: outcome{Translation: active, applied: appliedPolicies{Conflicts: []translate.Finding{finding(translate.Conflict, "held")}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "False", Reason: "Conflict",
				Message: "0 of 0 AuthorizationPolicies in place; 1 held by objects netpol2authz does not own (see the Conflict findings)"},
			wantExact: metav1.Condition{Type: "Exact", Status: "False", Reason: "Conflict", Message: "1 finding of Warning or Error severity; see status.findings"},
			wantIstio: noPolicies,
		},
		"an invalid annotation": {
			o:         outcome{Translation: translate.Translation{Action: translate.ActionKeep, Findings: []translate.Finding{finding(translate.InvalidAnnotation, "bad mode")}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "False", Reason: "InvalidAnnotation", Message: "bad mode"},
			wantExact: metav1.Condition{Type: "Exact", Status: "False", Reason: "InvalidAnnotation", Message: "1 finding of Warning or Error severity; see status.findings"},
			wantIstio: noPolicies,
		},
		"istiod did not accept a policy": {
			o: outcome{Translation: active, Ambient: true, applied: appliedPolicies{Policies: []string{"netpol-db"}}, Istio: []istioVerdict{{Policy: "netpol-db", Generation: 1,
				Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "False", Reason: "UnsupportedValue", Message: "dry-run not supported", ObservedGeneration: 1}}}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "False", Reason: "IstioNotAccepted",
				Message: "in place, but Istio did not accept them: istiod set ZtunnelAccepted=False on AuthorizationPolicy netpol-db (UnsupportedValue): dry-run not supported"},
			wantExact: metav1.Condition{Type: "Exact", Status: "True", Reason: "Exact", Message: "Istio allows exactly what the NetworkPolicy allows, for TCP"},
			wantIstio: metav1.Condition{Type: "IstioAccepted", Status: "False", Reason: "UnsupportedValue",
				Message: "istiod set ZtunnelAccepted=False on AuthorizationPolicy netpol-db (UnsupportedValue): dry-run not supported"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := buildStatus(&policyv1alpha1.NetworkPolicyTranslationStatus{}, 4, tc.o, t0)
			for _, c := range []*metav1.Condition{&tc.wantReady, &tc.wantExact, &tc.wantIstio} {
				c.ObservedGeneration, c.LastTransitionTime = 4, t0
			}
			if diff := cmp.Diff([]metav1.Condition{tc.wantExact, tc.wantIstio, tc.wantReady}, st.Conditions); diff != "" {
				t.Errorf("conditions (-want,+got):\n%s", diff)
			}
		})
	}
}

var noPolicies = metav1.Condition{Type: "IstioAccepted", Status: "Unknown", Reason: "NoPolicies", Message: "no AuthorizationPolicy is in place, so there is nothing for Istio to accept"}

func TestIstioCondition(t *testing.T) {
	accepted := func(policy string, gen, observed int64) istioVerdict {
		return istioVerdict{Policy: policy, Generation: gen, Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "True", Reason: "Accepted", ObservedGeneration: observed}}}
	}
	// waypoint is a policy bound to a Service, judged by istiod on
	// generation 1.
	waypoint := func(policy string, gen int64, status, reason string) istioVerdict {
		return istioVerdict{Policy: policy, Generation: gen, Conditions: []istioConditionSpec{{Type: "WaypointAccepted", Status: status, Reason: reason, ObservedGeneration: 1}}}
	}
	prev := &metav1.Condition{Type: "IstioAccepted", Status: "True", Reason: "Accepted", Message: "before"}
	tests := map[string]struct {
		o          outcome
		prev       *metav1.Condition
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		"refused by the webhook": {o: outcome{ApplyError: fmt.Errorf(`admission webhook "rev.validation.istio.io" denied the request`)}, wantStatus: "False", wantReason: "Refused"},
		"nothing in place":       {o: outcome{}, wantStatus: "Unknown", wantReason: "NoPolicies"},
		"no istiod status":       {o: outcome{Istio: []istioVerdict{{Policy: "a", Generation: 1}}}, wantStatus: "Unknown", wantReason: "NoStatus"},
		"all accepted":           {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), accepted("b", 2, 2)}}, wantStatus: "True", wantReason: "Accepted"},
		"ztunnel's verdict in a sidecar namespace": {o: outcome{Istio: []istioVerdict{{Policy: "a", Generation: 1,
			Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "False", Reason: "UnsupportedValue"}}}}}, wantStatus: "Unknown", wantReason: "NoStatus"},
		"ztunnel accepted it in a sidecar namespace": {o: outcome{Istio: []istioVerdict{accepted("a", 1, 1)}}, wantStatus: "True", wantReason: "Accepted"},
		"some silent":                      {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), {Policy: "b", Generation: 1}}}, wantStatus: "Unknown", wantReason: "PartialStatus"},
		"stale keeps the previous verdict": {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 3, 2)}}, prev: prev, wantStatus: "True", wantReason: "Accepted"},
		"a reason istiod wrote with spaces": {o: outcome{Ambient: true, Istio: []istioVerdict{{Policy: "a", Generation: 1,
			Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "False", Reason: "not ok!"}}}}}, wantStatus: "False", wantReason: "notok"},
		"an empty reason": {o: outcome{Ambient: true, Istio: []istioVerdict{{Policy: "a", Generation: 1,
			Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "False"}}}}}, wantStatus: "False", wantReason: "IstioNotAccepted"},
		// Policies bound to a Service (targetRefs) get WaypointAccepted,
		// never ZtunnelAccepted.
		"a Service's policy accepted by its waypoint": {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), waypoint("a-svc-db", 1, "True", "Accepted")}},
			wantStatus: "True", wantReason: "Accepted"},
		"a Service's policy accepted in a sidecar namespace": {o: outcome{Istio: []istioVerdict{waypoint("a-svc-db", 1, "True", "Accepted")}},
			wantStatus: "True", wantReason: "Accepted"},
		"a Service's policy ahead of its waypoint": {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), waypoint("a-svc-db", 1, "False", "AncestorNotBound")}},
			wantStatus: "True", wantReason: "Accepted"},
		"only Service policies, all ahead": {o: outcome{Ambient: true, Istio: []istioVerdict{waypoint("a-svc-db", 1, "False", "AncestorNotBound"), waypoint("a-svc-web", 1, "False", "AncestorNotBound")}},
			wantStatus: "True", wantReason: "Accepted"},
		"a Service's policy bound to nothing": {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), waypoint("a-svc-db", 1, "False", "TargetNotFound")}},
			wantStatus: "False", wantReason: "TargetNotFound"},
		"ztunnel's refusal beside a waiting Service policy": {o: outcome{Ambient: true, Istio: []istioVerdict{waypoint("a-svc-db", 1, "False", "AncestorNotBound"),
			{Policy: "b", Generation: 1, Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "False", Reason: "UnsupportedValue"}}}}},
			wantStatus: "False", wantReason: "UnsupportedValue"},
		"AncestorNotBound is a waypoint's reason only": {o: outcome{Ambient: true, Istio: []istioVerdict{{Policy: "a", Generation: 1,
			Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "False", Reason: "AncestorNotBound"}}}}}, wantStatus: "False", wantReason: "AncestorNotBound"},
		"a Service's policy not judged yet": {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), {Policy: "a-svc-db", Generation: 1}}},
			wantStatus: "Unknown", wantReason: "PartialStatus"},
		"a Service's policy judged on an older generation": {o: outcome{Ambient: true, Istio: []istioVerdict{accepted("a", 1, 1), waypoint("a-svc-db", 2, "True", "Accepted")}},
			prev: &metav1.Condition{Type: "IstioAccepted", Status: "Unknown", Reason: "PartialStatus", Message: "before"}, wantStatus: "Unknown", wantReason: "PartialStatus"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := istioCondition(tc.o, tc.prev)
			if got.Status != tc.wantStatus || got.Reason != tc.wantReason {
				t.Errorf("IstioAccepted = %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestBuildStatusKeepsTransitionTimes(t *testing.T) {
	o := outcome{Translation: translate.Translation{Action: translate.ActionApply}, applied: appliedPolicies{Policies: []string{"netpol-db"}}}
	first := buildStatus(&policyv1alpha1.NetworkPolicyTranslationStatus{}, 1, o, t0)
	again := buildStatus(&first, 1, o, t1)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("an unchanged outcome changed the status (-first,+again):\n%s", diff)
	}
	o.applied.Conflicts = []translate.Finding{finding(translate.Conflict, "held")}
	o.Ambient = true
	o.Istio = []istioVerdict{{Policy: "netpol-db", Generation: 1, Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "True", ObservedGeneration: 1}}}}
	changed := buildStatus(&again, 1, o, t1)
	for _, c := range changed.Conditions {
		if c.LastTransitionTime != t1 {
			t.Errorf("condition %s did not move its transition time on change", c.Type)
		}
	}
}

func TestStatusBounds(t *testing.T) {
	var findings []translate.Finding
	for i := range policyv1alpha1.MaxFindings + 20 {
		findings = append(findings, finding(translate.SourceNotInMesh, fmt.Sprintf("pod %03d", i)))
	}
	objs := make([]translate.ObjectRef, 50)
	for i := range objs {
		objs[i] = translate.ObjectRef{Kind: "Pod", Namespace: "shop", Name: fmt.Sprint(i)}
	}
	findings = append(findings, translate.Finding{Type: translate.TargetNotInMesh, Severity: translate.SeverityWarning, Message: strings.Repeat("é", 2000), Objects: objs})
	st := buildStatus(&policyv1alpha1.NetworkPolicyTranslationStatus{}, 1, outcome{Translation: translate.Translation{Action: translate.ActionApply, Findings: findings}}, t0)

	if st.FindingsCount != int32(len(findings)) {
		t.Errorf("findingsCount = %d, want %d", st.FindingsCount, len(findings))
	}
	if len(st.Findings) != policyv1alpha1.MaxFindings {
		t.Errorf("%d findings listed, want %d", len(st.Findings), policyv1alpha1.MaxFindings)
	}
	if got := findingTypes(st.Findings); len(got) != 2 {
		t.Errorf("listed types %v, want both types kept through the cut", got)
	}
	last := st.Findings[len(st.Findings)-1]
	if len(last.Message) > 2048 || !strings.HasSuffix(last.Message, "…") {
		t.Errorf("message of %d bytes not cut to 2048 with a mark", len(last.Message))
	}
	if len(last.Objects) != policyv1alpha1.MaxFindingObjects {
		t.Errorf("%d objects listed, want %d", len(last.Objects), policyv1alpha1.MaxFindingObjects)
	}
}

// The message of IstioAccepted names the conditions istiod wrote, and the
// Service policies that wait for their waypoint.
func TestIstioConditionWaypointMessage(t *testing.T) {
	o := outcome{Ambient: true, Istio: []istioVerdict{
		{Policy: "netpol-db", Generation: 1, Conditions: []istioConditionSpec{{Type: "ZtunnelAccepted", Status: "True", Reason: "Accepted", ObservedGeneration: 1}}},
		{Policy: "netpol-db-svc-db", Generation: 1, Conditions: []istioConditionSpec{{Type: "WaypointAccepted", Status: "True", Reason: "Accepted", ObservedGeneration: 1}}},
		{Policy: "netpol-db-svc-db-admin", Generation: 1, Conditions: []istioConditionSpec{{Type: "WaypointAccepted", Status: "False", Reason: "AncestorNotBound", Message: "Service shop/db-admin is not bound to a waypoint", ObservedGeneration: 1}}},
	}}
	got := istioCondition(o, nil)
	want := "istiod accepted 3 AuthorizationPolicies (WaypointAccepted, ZtunnelAccepted); waiting for a waypoint to be ready (WaypointAccepted=False, AncestorNotBound: the Service they are bound to uses no waypoint yet, so its traffic goes straight to the pods): netpol-db-svc-db-admin"
	if got.Status != metav1.ConditionTrue || got.Message != want {
		t.Errorf("IstioAccepted = %s/%s\n%s\nwant True/Accepted\n%s", got.Status, got.Reason, got.Message, want)
	}
	ready := readyCondition(outcome{Translation: translate.Translation{Action: translate.ActionApply}, applied: appliedPolicies{Policies: []string{"a", "b", "c"}}}, nil, got)
	if ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %s/%s while a Service's policy waits for its waypoint", ready.Status, ready.Reason)
	}
}
