package perf_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/protobuf/proto"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/synth"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// size is the benchmark's cluster: 2,000 pods and 200 NetworkPolicies in 20
// opted-in namespaces.
var size = synth.Size{Name: "operator", Namespaces: 20, PodsPerNamespace: 100, PoliciesPerNamespace: 10}

const (
	relabelled  = 100
	waitLimit   = 10 * time.Minute
	pollEvery   = 200 * time.Millisecond
	settleFor   = 3 * time.Second
	loadWorkers = 8
)

// workers is the operator's MaxConcurrentReconciles (BENCH_WORKERS; 0
// means the operator's default).
var workers, _ = strconv.Atoi(os.Getenv("BENCH_WORKERS"))

var (
	once    sync.Once
	figures map[string]float64
)

// BenchmarkOperator runs the operator once on the synthetic cluster and
// reports:
//   - converge-s: from start to every policy and status right;
//   - relabel-s: from relabelling 100 pods to every affected policy right
//     (relabel-writes-s of it is the benchmark's own 100 pod updates);
//   - writes/np-converge, writes/relabelled-pod, writes/changed-ap: API writes
//     (creates, updates, deletes, events) per change;
//   - steady-writes: writes in the settled state (must be 0);
//   - reconciles/relabelled-pod: how precisely pod changes are mapped, and
//     reconcile-s(relabel) the time the controller spent reconciling;
//   - cache-B/pod (transform, strip-managed-fields, raw): heap held by the pod
//     cache per pod;
//   - apiserver-s/converge-writes: the time the API server takes for the
//     same number of writes as the convergence, sent one by one by a bare
//     client, in the same run (apiserver-ms/write per write).
func BenchmarkOperator(b *testing.B) {
	if cfg == nil {
		b.Skip("no control plane")
	}
	once.Do(func() { figures = measure(b) })
	names := make([]string, 0, len(figures))
	for k := range figures {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.ReportMetric(figures[k], k)
	}
}

func measure(b *testing.B) map[string]float64 {
	ctrl.SetLogger(logr.Discard())
	ctx := context.Background()
	sch := controllers.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: sch})
	must(b, err)
	out := map[string]float64{}

	cluster := synth.Generate(size)
	load(b, ctx, c, cluster)

	out["cache-B/pod(transform)"] = cacheBytesPerPod(b, sch, cache.ByObject{Transform: controllers.TransformPod})
	out["cache-B/pod(strip-managed-fields)"] = cacheBytesPerPod(b, sch, cache.ByObject{Transform: cache.TransformStripManagedFields()})
	out["cache-B/pod(raw)"] = cacheBytesPerPod(b, sch, cache.ByObject{})

	// (a) convergence from an empty start.
	want := expected(b, ctx, c)
	writes := &atomic.Int64{}
	stop := startOperator(b, sch, writes)
	defer stop()
	start := time.Now()
	waitRight(b, ctx, c, want)
	out["converge-s"] = time.Since(start).Seconds()
	convergeWrites := settle(writes)
	out["writes/np-converge"] = float64(convergeWrites) / float64(size.Policies())

	steady := writes.Load()
	time.Sleep(settleFor)
	out["steady-writes"] = float64(writes.Load() - steady)

	// (b) relabelling 100 pods.
	before := want
	reconciles0 := reconciles(b)
	rs0 := reconcileSeconds(b)
	writes0 := writes.Load()
	start = time.Now()
	relabel(b, ctx, c, cluster)
	out["relabel-writes-s"] = time.Since(start).Seconds()
	oracle := time.Now()
	want = expected(b, ctx, c) // not the operator's time: left out
	oracleTime := time.Since(oracle)
	waitRight(b, ctx, c, want)
	out["relabel-s"] = (time.Since(start) - oracleTime).Seconds()
	relabelWrites := settle(writes) - writes0
	changed := changedPolicies(before, want)
	out["changed-aps"] = float64(changed)
	out["writes/relabelled-pod"] = float64(relabelWrites) / relabelled
	if changed > 0 {
		out["writes/changed-ap"] = float64(relabelWrites) / float64(changed)
	}
	out["reconciles/relabelled-pod"] = float64(reconciles(b)-reconciles0) / relabelled
	out["reconcile-s(relabel)"] = reconcileSeconds(b) - rs0

	// The API server's own pace for as many writes, in the same run.
	t := apiServerTime(b, ctx, c, int(convergeWrites))
	out["apiserver-s/converge-writes"] = t.Seconds()
	out["apiserver-ms/write"] = t.Seconds() * 1000 / float64(convergeWrites)
	out["converge-writes"] = float64(convergeWrites)
	return out
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// parallel runs f over n items with loadWorkers goroutines.
func parallel(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := atomic.Int64{}
	for range loadWorkers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// load creates the synthetic cluster: envtest runs no kubelet, so pod
// status is written through the status subresource.
func load(b *testing.B, ctx context.Context, c client.Client, cl synth.Cluster) {
	b.Helper()
	for i := range cl.Namespaces {
		must(b, c.Create(ctx, &cl.Namespaces[i]))
	}
	parallel(b, len(cl.Pods), func(i int) error {
		p := cl.Pods[i].DeepCopy()
		status := p.Status
		if err := c.Create(ctx, p); err != nil {
			return err
		}
		p.Status = status
		p.Status.PodIPs = []corev1.PodIP{{IP: status.PodIP}}
		return c.Status().Update(ctx, p)
	})
	parallel(b, len(cl.NetworkPolicies), func(i int) error {
		return c.Create(ctx, cl.NetworkPolicies[i].DeepCopy())
	})
}

// cacheBytesPerPod is the live heap a pod informer holds per pod after it
// synced, with the given pod cache settings.
func cacheBytesPerPod(b *testing.B, sch *k8sruntime.Scheme, podCfg cache.ByObject) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := liveHeap()
	ca, err := cache.New(cfg, cache.Options{Scheme: sch, ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: podCfg}})
	must(b, err)
	_, err = ca.GetInformer(ctx, &corev1.Pod{})
	must(b, err)
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		b.Fatal("pod cache did not sync")
	}
	var pods corev1.PodList
	must(b, ca.List(ctx, &pods))
	if len(pods.Items) != size.Pods() {
		b.Fatalf("pod cache holds %d pods, want %d", len(pods.Items), size.Pods())
	}
	pods = corev1.PodList{}
	after := liveHeap()
	runtime.KeepAlive(ca)
	return float64(int64(after)-int64(before)) / float64(size.Pods())
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// startOperator starts the operator as `netpol2authz manager` runs it (no
// client-side rate limit), counting its API writes.
func startOperator(b *testing.B, sch *k8sruntime.Scheme, writes *atomic.Int64) func() {
	oc := rest.CopyConfig(cfg)
	oc.QPS, oc.Burst = -1, 0
	oc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			switch r.Method {
			case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
				writes.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	settings := controllers.Settings{}
	mgr, err := ctrl.NewManager(oc, ctrl.Options{
		Scheme:                 sch,
		Cache:                  controllers.CacheOptions(settings),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: new(true)},
	})
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	must(b, controllers.Setup(ctx, mgr, settings, controller.Options{MaxConcurrentReconciles: workers}))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// expected translates the whole cluster, as read from the API, in one
// engine call: the operator, one policy at a time from its cache, must end
// up with the same policies.
func expected(b *testing.B, ctx context.Context, c client.Client) []translate.Translation {
	var nss corev1.NamespaceList
	var pods corev1.PodList
	var nps networkingv1.NetworkPolicyList
	must(b, c.List(ctx, &nss))
	must(b, c.List(ctx, &pods))
	must(b, c.List(ctx, &nps))
	snap := translate.Snapshot{NetworkPolicies: nps.Items, Mesh: translate.MeshSettings{TrustDomain: "cluster.local", RootNamespace: "istio-system"}}
	for _, n := range nss.Items {
		snap.Namespaces = append(snap.Namespaces, translate.Namespace{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations})
	}
	for i := range pods.Items {
		snap.Pods = append(snap.Pods, controllers.EnginePod(&pods.Items[i]))
	}
	return translate.Translate(snap, controllers.Settings{}.TranslateOptions()).Translations
}

// right says whether the cluster holds exactly the expected policies and
// an up-to-date, Ready status for each translated NetworkPolicy; when not,
// it says what is missing.
func right(ctx context.Context, c client.Client, want []translate.Translation) (bool, string, error) {
	var aps securityv1.AuthorizationPolicyList
	if err := c.List(ctx, &aps, client.MatchingLabels{translate.LabelManagedBy: translate.ManagedByValue}); err != nil {
		return false, "", err
	}
	var npts policyv1alpha1.NetworkPolicyTranslationList
	if err := c.List(ctx, &npts); err != nil {
		return false, "", err
	}
	have := map[string]*securityv1.AuthorizationPolicy{}
	for _, ap := range aps.Items {
		have[ap.Namespace+"/"+ap.Name] = ap
	}
	status := map[string]*policyv1alpha1.NetworkPolicyTranslation{}
	for i := range npts.Items {
		status[npts.Items[i].Namespace+"/"+npts.Items[i].Name] = &npts.Items[i]
	}
	desired := 0
	for _, t := range want {
		if t.Action != translate.ActionApply {
			continue
		}
		st := status[t.NetworkPolicy.String()]
		if st == nil || st.Status.ObservedGeneration != t.Generation || !meta(st.Status.Conditions, "Ready") {
			return false, "status of " + t.NetworkPolicy.String(), nil
		}
		for _, p := range t.Policies {
			desired++
			got := have[p.Namespace+"/"+p.Name]
			if got == nil || !proto.Equal(&got.Spec, &p.Spec) || got.Annotations[translate.AnnotationIstioDryRun] != p.Annotations[translate.AnnotationIstioDryRun] {
				return false, "policy " + p.Namespace + "/" + p.Name, nil
			}
		}
	}
	if len(have) != desired {
		return false, fmt.Sprintf("%d generated policies, want %d", len(have), desired), nil
	}
	return true, "", nil
}

func meta(conds []metav1.Condition, t string) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func waitRight(b *testing.B, ctx context.Context, c client.Client, want []translate.Translation) {
	b.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ok, missing, err := right(ctx, c, want)
		must(b, err)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("not converged after %s: %s", waitLimit, missing)
		}
		time.Sleep(pollEvery)
	}
}

// settle waits until the write count stops moving and returns it.
func settle(writes *atomic.Int64) int64 {
	last := writes.Load()
	for {
		time.Sleep(settleFor)
		n := writes.Load()
		if n == last {
			return n
		}
		last = n
	}
}

// relabel moves five pods of every namespace (apps 1 to 5, with their own
// ServiceAccounts or the default one) into app-0 and tier=api, which peers
// of the synthetic policies select: their principals join those policies.
func relabel(b *testing.B, ctx context.Context, c client.Client, cl synth.Cluster) {
	var picked []corev1.Pod
	for i, p := range cl.Pods {
		if n := i % size.PodsPerNamespace; n >= 1 && n <= relabelled/size.Namespaces {
			picked = append(picked, p)
		}
	}
	if len(picked) != relabelled {
		b.Fatalf("picked %d pods, want %d", len(picked), relabelled)
	}
	parallel(b, len(picked), func(i int) error {
		p := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(&picked[i]), p); err != nil {
			return err
		}
		p.Labels["app"], p.Labels["tier"] = "app-0", "api"
		return c.Update(ctx, p)
	})
}

// changedPolicies counts the generated policies that differ between two
// translations of the cluster, including those that appear or go.
func changedPolicies(before, after []translate.Translation) int {
	index := func(ts []translate.Translation) map[string]*securityv1.AuthorizationPolicy {
		out := map[string]*securityv1.AuthorizationPolicy{}
		for _, t := range ts {
			for _, p := range t.Policies {
				out[p.Namespace+"/"+p.Name] = p
			}
		}
		return out
	}
	a, z := index(before), index(after)
	n := 0
	for k, p := range a {
		if q, ok := z[k]; !ok || !proto.Equal(&p.Spec, &q.Spec) {
			n++
		}
	}
	for k := range z {
		if _, ok := a[k]; !ok {
			n++
		}
	}
	return n
}

func reconcileSeconds(b *testing.B) float64 {
	families, err := metrics.Registry.Gather()
	must(b, err)
	n := 0.0
	for _, f := range families {
		if f.GetName() == "controller_runtime_reconcile_time_seconds" {
			for _, m := range f.GetMetric() {
				n += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return n
}

func reconciles(b *testing.B) float64 {
	families, err := metrics.Registry.Gather()
	must(b, err)
	n := 0.0
	for _, f := range families {
		if f.GetName() == "controller_runtime_reconcile_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// apiServerTime is how long n AuthorizationPolicy creates take, sent one
// after the other by a bare client like the operator's single worker.
func apiServerTime(b *testing.B, ctx context.Context, c client.Client, n int) time.Duration {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench-apiserver"}}
	must(b, c.Create(ctx, ns))
	start := time.Now()
	for i := range n {
		ap := &securityv1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ap-%d", i), Namespace: ns.Name, Labels: map[string]string{"bench": "apiserver"}},
			Spec: securityapi.AuthorizationPolicy{Rules: []*securityapi.Rule{{
				From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{"cluster.local/ns/ns-000/sa/app-1"}}}},
				To:   []*securityapi.Rule_To{{Operation: &securityapi.Operation{Ports: []string{"8080"}}}},
			}}},
		}
		must(b, c.Create(ctx, ap))
	}
	return time.Since(start)
}
