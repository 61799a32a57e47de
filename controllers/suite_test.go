package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// Named waits, as in the specs' user stories.
const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
	// consistentlyFor is how long a spec watches something not happen.
	consistentlyFor = 2 * time.Second
	// steadyFor is how long the steady state must make no write.
	steadyFor = 3 * time.Second
)

var (
	ctx     context.Context
	cancel  context.CancelFunc
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	testSch = controllers.Scheme()
	// op is the operator under test, started on the envtest control plane.
	op *operatorRun
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	var err error
	env, err = testenv.New()
	Expect(err).NotTo(HaveOccurred())
	cfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: testSch})
	Expect(err).NotTo(HaveOccurred())

	Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: istioNamespace}}))).To(Succeed())
	op = startOperator()
})

var _ = AfterSuite(func() {
	if op != nil {
		op.Stop()
	}
	cancel()
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
