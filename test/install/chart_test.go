package install_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestChartLints(t *testing.T) {
	if out, err := run(t, tool(t, "HELM", "helm"), "lint", "--strict", chartDir); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}

// With its defaults, the chart installs what config/default installs (but
// the namespace, which `helm install --create-namespace` makes): the same
// objects under the same names, the CRD and the RBAC rules that
// `make manifests` generates (copied by hack/sync-chart.sh), and the same
// manager pod.
func TestChartMatchesConfig(t *testing.T) {
	want := parse(t, kustomize(t, "config/default"))
	got := parse(t, helmTemplate(t, ""))
	for _, w := range want {
		if w.GetKind() == "Namespace" {
			continue
		}
		id := w.GetKind() + " " + w.GetName()
		g := find(got, w.GetKind(), w.GetName())
		if g == nil {
			t.Errorf("the chart has no %s", id)
			continue
		}
		if g.GetNamespace() != w.GetNamespace() {
			t.Errorf("%s: namespace %q, want %q", id, g.GetNamespace(), w.GetNamespace())
		}
		var fields [][]string
		switch w.GetKind() {
		case "CustomResourceDefinition":
			fields = [][]string{{"spec"}, {"metadata", "annotations", "controller-gen.kubebuilder.io/version"}}
		case "Role", "ClusterRole":
			fields = [][]string{{"rules"}, {"metadata", "labels", "rbac.authorization.k8s.io/aggregate-to-view"}}
		case "RoleBinding", "ClusterRoleBinding":
			fields = [][]string{{"roleRef"}, {"subjects"}}
		case "Service":
			fields = [][]string{{"spec", "ports"}}
		}
		for _, f := range fields {
			wv, _, _ := unstructured.NestedFieldNoCopy(w.Object, f...)
			gv, _, _ := unstructured.NestedFieldNoCopy(g.Object, f...)
			if diff := cmp.Diff(wv, gv); diff != "" {
				t.Errorf("%s: %s differs from config/ (run `make build-installer` after `make manifests`) (-config +chart):\n%s", id, strings.Join(f, "."), diff)
			}
		}
	}
	for _, g := range got {
		if find(want, g.GetKind(), g.GetName()) == nil {
			t.Errorf("the chart's %s %s is not in config/default", g.GetKind(), g.GetName())
		}
	}

	wd, gd := managerDeployment(t, want), managerDeployment(t, got)
	wc, gc := wd.Spec.Template.Spec.Containers[0], gd.Spec.Template.Spec.Containers[0]
	for _, f := range []struct {
		name      string
		want, got any
	}{
		{"replicas", wd.Spec.Replicas, gd.Spec.Replicas},
		{"pod securityContext", wd.Spec.Template.Spec.SecurityContext, gd.Spec.Template.Spec.SecurityContext},
		{"terminationGracePeriodSeconds", wd.Spec.Template.Spec.TerminationGracePeriodSeconds, gd.Spec.Template.Spec.TerminationGracePeriodSeconds},
		{"volumes", wd.Spec.Template.Spec.Volumes, gd.Spec.Template.Spec.Volumes},
		{"command", wc.Command, gc.Command},
		{"ports", wc.Ports, gc.Ports},
		{"securityContext", wc.SecurityContext, gc.SecurityContext},
		{"resources", wc.Resources, gc.Resources},
		{"livenessProbe", wc.LivenessProbe, gc.LivenessProbe},
		{"readinessProbe", wc.ReadinessProbe, gc.ReadinessProbe},
		{"volumeMounts", wc.VolumeMounts, gc.VolumeMounts},
		{"imagePullPolicy", wc.ImagePullPolicy, gc.ImagePullPolicy},
		{"env", wc.Env, gc.Env},
	} {
		if diff := cmp.Diff(f.want, f.got); diff != "" {
			t.Errorf("manager %s differs (-config +chart):\n%s", f.name, diff)
		}
	}
	for _, a := range wc.Args {
		if !hasArg(gc.Args, a) {
			t.Errorf("the chart's manager args %q lack %s", gc.Args, a)
		}
	}
}

// The chart's copies of what `make manifests` generates are the generated
// files, field for field: each CRD of config/crd/bases and the rules of
// config/rbac/role.yaml.
func TestChartHasGeneratedManifests(t *testing.T) {
	chart := parse(t, helmTemplate(t, ""))
	files, err := filepath.Glob(filepath.Join(root(t), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRD in config/crd/bases (%v)", err)
	}
	crds := ofKind(chart, "CustomResourceDefinition")
	if len(crds) != len(files) {
		t.Errorf("the chart has %d CRDs, config/crd/bases %d: run `make build-installer`", len(crds), len(files))
	}
	files = append(files, filepath.Join(root(t), "config", "rbac", "role.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		f, _ = filepath.Rel(root(t), f)
		for _, want := range parse(t, data) {
			field, name := "spec", want.GetName()
			if want.GetKind() == "ClusterRole" {
				field, name = "rules", releaseName+"-"+name
			}
			got := find(chart, want.GetKind(), name)
			if got == nil {
				t.Errorf("the chart has no %s %s (from %s): run `make build-installer`", want.GetKind(), name, f)
				continue
			}
			if diff := cmp.Diff(want.Object[field], got.Object[field]); diff != "" {
				t.Errorf("%s %s: %s differs from %s: run `make build-installer` (-config +chart):\n%s", want.GetKind(), name, field, f, diff)
			}
		}
	}
}

func TestChartToggles(t *testing.T) {
	const (
		crd           = "CustomResourceDefinition networkpolicytranslations.policy.netpol2authz.io"
		metricsSvc    = "Service netpol2authz-controller-manager-metrics-service"
		metricsAuth   = "ClusterRole netpol2authz-metrics-auth-role"
		metricsAuthRB = "ClusterRoleBinding netpol2authz-metrics-auth-rolebinding"
		metricsReader = "ClusterRole netpol2authz-metrics-reader"
		monitor       = "ServiceMonitor netpol2authz-controller-manager-metrics-monitor"
		viewer        = "ClusterRole netpol2authz-networkpolicytranslation-viewer-role"
	)
	cases := map[string]struct {
		values     string
		want, not  []string
		crdNotKept bool
		metricsSvc string // the metrics port's name
	}{
		"defaults": {
			want:       []string{crd, metricsSvc, metricsAuth, metricsAuthRB, metricsReader, viewer},
			not:        []string{monitor},
			metricsSvc: "https",
		},
		"CRD not kept on uninstall": {
			values: "crd: {keep: false}",
			want:   []string{crd}, crdNotKept: true, metricsSvc: "https",
		},
		"CRD not installed": {
			values: "crd: {enable: false}",
			not:    []string{crd}, metricsSvc: "https",
		},
		"no metrics: no Service, metrics RBAC nor ServiceMonitor": {
			values: "metrics: {enable: false}\nprometheus: {enable: true}",
			not:    []string{metricsSvc, metricsAuth, metricsAuthRB, metricsReader, monitor},
		},
		"plain-HTTP metrics: nothing to authorize": {
			values: "metrics: {secure: false}",
			want:   []string{metricsSvc}, not: []string{metricsAuth, metricsAuthRB, metricsReader},
			metricsSvc: "http",
		},
		"ServiceMonitor": {
			values: "prometheus: {enable: true, labels: {release: prom}}",
			want:   []string{monitor}, metricsSvc: "https",
		},
		"no helper roles": {
			values: "rbacHelpers: {enable: false}",
			not:    []string{viewer}, metricsSvc: "https",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := parse(t, helmTemplate(t, tc.values))
			has := func(id string) *unstructured.Unstructured {
				kind, name, _ := strings.Cut(id, " ")
				return find(objs, kind, name)
			}
			for _, id := range tc.want {
				if has(id) == nil {
					t.Errorf("no %s", id)
				}
			}
			for _, id := range tc.not {
				if has(id) != nil {
					t.Errorf("unexpected %s", id)
				}
			}
			if c := has(crd); c != nil {
				if kept := c.GetAnnotations()["helm.sh/resource-policy"] == "keep"; kept == tc.crdNotKept {
					t.Errorf("CRD kept on uninstall: %v, want %v", kept, !tc.crdNotKept)
				}
			}
			if s := has(metricsSvc); s != nil {
				var port string
				if ports, _, _ := unstructured.NestedSlice(s.Object, "spec", "ports"); len(ports) > 0 {
					port, _ = ports[0].(map[string]any)["name"].(string)
				}
				if port != tc.metricsSvc {
					t.Errorf("metrics port named %q, want %q", port, tc.metricsSvc)
				}
			}
			if m := has(monitor); m != nil && m.GetLabels()["release"] != "prom" {
				t.Errorf("ServiceMonitor labels %v lack prometheus.labels", m.GetLabels())
			}
		})
	}
}

func TestChartImage(t *testing.T) {
	cases := map[string]struct{ values, want string }{
		"appVersion (VERSION) by default": {"", imageRepository + ":" + releaseVersion(t)},
		"a tag":                           {"manager: {image: {tag: v1.2.3}}", "ghcr.io/netpol2authz/netpol2authz:v1.2.3"},
		"a digest": {
			"manager: {image: {repository: example.com/np2a, tag: 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}}",
			"example.com/np2a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := managerDeployment(t, parse(t, helmTemplate(t, tc.values)))
			if got := d.Spec.Template.Spec.Containers[0].Image; got != tc.want {
				t.Errorf("image %s, want %s", got, tc.want)
			}
		})
	}
}

func TestChartRejectsInvalidValues(t *testing.T) {
	cases := map[string]struct{ values, want string }{
		"unknown log level":    {"manager: {logLevel: loud}", "manager.logLevel"},
		"zero max port range":  {"manager: {maxPortRange: 0}", "manager.maxPortRange"},
		"text max port range":  {"manager: {maxPortRange: many}", "manager.maxPortRange"},
		"negative port range":  {"manager: {maxPortRange: -1}", "manager.maxPortRange"},
		"fractional max range": {"manager: {maxPortRange: 1.5}", "manager.maxPortRange"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := helmTemplateErr(t, releaseName, namespace, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}
