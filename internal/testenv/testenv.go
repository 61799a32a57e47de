// Package testenv starts the real control plane (kube-apiserver and etcd,
// built from source by `make envtest`) with the project's CRDs and Istio's
// installed. Tests, benchmarks and the demo share it.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot returns the directory of the project's go.mod, searched upwards
// from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/netpol2authz/netpol2authz\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the netpol2authz repository")
		}
		dir = parent
	}
}

// moduleDir is the directory of module, at the version the project's
// go.mod (in root) requires.
func moduleDir(root, module string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the %s module: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// IstioCRDs returns the path of Istio's CRDs in the istio.io/api module the
// project depends on.
func IstioCRDs(root string) (string, error) {
	dir, err := moduleDir(root, "istio.io/api")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("istio CRDs: %w", err)
	}
	return path, nil
}

// Assets returns the directory holding kube-apiserver and etcd:
// KUBEBUILDER_ASSETS when set, else the newest build under bin/k8s/.
func Assets(root string) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "kube-*"))
	var ready []string
	for _, d := range dirs {
		if isExec(filepath.Join(d, "kube-apiserver")) && isExec(filepath.Join(d, "etcd")) {
			ready = append(ready, d)
		}
	}
	if len(ready) == 0 {
		return "", errors.New("no kube-apiserver/etcd found: run `make envtest` (or `make test`), or set KUBEBUILDER_ASSETS")
	}
	sort.Strings(ready)
	return ready[len(ready)-1], nil
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// New returns an envtest environment with the project's CRDs and Istio's.
// Start it with Start and stop it with Stop.
func New() (*envtest.Environment, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	istio, err := IstioCRDs(root)
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases"), istio},
		ErrorIfCRDPathMissing: true,
	}, nil
}
