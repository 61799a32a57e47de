package operator

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
	active := translate.Translation{Active: true, Mode: translate.ModeEnforce, Fidelity: translate.FidelityPermissive, Principals: 2, Rules: 1,
		Policies: nil, Findings: []translate.Finding{finding(translate.NoPodsSelected, "no pod")}}
	tests := map[string]struct {
		o         Outcome
		wantReady metav1.Condition
		wantExact metav1.Condition
	}{
		"applied and exact (an Info finding)": {
			o:         Outcome{Translation: active, Applied: Applied{Policies: []string{"netpol-db"}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "True", Reason: "Applied", Message: "1 AuthorizationPolicy in place"},
			wantExact: metav1.Condition{Type: "Exact", Status: "True", Reason: "Exact", Message: "Istio allows exactly what the NetworkPolicy allows, for TCP"},
		},
		"a conflict": {
			o: Outcome{Translation: active, Applied: Applied{Conflicts: []translate.Finding{finding(translate.Conflict, "held")}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "False", Reason: "Conflict",
				Message: "0 of 0 AuthorizationPolicies in place; 1 held by objects netpol2authz does not own (see the Conflict findings)"},
			wantExact: metav1.Condition{Type: "Exact", Status: "False", Reason: "Conflict", Message: "1 finding of Warning or Error severity; see status.findings"},
		},
		"an invalid annotation": {
			o:         Outcome{Translation: translate.Translation{Findings: []translate.Finding{finding(translate.InvalidAnnotation, "bad mode")}}},
			wantReady: metav1.Condition{Type: "Ready", Status: "False", Reason: "InvalidAnnotation", Message: "bad mode"},
			wantExact: metav1.Condition{Type: "Exact", Status: "False", Reason: "InvalidAnnotation", Message: "1 finding of Warning or Error severity; see status.findings"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := BuildStatus(&policyv1alpha1.NetworkPolicyTranslationStatus{}, 4, tc.o, t0)
			for _, c := range []*metav1.Condition{&tc.wantReady, &tc.wantExact} {
				c.ObservedGeneration, c.LastTransitionTime = 4, t0
			}
			if diff := cmp.Diff([]metav1.Condition{tc.wantExact, tc.wantReady}, st.Conditions); diff != "" {
				t.Errorf("conditions (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestBuildStatusKeepsTransitionTimes(t *testing.T) {
	o := Outcome{Translation: translate.Translation{Active: true}, Applied: Applied{Policies: []string{"netpol-db"}}}
	first := BuildStatus(&policyv1alpha1.NetworkPolicyTranslationStatus{}, 1, o, t0)
	again := BuildStatus(&first, 1, o, t1)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("an unchanged outcome changed the status (-first,+again):\n%s", diff)
	}
	o.Applied.Conflicts = []translate.Finding{finding(translate.Conflict, "held")}
	changed := BuildStatus(&again, 1, o, t1)
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
	st := BuildStatus(&policyv1alpha1.NetworkPolicyTranslationStatus{}, 1, Outcome{Translation: translate.Translation{Active: true, Findings: findings}}, t0)

	if st.FindingsCount != int32(len(findings)) {
		t.Errorf("findingsCount = %d, want %d", st.FindingsCount, len(findings))
	}
	if len(st.Findings) != policyv1alpha1.MaxFindings {
		t.Errorf("%d findings listed, want %d", len(st.Findings), policyv1alpha1.MaxFindings)
	}
	if got := FindingTypes(st.Findings); len(got) != 2 {
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

func TestRetired(t *testing.T) {
	tests := map[string]struct {
		t    translate.Translation
		want bool
	}{
		"active":             {translate.Translation{Active: true}, false},
		"not opted in":       {translate.Translation{}, true},
		"root namespace":     {translate.Translation{Findings: []translate.Finding{finding(translate.RootNamespaceSkipped, "root")}}, true},
		"invalid annotation": {translate.Translation{Findings: []translate.Finding{finding(translate.InvalidAnnotation, "bad")}}, false},
		"invalid policy":     {translate.Translation{Findings: []translate.Finding{finding(translate.InvalidPolicy, "bad")}}, false},
	}
	for name, tc := range tests {
		if got := Retired(tc.t); got != tc.want {
			t.Errorf("%s: Retired = %v, want %v", name, got, tc.want)
		}
	}
}
