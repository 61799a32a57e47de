// Package install_test checks what installs netpol2authz in a cluster: the
// kustomize configuration (config/), the installer rendered from it
// (dist/install.yaml), the Helm chart (dist/chart) and the image (Dockerfile,
// .dockerignore).
//
// kustomize and helm are the pinned binaries that `make test` builds into
// bin/ and passes in the KUSTOMIZE and HELM environment variables. Without
// them the tests fail: they never skip.
package install_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

const (
	// The release name and namespace that make the chart's objects carry the
	// names of dist/install.yaml's.
	releaseName = "netpol2authz"
	namespace   = "netpol2authz-system"
	chartDir    = "dist/chart"
	installer   = "dist/install.yaml"
)

var repoRoot = sync.OnceValues(testenv.RepoRoot)

// root returns the repository's root directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := repoRoot()
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return dir
}

// tool returns the binary named by the environment variable env, which
// `make target` builds.
func tool(t *testing.T, env, target string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run `make test`, or build it with `make %s` and set %s to the binary in bin/", env, target, env)
	}
	abs, err := exec.LookPath(p)
	if err != nil {
		t.Fatalf("%s=%s is not an executable (%v): run `make %s`", env, p, err, target)
	}
	return abs
}

// run runs a command in the repository root and returns its standard output.
func run(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	return runStdin(t, "", name, args...)
}

// runStdin is run with stdin as the command's standard input.
func runStdin(t *testing.T, stdin, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root(t)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, errors.New(filepath.Base(name) + " " + strings.Join(args, " ") + ": " + err.Error() + "\n" + stderr.String())
	}
	return out, nil
}

// kustomize renders a kustomization directory of the repository.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	out, err := run(t, tool(t, "KUSTOMIZE", "kustomize"), "build", dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helmTemplate renders the chart as release netpol2authz in
// netpol2authz-system with the given values (YAML; empty for the defaults).
func helmTemplate(t *testing.T, values string) []byte {
	t.Helper()
	out, err := helmTemplateErr(t, releaseName, namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func helmTemplateErr(t *testing.T, release, ns, values string) ([]byte, error) {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", ns}
	if values != "" {
		args = append(args, "--values", "-") // a file name with a comma would not do
	}
	return runStdin(t, values, tool(t, "HELM", "helm"), args...)
}

// parse splits a multi-document YAML stream into objects.
func parse(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading YAML: %v", err)
		}
		var m map[string]any
		if err := utilyaml.UnmarshalStrict(doc, &m); err != nil {
			t.Fatalf("parsing YAML: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of that kind and name, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// ofKind returns the objects of a kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// managerDeployment returns the only Deployment, decoded strictly: a field
// the API does not know (a typo in a template) fails the test.
func managerDeployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	ds := ofKind(objs, "Deployment")
	if len(ds) != 1 {
		t.Fatalf("want 1 Deployment, got %d", len(ds))
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(ds[0].Object, &d, true); err != nil {
		t.Fatalf("Deployment %s: %v", ds[0].GetName(), err)
	}
	return &d
}
