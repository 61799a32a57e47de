// Package perf measures the operator on a real control plane (envtest):
// convergence, reaction to pod relabels, API writes and cache memory. The
// control plane starts only when benchmarks are requested (`make bench`),
// so `go test ./...` passes through in no time.
package perf_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

var (
	env *envtest.Environment
	cfg *rest.Config
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	var err error
	if env, err = testenv.New(); err == nil {
		cfg, err = env.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "perf: starting the control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "perf: stopping the control plane:", err)
	}
	os.Exit(code)
}
