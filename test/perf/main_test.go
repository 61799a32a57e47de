// Package perf measures the operator on a real control plane (envtest):
// convergence, reaction to pod relabels, API writes, the process's memory and
// the pod cache's. Each size starts its own control plane, and only when
// benchmarks are requested (`make bench`), so `go test ./...` passes through
// in no time.
package perf_test

import (
	"flag"
	"os"
	"testing"
)

var (
	// benchmarking says benchmarks were asked for (-test.bench).
	benchmarking bool
	// binDir holds the operator's binary, built once per run.
	binDir string
)

func TestMain(m *testing.M) {
	flag.Parse()
	f := flag.Lookup("test.bench")
	benchmarking = f != nil && f.Value.String() != ""
	var err error
	if binDir, err = os.MkdirTemp("", "netpol2authz-bench-"); err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}
