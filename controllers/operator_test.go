package controllers_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/netpol2authz/netpol2authz/controllers"
)

const istioNamespace = "istio-system"

// operatorRun is one running operator: a manager with the controller, whose
// API writes are counted.
type operatorRun struct {
	stop   context.CancelFunc
	done   chan struct{}
	writes *atomic.Int64
	// perNamespace counts the writes to objects of each namespace.
	perNamespace sync.Map
}

// WritesIn is the number of writes the operator sent for objects of
// namespace ns (Events about them included), so that a spec is not
// disturbed by what the operator does for other specs' namespaces.
func (o *operatorRun) WritesIn(ns string) int64 {
	n, ok := o.perNamespace.Load(ns)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// Writes is the number of POST, PUT, PATCH and DELETE requests the operator
// has sent: its client, its cache and its event recorder share the config.
func (o *operatorRun) Writes() int64 { return o.writes.Load() }

// Stop stops the manager and waits for it to return.
func (o *operatorRun) Stop() {
	o.stop()
	Eventually(o.done, timeout, interval).Should(BeClosed())
}

func startOperator() *operatorRun {
	return startOperatorWith(controllers.Settings{IstioNamespace: istioNamespace})
}

// startOperatorWith starts an operator with settings; fail, when set, may
// fail its requests (it sees each before it is sent).
func startOperatorWith(settings controllers.Settings, fail ...func(*http.Request) error) *operatorRun {
	run := &operatorRun{done: make(chan struct{}), writes: &atomic.Int64{}}
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		counted := countWrites(run.writes)(rt)
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			for _, f := range fail {
				if err := f(req); err != nil {
					return nil, err
				}
			}
			if ns := namespaceOf(req); ns != "" && req.Method != http.MethodGet {
				n, _ := run.perNamespace.LoadOrStore(ns, &atomic.Int64{})
				n.(*atomic.Int64).Add(1)
			}
			return counted.RoundTrip(req)
		})
	}
	mgr, err := ctrl.NewManager(c, ctrl.Options{
		Scheme:                 testSch,
		Cache:                  controllers.CacheOptions(settings),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The steady-state spec starts a second manager in this process.
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	mctx, stop := context.WithCancel(ctx)
	Expect(controllers.Setup(mctx, mgr, settings, controller.Options{})).To(Succeed())
	run.stop = stop
	go func() {
		defer GinkgoRecover()
		defer close(run.done)
		Expect(mgr.Start(mctx)).To(Succeed())
	}()
	return run
}

// namespaceOf is the namespace in a request's path (/api/v1/namespaces/NS/…,
// /apis/G/V/namespaces/NS/…), or "".
func namespaceOf(req *http.Request) string {
	parts := strings.Split(req.URL.Path, "/")
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "namespaces" {
			return parts[i+1]
		}
	}
	return ""
}

// countWrites wraps a transport to count the requests that write.
func countWrites(n *atomic.Int64) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			switch req.Method {
			case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
				n.Add(1)
			}
			return rt.RoundTrip(req)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
