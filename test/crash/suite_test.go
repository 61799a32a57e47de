// Package crash_test proves the operator under failure. It builds the real
// binary and runs `netpol2authz manager` as a child process against an
// envtest control plane, then:
//
//   - crash consistency: a seeded churn of changes (relabels, ServiceAccount
//     changes, pods and NetworkPolicies added, changed and deleted,
//     namespace labels, hand edits of generated objects, mode and identity
//     flips, approvals; Services, admin network policies and waypoint
//     Gateways, whose CRDs the control plane serves) during which the
//     operator is killed with SIGKILL at random moments and restarted;
//   - failover: two replicas with leader election, the leader killed during
//     the churn;
//   - the periodic resync of a cluster at rest.
//
// Each time, once the operator has settled, what it generated must be
// exactly what `netpol2authz translate` makes of a dump of the cluster at
// that moment, nothing it does not own may have been written, and it must
// then write nothing. CRASH_SEED replays a churn, CRASH_ROUNDS sets the
// number of crash rounds (make test-crash).
package crash_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// Named waits.
const (
	// settleWithin bounds how long a (re)started operator takes to settle
	// after the churn stopped: start, sync its caches, reconcile.
	settleWithin = 90 * time.Second
	interval     = 100 * time.Millisecond
	// settleFor is how long the API server must see no write for the
	// operator to count as settled (with its work queues empty).
	settleFor = 2 * time.Second
	// quietFor is the further period over which a settled operator must
	// make no write at all.
	quietFor = 3 * time.Second
	// startWithin bounds how long a started operator takes to run its
	// controllers (or, as a leader-election candidate, to be ready).
	startWithin = 30 * time.Second
)

var (
	ctx    context.Context
	env    *envtest.Environment
	cfg    *rest.Config
	k8s    client.Client
	scheme = newScheme()

	// binary is the netpol2authz built for the suite, kubeconfig a
	// kubeconfig of the control plane for it, workDir their directory.
	binary, kubeconfig, workDir string

	// seed drives every random choice of the churns (CRASH_SEED; default:
	// the clock, printed); rounds is the number of crash rounds
	// (CRASH_ROUNDS, default 3).
	seed   = envUint("CRASH_SEED", uint64(time.Now().UnixNano()))
	rounds = int(envUint("CRASH_ROUNDS", 3))

	// gatewaysServed says the control plane serves the Gateway API's
	// Gateways: the churn then makes waypoints.
	gatewaysServed bool
)

func envUint(name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: not a number: %v", name, v, err))
	}
	return n
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, networkingv1.AddToScheme, coordinationv1.AddToScheme, eventsv1.AddToScheme,
		securityv1.AddToScheme, policyv1alpha1.AddToScheme,
		gatewayv1.Install, netpolv1alpha1.Install, netpolv1beta1.Install,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

func TestCrash(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Crash Suite")
}

// failed says a spec failed: the suite then keeps its directory.
var failed atomic.Bool

var _ = AfterEach(func() {
	if CurrentSpecReport().Failed() {
		failed.Store(true)
	}
})

var _ = BeforeSuite(func() {
	var cancel context.CancelFunc
	ctx, cancel = context.WithCancel(context.Background())
	DeferCleanup(cancel)
	msg := fmt.Sprintf("crash suite: CRASH_SEED=%d CRASH_ROUNDS=%d (set CRASH_SEED to replay the churn)", seed, rounds)
	fmt.Fprintln(os.Stderr, msg)
	AddReportEntry("seed", msg)

	root, err := testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	workDir, err = os.MkdirTemp("", "netpol2authz-crash-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		if failed.Load() || CurrentSpecReport().Failed() || os.Getenv("CRASH_KEEP") != "" {
			fmt.Fprintf(os.Stderr, "crash suite: logs and dumps kept in %s\n", workDir)
			return
		}
		Expect(os.RemoveAll(workDir)).To(Succeed())
	})

	By("building the binary")
	start := time.Now()
	binary = filepath.Join(workDir, "netpol2authz")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = root
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build: %s", out)
	GinkgoWriter.Printf("built %s in %s\n", binary, time.Since(start).Round(time.Millisecond))

	By("starting the control plane")
	env, err = testenv.New()
	Expect(err).NotTo(HaveOccurred())
	// The optional kinds the operator reads: the admin network policies
	// and the Gateway API's Gateways.
	admin, err := testenv.AdminPolicyCRDs(root)
	Expect(err).NotTo(HaveOccurred())
	gateways, err := testenv.GatewayAPICRDs(root)
	Expect(err).NotTo(HaveOccurred())
	env.CRDInstallOptions.Paths = append(env.CRDInstallOptions.Paths, admin...)
	env.CRDInstallOptions.Paths = append(env.CRDInstallOptions.Paths, gateways...)
	gatewaysServed = true
	cfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env.Stop()).To(Succeed()) })
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	user, err := env.AddUser(envtest.User{Name: "netpol2authz", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	data, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(workDir, "kubeconfig")
	Expect(os.WriteFile(kubeconfig, data, 0o600)).To(Succeed())
})
