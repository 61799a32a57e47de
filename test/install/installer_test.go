package install_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// dist/install.yaml is what `make build-installer` renders from
// config/default: a stale copy fails here.
func TestInstallerIsUpToDate(t *testing.T) {
	want := kustomize(t, "config/default")
	got, err := os.ReadFile(filepath.Join(root(t), installer))
	if err != nil {
		t.Fatalf("%v: run `make build-installer`", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `make build-installer` (-want +got):\n%s", installer,
			cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
	}
}

func TestEveryKustomizationBuilds(t *testing.T) {
	for _, dir := range []string{"config/crd", "config/rbac", "config/manager", "config/default", "config/samples", "config/prometheus"} {
		t.Run(dir, func(t *testing.T) {
			if len(parse(t, kustomize(t, dir))) == 0 {
				t.Errorf("%s renders no object", dir)
			}
		})
	}
}

// The objects of an installation refer to each other by name and labels:
// every reference must resolve.
func TestReferencesResolve(t *testing.T) {
	renders := map[string]func(t *testing.T) []byte{
		"dist/install.yaml": func(t *testing.T) []byte {
			data, err := os.ReadFile(filepath.Join(root(t), installer))
			if err != nil {
				t.Fatal(err)
			}
			return data
		},
		"config/default with the prometheus option": kustomizeWithPrometheus,
		"chart defaults":        func(t *testing.T) []byte { return helmTemplate(t, "") },
		"chart with prometheus": func(t *testing.T) []byte { return helmTemplate(t, "prometheus: {enable: true}") },
		"chart with plain-HTTP metrics and prometheus": func(t *testing.T) []byte {
			return helmTemplate(t, "prometheus: {enable: true}\nmetrics: {secure: false, port: 8080}")
		},
		"chart with another release name": func(t *testing.T) []byte {
			out, err := helmTemplateErr(t, "np2a", "np2a-system", "prometheus: {enable: true}")
			if err != nil {
				t.Fatal(err)
			}
			return out
		},
	}
	for name, render := range renders {
		t.Run(name, func(t *testing.T) { checkReferences(t, parse(t, render(t))) })
	}
}

// kustomizeWithPrometheus renders config/default with its [PROMETHEUS]
// line uncommented, as its comment tells users to do.
func kustomizeWithPrometheus(t *testing.T) []byte {
	t.Helper()
	tmp := t.TempDir()
	if err := os.CopyFS(filepath.Join(tmp, "config"), os.DirFS(filepath.Join(root(t), "config"))); err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(tmp, "config", "default", "kustomization.yaml")
	data, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	on := strings.Replace(string(data), "#- ../prometheus", "- ../prometheus", 1)
	if on == string(data) {
		t.Fatal("config/default/kustomization.yaml has no `#- ../prometheus` line to uncomment")
	}
	if err := os.WriteFile(k, []byte(on), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, tool(t, "KUSTOMIZE", "kustomize"), "build", filepath.Join(tmp, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ofKind(parse(t, out), "ServiceMonitor")) != 1 {
		t.Fatal("the prometheus option adds no ServiceMonitor")
	}
	return out
}

func checkReferences(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	exists := func(kind, ns, name string) bool {
		o := find(objs, kind, name)
		return o != nil && o.GetNamespace() == ns
	}
	for _, o := range objs {
		id := o.GetKind() + " " + o.GetName()
		switch o.GetKind() {
		case "RoleBinding", "ClusterRoleBinding":
			ref, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
			kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
			ns := ""
			if kind == "Role" {
				ns = o.GetNamespace()
			}
			if !exists(kind, ns, ref) {
				t.Errorf("%s refers to the missing %s %s", id, kind, ref)
			}
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				s := s.(map[string]any)
				if s["kind"] == "ServiceAccount" && !exists("ServiceAccount", s["namespace"].(string), s["name"].(string)) {
					t.Errorf("%s binds the missing ServiceAccount %s/%s", id, s["namespace"], s["name"])
				}
			}
		case "Deployment":
			d := managerDeployment(t, objs)
			if sa := d.Spec.Template.Spec.ServiceAccountName; !exists("ServiceAccount", d.Namespace, sa) {
				t.Errorf("%s runs as the missing ServiceAccount %s", id, sa)
			}
			if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("%s selector %v does not select its pods %v", id, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
			}
		case "Service":
			d := managerDeployment(t, objs)
			sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector")
			if len(sel) == 0 || !subset(sel, d.Spec.Template.Labels) || o.GetNamespace() != d.Namespace {
				t.Errorf("%s selector %v does not select the manager's pods %v", id, sel, d.Spec.Template.Labels)
			}
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			for _, p := range ports {
				target, _ := p.(map[string]any)["targetPort"].(int64)
				if !hasContainerPort(d.Spec.Template.Spec.Containers[0], int32(target)) {
					t.Errorf("%s targets port %v, which the manager does not declare", id, p.(map[string]any)["targetPort"])
				}
			}
		case "ServiceMonitor":
			sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
			endpoints, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
			var matched int
			for _, svc := range ofKind(objs, "Service") {
				if svc.GetNamespace() != o.GetNamespace() || len(sel) == 0 || !subset(sel, svc.GetLabels()) {
					continue
				}
				matched++
				ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
				for _, e := range endpoints {
					e := e.(map[string]any)
					var ok bool
					for _, p := range ports {
						ok = ok || p.(map[string]any)["name"] == e["port"]
					}
					if !ok || e["scheme"] != e["port"] {
						t.Errorf("%s scrapes port %v over %v: Service %s has no such port, or the scheme is not the port's", id, e["port"], e["scheme"], svc.GetName())
					}
				}
			}
			if matched != 1 {
				t.Errorf("%s selects %d Services, want the metrics Service", id, matched)
			}
		}
	}
}

// subset says whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if w, ok := labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}
