package install_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

const fieldOwner = client.FieldOwner("netpol2authz-install-test")

// warnings collects the API server's warnings: a field it does not know, a
// deprecated API, or a pod template that would violate the namespace's Pod
// Security level.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	msgs := w.msgs
	w.msgs = nil
	return msgs
}

// dist/install.yaml, then the chart, applied to a real API server (the
// test control plane, without the project's CRD: the installer brings it)
// with server-side apply, as `make deploy` and Helm do: every object must
// be accepted without a warning.
func TestInstallAppliesToAPIServer(t *testing.T) {
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	crdBases := filepath.Join(root(t), "config", "crd", "bases")
	env.CRDDirectoryPaths = slices.DeleteFunc(env.CRDDirectoryPaths, func(p string) bool { return p == crdBases })
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the test control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the test control plane: %v", err)
		}
	})
	warns := &warnings{}
	cfg.WarningHandlerWithContext = warns
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	data, err := os.ReadFile(filepath.Join(root(t), installer))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("dist/install.yaml", func(t *testing.T) {
		objs := parse(t, data)
		applyAll(ctx, t, c, warns, objs)
		checkPodSecurityIsChecked(ctx, t, c, warns, objs)
	})
	t.Run("operator with the installed RBAC", func(t *testing.T) {
		admin, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		checkOperatorRunsWithInstalledRBAC(ctx, t, env, admin)
	})
	t.Run("chart", func(t *testing.T) {
		const ns = "np2a-helm"
		// Helm does not make the release namespace: the user does, labelled.
		applyAll(ctx, t, c, warns, []*unstructured.Unstructured{restrictedNamespace(ns)})
		out, err := helmTemplateErr(t, "np2a", ns, "")
		if err != nil {
			t.Fatal(err)
		}
		applyAll(ctx, t, c, warns, parse(t, out))
	})
}

// applyAll applies the objects, CRDs first (waiting until they serve),
// then namespaces, then the rest, and reads each back.
func applyAll(ctx context.Context, t *testing.T, c client.Client, warns *warnings, objs []*unstructured.Unstructured) {
	t.Helper()
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			return 0
		case "Namespace":
			return 1
		}
		return 2
	}
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	for _, o := range objs {
		id := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), fieldOwner, client.ForceOwnership); err != nil {
			t.Errorf("applying %s: %v", id, err)
			continue
		}
		if w := warns.take(); len(w) > 0 {
			t.Errorf("applying %s: warnings:\n%s", id, strings.Join(w, "\n"))
		}
		if o.GetKind() == "CustomResourceDefinition" {
			waitEstablished(ctx, t, c, o.GetName())
		}
		back := &unstructured.Unstructured{}
		back.SetGroupVersionKind(o.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), back); err != nil {
			t.Errorf("reading back %s: %v", id, err)
		}
	}
}

func waitEstablished(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

// checkPodSecurityIsChecked proves that the API server checks the
// namespace's Pod Security level, so that no warning above means something:
// the manager Deployment, made privileged, draws a warning (dry run).
func checkPodSecurityIsChecked(ctx context.Context, t *testing.T, c client.Client, warns *warnings, objs []*unstructured.Unstructured) {
	t.Helper()
	d := ofKind(objs, "Deployment")[0].DeepCopy()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["securityContext"] = map[string]any{"privileged": true}
	if err := unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(d), fieldOwner, client.ForceOwnership, client.DryRunAll); err != nil {
		t.Fatalf("dry-run applying a privileged manager: %v", err)
	}
	w := warns.take()
	if !slices.ContainsFunc(w, func(m string) bool { return strings.Contains(m, "PodSecurity") }) {
		t.Errorf("a privileged manager drew no PodSecurity warning (got %q): the namespace's level is not checked", w)
	}
}

func restrictedNamespace(name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Namespace",
		"metadata": map[string]any{
			"name":   name,
			"labels": map[string]any{"pod-security.kubernetes.io/enforce": "restricted"},
		},
	}}
}
