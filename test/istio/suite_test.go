// Package istio_test runs netpol2authz against a real istiod: envtest's
// kube-apiserver and etcd, istiod (pilot-discovery, built by `make istiod`)
// with ambient enabled and its validating webhook registered, and the
// operator. It checks that Istio itself admits every generated policy and
// compiles it, for ztunnel and for sidecars, into exactly the generated
// rules.
package istio_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// Named waits.
const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
	// compiledWithin bounds how long istiod takes to push a change.
	compiledWithin = 60 * time.Second
)

var (
	ctx    context.Context
	cancel context.CancelFunc
	env    *envtest.Environment
	cfg    *rest.Config
	k8s    client.Client
	istiod *testenv.Istiod
	scheme = controllers.Scheme()
)

func TestIstio(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Istio Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())
	var err error
	env, err = testenv.New()
	Expect(err).NotTo(HaveOccurred())
	root, err := testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	gatewayAPI, err := testenv.GatewayAPICRDs(root)
	Expect(err).NotTo(HaveOccurred())
	env.CRDDirectoryPaths = append(env.CRDDirectoryPaths, gatewayAPI...) // waypoints are Gateways
	cfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	istiod, err = testenv.StartIstiod(ctx, env, k8s, testenv.IstiodOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("istiod's log:\n%s\n", istiod.Log())
		}
	})

	settings := controllers.Settings{IstioNamespace: istiod.Namespace}
	mgr, err := ctrl.NewManager(rest.CopyConfig(cfg), ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(settings),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(ctx, mgr, settings, controller.Options{})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if istiod != nil {
		istiod.Stop()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
