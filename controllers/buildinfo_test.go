package controllers

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netpol2authz/netpol2authz/internal/version"
)

// netpol2authz_build_info is served from controller-runtime's registry, with
// the version set after this package's init (as the main package sets it).
func TestBuildInfoMetric(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })
	version.Version = "v9.8.7"
	commit := version.Get().Commit
	want := `
# HELP netpol2authz_build_info Always 1; the labels are the running binary's release, Go release and commit (unknown when not recorded).
# TYPE netpol2authz_build_info gauge
netpol2authz_build_info{commit="` + commit + `",goversion="` + runtime.Version() + `",version="v9.8.7"} 1
`
	if err := testutil.GatherAndCompare(metrics.Registry, strings.NewReader(want), "netpol2authz_build_info"); err != nil {
		t.Error(err)
	}
}
