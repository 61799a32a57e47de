package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netpol2authz/netpol2authz/internal/translate"
	"github.com/netpol2authz/netpol2authz/internal/version"
)

// The operator's metrics, on controller-runtime's registry beside its
// reconcile metrics.
var (
	translationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netpol2authz_translations_total",
		Help: "Translations of NetworkPolicies in opted-in namespaces, one per reconcile that translated, by result: exact, inexact, conflict, invalid (annotation or policy), error (the API refused a generated policy or failed).",
	}, []string{"result"})
	findingsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "netpol2authz_findings",
		Help: "Current findings of the translated NetworkPolicies, by finding type and namespace.",
	}, []string{"type", "namespace"})
	policiesGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netpol2authz_generated_policies",
		Help: "AuthorizationPolicies currently generated and in place.",
	})
	pendingGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "netpol2authz_pending_identities",
		Help: "Identities (ServiceAccounts, namespaces) that NetworkPolicies' selectors resolve to but nobody approved, left out of the generated AuthorizationPolicies, by namespace of the NetworkPolicy. Above zero: a label change may be trying to grant access; see kubectl get npt.",
	}, []string{"namespace"})
	principalsGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netpol2authz_principals",
		Help: "ServiceAccount principals in the generated AuthorizationPolicies, summed over NetworkPolicies (distinct within each).",
	})
)

func init() {
	metrics.Registry.MustRegister(translationsTotal, findingsGauge, policiesGauge, principalsGauge, pendingGauge, buildInfo{})
	// How long the API server takes to answer: a reconcile mostly waits
	// for it, so this is where a slow operator is explained.
	metrics.RegisterRESTClientMetrics(metrics.MetricRequestLatency)
}

// buildInfoDesc is netpol2authz_build_info, the usual info metric: always 1,
// its labels say which binary runs.
var buildInfoDesc = prometheus.NewDesc("netpol2authz_build_info",
	"Always 1; the labels are the running binary's release, Go release and commit (unknown when not recorded).",
	[]string{"version", "goversion", "commit"}, nil)

// buildInfo reads the version at each scrape: the main package sets it after
// this package's init.
type buildInfo struct{}

func (buildInfo) Describe(ch chan<- *prometheus.Desc) { ch <- buildInfoDesc }

func (buildInfo) Collect(ch chan<- prometheus.Metric) {
	i := version.Get()
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, i.Version, i.GoVersion, i.Commit)
}

// stats is what one NetworkPolicy contributes to the gauges.
type stats struct {
	findings   map[translate.FindingType]int
	policies   int
	principals int
	pending    int
}

// gauges keeps the gauges equal to the sum of every NetworkPolicy's last
// contribution, so that findings that clear and policies that go away
// leave no stale series behind.
type gauges struct {
	mu       sync.Mutex
	perNP    map[types.NamespacedName]stats
	findings map[[2]string]int
	pending  map[string]int
}

var recorded = &gauges{perNP: map[types.NamespacedName]stats{}, findings: map[[2]string]int{}, pending: map[string]int{}}

// recordTranslation counts one translation and sets the contribution of np
// to the gauges.
func recordTranslation(np types.NamespacedName, o outcome) {
	translationsTotal.WithLabelValues(o.Result()).Inc()
	s := stats{findings: map[translate.FindingType]int{}, policies: len(o.applied.Policies)}
	if o.Translation.Action == translate.ActionApply {
		s.principals = o.Translation.Principals
		s.pending = len(o.Translation.Pending)
	}
	for _, f := range o.Findings() {
		s.findings[f.Type]++
	}
	recorded.set(np, s)
}

// recordError counts a reconcile that failed on the API.
func recordError() { translationsTotal.WithLabelValues("error").Inc() }

// forgetTranslation removes the contribution of np: it is gone, or no
// longer translated.
func forgetTranslation(np types.NamespacedName) { recorded.set(np, stats{}) }

func (g *gauges) set(np types.NamespacedName, s stats) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.perNP[np]
	touched := map[[2]string]bool{}
	for t, n := range old.findings {
		k := [2]string{string(t), np.Namespace}
		g.findings[k] -= n
		touched[k] = true
	}
	for t, n := range s.findings {
		k := [2]string{string(t), np.Namespace}
		g.findings[k] += n
		touched[k] = true
	}
	for k := range touched {
		if n := g.findings[k]; n > 0 {
			findingsGauge.WithLabelValues(k[0], k[1]).Set(float64(n))
		} else {
			delete(g.findings, k)
			findingsGauge.DeleteLabelValues(k[0], k[1])
		}
	}
	if s.pending != old.pending {
		g.pending[np.Namespace] += s.pending - old.pending
		if n := g.pending[np.Namespace]; n > 0 {
			pendingGauge.WithLabelValues(np.Namespace).Set(float64(n))
		} else {
			delete(g.pending, np.Namespace)
			pendingGauge.DeleteLabelValues(np.Namespace)
		}
	}
	policiesGauge.Add(float64(s.policies - old.policies))
	principalsGauge.Add(float64(s.principals - old.principals))
	if len(s.findings) == 0 && s.policies == 0 && s.principals == 0 && s.pending == 0 {
		delete(g.perNP, np)
	} else {
		g.perNP[np] = s
	}
}
