package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/memlimit"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// managerOptions are the operator's flags beyond controller-runtime's own.
type managerOptions struct {
	metricsAddr, probeAddr string
	pprofAddr              string
	workers                int
	secureMetrics          bool
	enableHTTP2            bool
	leaderElect            bool
	leaderElectNamespace   string
	leaseDuration          time.Duration
	renewDeadline          time.Duration
	retryPeriod            time.Duration
	trustDomain            string
	rootNamespace          string
	istioNamespace         string
	maxPortRange           int
	resyncPeriod           time.Duration
	adminDiscoveryPeriod   time.Duration
	memoryLimitRatio       float64
}

func runManager(args []string, stderr io.Writer) int {
	// The global flag set carries --kubeconfig, registered by
	// controller-runtime's config package.
	fs := flag.CommandLine
	fs.SetOutput(stderr)
	var o managerOptions
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, e.g. :8443 (HTTPS) or :8080 (HTTP). 0 disables it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off by default: HTTP/2 rapid reset).")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health probes bind to. 0 disables them.")
	fs.IntVar(&o.workers, "max-concurrent-reconciles", 4, "How many NetworkPolicies are reconciled at once. A reconcile mostly waits for the API server, so a few in parallel converge faster; each NetworkPolicy is only ever reconciled by one at a time.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address Go's pprof profiles are served on (HTTP, no authentication: bind to localhost), e.g. 127.0.0.1:6060. Empty disables them.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica acts at a time.")
	fs.StringVar(&o.leaderElectNamespace, "leader-elect-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace; required outside a cluster).")
	fs.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a Lease the leader stopped renewing keeps the other replicas waiting: the longest a failover waits, after the leader's last renewal.")
	fs.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its Lease before it stops acting (and exits); less than --leader-elect-lease-duration.")
	fs.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often replicas try to acquire, and the leader to renew, the Lease.")
	fs.StringVar(&o.trustDomain, "trust-domain", "", "Mesh trust domain for principals (default: trustDomain of the mesh config, else cluster.local).")
	fs.StringVar(&o.rootNamespace, "root-namespace", "", "Istio root namespace, never acted in (default: rootNamespace of the mesh config, else the Istio namespace).")
	fs.StringVar(&o.istioNamespace, "istio-namespace", controllers.DefaultIstioNamespace, "Namespace of Istio's control plane, holding the mesh ConfigMap 'istio'.")
	fs.IntVar(&o.maxPortRange, "max-port-range", translate.DefaultMaxPortRange, "Most ports the port+endPort ranges of one NetworkPolicy rule may expand to together.")
	fs.DurationVar(&o.resyncPeriod, "resync-period", 10*time.Hour, "How often every NetworkPolicy is reconciled again although nothing changed, a last line of defence against a missed event; it writes nothing when everything is right.")
	fs.DurationVar(&o.adminDiscoveryPeriod, "admin-policy-discovery-period", controllers.DefaultAdminPolicyDiscoveryPeriod, "How often the API server's discovery is asked which admin network policy kinds (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy) are served: the longest a newly installed CRD waits to be watched.")
	fs.Float64Var(&o.memoryLimitRatio, "memory-limit-ratio", 0.9, "Unless GOMEMLIMIT is set, the Go runtime's soft memory limit is this fraction of the container's memory limit (cgroup), so that the garbage collector works harder before the limit is reached. 0 leaves the runtime's default (no limit).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "netpol2authz manager: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// client-go's rule: the renewals (retry period, jittered by up to
	// 20%) fit in the renew deadline, which ends before the lease does.
	if o.retryPeriod <= 0 || float64(o.renewDeadline) <= 1.2*float64(o.retryPeriod) || o.leaseDuration <= o.renewDeadline {
		fmt.Fprintf(stderr, "netpol2authz manager: invalid leader-election timings: want --leader-elect-lease-duration (%s) > --leader-elect-renew-deadline (%s) > 1.2 x --leader-elect-retry-period (%s) > 0\n",
			o.leaseDuration, o.renewDeadline, o.retryPeriod)
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	if o.memoryLimitRatio < 0 || o.memoryLimitRatio > 1 {
		fmt.Fprintf(stderr, "netpol2authz manager: --memory-limit-ratio %v: want 0 (off) to 1\n", o.memoryLimitRatio)
		return 2
	}
	if o.memoryLimitRatio > 0 && os.Getenv("GOMEMLIMIT") == "" {
		limit, source, err := memlimit.FromCgroup(os.DirFS("/"), o.memoryLimitRatio)
		switch {
		case err != nil:
			log.Error(err, "not setting a memory limit")
		case limit > 0:
			debug.SetMemoryLimit(limit)
			log.Info("memory limit set from the container's", "bytes", limit, "ratio", o.memoryLimitRatio, "source", source)
		}
	}

	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics, TLSOpts: tlsOpts}
	if o.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no Kubernetes configuration")
		return 1
	}
	settings := controllers.Settings{
		TrustDomain:                o.trustDomain,
		RootNamespace:              o.rootNamespace,
		IstioNamespace:             o.istioNamespace,
		MaxPortRange:               o.maxPortRange,
		ResyncPeriod:               o.resyncPeriod,
		AdminPolicyDiscoveryPeriod: o.adminDiscoveryPeriod,
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  controllers.Scheme(),
		Cache:                   controllers.CacheOptions(settings),
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        controllers.LeaderElectionID,
		LeaderElectionNamespace: o.leaderElectNamespace,
		LeaseDuration:           &o.leaseDuration,
		RenewDeadline:           &o.renewDeadline,
		RetryPeriod:             &o.retryPeriod,
		// A leader stopped by a signal (a rolling update, a drain) gives
		// the Lease up, so that the standby takes over at its next try
		// (1 to 2.2 retry periods) instead of after a lease duration. Safe
		// because the process ends as soon as the manager has stopped.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		return 1
	}
	ctx := ctrl.SetupSignalHandler()
	if err := controllers.Setup(ctx, mgr, settings, controller.Options{MaxConcurrentReconciles: o.workers}); err != nil {
		log.Error(err, "unable to set up the controller")
		return 1
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		return 1
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the ready check")
		return 1
	}
	log.Info("starting manager", "trustDomain", o.trustDomain, "rootNamespace", o.rootNamespace, "istioNamespace", o.istioNamespace)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		return 1
	}
	fmt.Fprintln(stderr, "netpol2authz: manager stopped")
	return 0
}
