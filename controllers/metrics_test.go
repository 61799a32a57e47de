package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

func TestGaugesFollowFindingsThatClear(t *testing.T) {
	a := types.NamespacedName{Namespace: "metrics-test", Name: "a"}
	b := types.NamespacedName{Namespace: "metrics-test", Name: "b"}
	shared := func(n int) outcome {
		o := outcome{Translation: translate.Translation{Action: translate.ActionApply, Principals: 2}, applied: appliedPolicies{Policies: []string{"p"}}}
		for range n {
			o.Translation.Findings = append(o.Translation.Findings, finding(translate.SharedIdentity, "shared"))
		}
		return o
	}
	value := func() float64 {
		return testutil.ToFloat64(findingsGauge.WithLabelValues("SharedIdentity", "metrics-test"))
	}
	policies0, principals0 := testutil.ToFloat64(policiesGauge), testutil.ToFloat64(principalsGauge)

	recordTranslation(a, shared(2))
	recordTranslation(b, shared(1))
	if v := value(); v != 3 {
		t.Errorf("findings = %v, want 3", v)
	}
	recordTranslation(a, shared(0))
	if v := value(); v != 1 {
		t.Errorf("findings after a's cleared = %v, want 1", v)
	}
	forgetTranslation(b)
	forgetTranslation(a)
	if n := testutil.CollectAndCount(findingsGauge); n != 0 {
		t.Errorf("%d findings series left after every policy went, want 0", n)
	}
	if d := testutil.ToFloat64(policiesGauge) - policies0; d != 0 {
		t.Errorf("generated policies moved by %v after every policy went", d)
	}
	if d := testutil.ToFloat64(principalsGauge) - principals0; d != 0 {
		t.Errorf("principals moved by %v after every policy went", d)
	}
}
