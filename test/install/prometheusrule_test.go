package install_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// rulesFile holds the alerting rules: the chart's PrometheusRule ships it
// as its spec, and `make check-alerts` checks and unit-tests it with
// promtool (test/prometheus/rules_test.yaml).
const rulesFile = "dist/chart/files/prometheus-rules.yaml"

// The alerts that docs/operations.md documents.
var alerts = []string{"Netpol2authzIdentityPending", "Netpol2authzTranslationFailing"}

// readRules returns the rule groups of rulesFile, decoded as the chart's
// rendering is.
func readRules(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := utilyaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rules
}

// The PrometheusRule is off by default, and on with prometheus.rules.enable
// (and the metrics it alerts on), with or without the ServiceMonitor. Its
// spec is rulesFile, field for field: what promtool tests is what the chart
// ships.
func TestChartPrometheusRule(t *testing.T) {
	const name = "netpol2authz-alerts"
	want := readRules(t)
	cases := map[string]struct {
		values string
		on     bool
		labels map[string]string // beside the chart's own
	}{
		"off by default":       {},
		"ServiceMonitor only":  {values: "prometheus: {enable: true}"},
		"no metrics, no rules": {values: "metrics: {enable: false}\nprometheus: {rules: {enable: true}}"},
		"rules":                {values: "prometheus: {rules: {enable: true}}", on: true},
		"rules and ServiceMonitor, with the labels Prometheus selects": {
			values: "prometheus: {enable: true, labels: {release: prom}, rules: {enable: true}}",
			on:     true, labels: map[string]string{"release": "prom"},
		},
		"rules over plain-HTTP metrics": {values: "metrics: {secure: false}\nprometheus: {rules: {enable: true}}", on: true},
	}
	for tcName, tc := range cases {
		t.Run(tcName, func(t *testing.T) {
			rules := ofKind(parse(t, helmTemplate(t, tc.values)), "PrometheusRule")
			if !tc.on {
				if len(rules) != 0 {
					t.Errorf("unexpected PrometheusRule %s", rules[0].GetName())
				}
				return
			}
			if len(rules) != 1 {
				t.Fatalf("%d PrometheusRules, want 1", len(rules))
			}
			r := rules[0]
			if r.GetAPIVersion() != "monitoring.coreos.com/v1" || r.GetName() != name || r.GetNamespace() != namespace {
				t.Errorf("PrometheusRule %s %s/%s, want monitoring.coreos.com/v1 %s/%s", r.GetAPIVersion(), r.GetNamespace(), r.GetName(), namespace, name)
			}
			labels := r.GetLabels()
			for k, v := range tc.labels {
				if labels[k] != v {
					t.Errorf("labels %v lack %s=%s (prometheus.labels)", labels, k, v)
				}
			}
			if labels["app.kubernetes.io/managed-by"] != "Helm" {
				t.Errorf("labels %v lack the chart's", labels)
			}
			if diff := cmp.Diff(want, r.Object["spec"]); diff != "" {
				t.Errorf("spec differs from %s (-file +chart):\n%s", rulesFile, diff)
			}
		})
	}
}

// Every rule of rulesFile is one of the documented alerts, each once, with
// a severity, a summary and a description.
func TestPrometheusRulesAlerts(t *testing.T) {
	groups, _, err := unstructured.NestedSlice(readRules(t), "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("%s has no rule groups (%v)", rulesFile, err)
	}
	var got []string
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			r := r.(map[string]any)
			name, _, _ := unstructured.NestedString(r, "alert")
			got = append(got, name)
			if s, _, _ := unstructured.NestedString(r, "labels", "severity"); s == "" {
				t.Errorf("%s: no severity label", name)
			}
			for _, a := range []string{"summary", "description"} {
				if s, _, _ := unstructured.NestedString(r, "annotations", a); s == "" {
					t.Errorf("%s: no %s annotation", name, a)
				}
			}
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(alerts, got); diff != "" {
		t.Errorf("alerts of %s (-want +got):\n%s", rulesFile, diff)
	}
}
