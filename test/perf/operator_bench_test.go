package perf_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/synth"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// sizes are the benchmark's clusters: 2,000 pods and 200 NetworkPolicies in
// 20 opted-in namespaces, and 10,000 pods and 2,000 NetworkPolicies in 100.
// BENCH_SIZES picks some by pod count (e.g. BENCH_SIZES=2000).
var sizes = []synth.Size{
	{Name: "2k", Namespaces: 20, PodsPerNamespace: 100, PoliciesPerNamespace: 10},
	{Name: "10k", Namespaces: 100, PodsPerNamespace: 100, PoliciesPerNamespace: 20},
}

const (
	relabelled  = 100
	waitLimit   = 10 * time.Minute
	pollEvery   = 200 * time.Millisecond
	settleFor   = 3 * time.Second
	loadWorkers = 8
)

// extraArgs are more flags for the operator (BENCH_OPERATOR_ARGS, split on
// spaces), e.g. "--max-concurrent-reconciles=1".
var extraArgs = strings.Fields(os.Getenv("BENCH_OPERATOR_ARGS"))

// workers is the operator's number of concurrent reconciles, as
// extraArgs set it (4, the default, otherwise).
func workers() int {
	for _, a := range extraArgs {
		if v, ok := strings.CutPrefix(a, "--max-concurrent-reconciles="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 4
}

var figures = map[string]map[string]float64{}

// BenchmarkOperator runs the operator, as the netpol2authz binary in its
// own process, once per size on a fresh control plane, and reports:
//   - converge-s: from start to every policy and status right;
//   - relabel-s: from relabelling 100 pods to every affected policy right
//     (relabel-writes-s of it is the benchmark's own 100 pod updates);
//   - writes/np-converge, writes/relabelled-pod, writes/changed-ap: API writes
//     (creates, updates, patches, deletes, Events) per change, from the
//     operator's client metrics;
//   - steady-writes: writes in the settled state (must be 0);
//   - reconciles/relabelled-pod: how precisely pod changes are mapped, and
//     reconcile-s(relabel) the time the controller spent reconciling, of
//     which write-s(relabel) waiting for the API server's answers to its
//     writes; conflicts(relabel) and reconcile-errors(relabel) count the
//     writes refused for a stale resourceVersion and the failed reconciles;
//   - rss-MB and heap-MB: the operator process's resident memory and Go heap
//     in use once it converged, and rss-KB/pod; rss-anon-MB and rss-file-MB
//     split the former into the process's own memory and the resident
//     pages of its binary (BENCH_OPERATOR_ENV sets the operator's
//     environment, e.g. "GOMEMLIMIT=64MiB");
//   - cache-B/pod (transform, strip-managed-fields, raw): heap a pod
//     informer holds per pod, measured in the benchmark's own process;
//   - apiserver-s/converge-writes: the time the API server takes for the
//     same number of writes as the convergence, sent one by one by a bare
//     client, in the same run (apiserver-ms/write per write), and
//     converge/apiserver, the ratio of the two;
//   - apiserver-s/converge(same): the time the API server takes for the
//     convergence's own writes (each translation created with its status,
//     each policy created: apiserver-writes/converge(same) of them, the
//     Events left out), one by one and (parallel) as many at a time as the
//     operator's workers, and converge/apiserver(same…) the ratios;
//   - apiserver-s/relabel-writes: the time the API server takes for the
//     relabel's writes (each changed policy and its translation's status,
//     replayed as the same updates on copies), one by one, and (parallel)
//     as many at a time as the operator's
//     workers; relabel/apiserver(parallel) compares the operator's relabel
//     time, less the benchmark's own pod updates, with the latter.
func BenchmarkOperator(b *testing.B) {
	if !benchmarking {
		b.Skip("not benchmarking")
	}
	for _, s := range sizes {
		if want := os.Getenv("BENCH_SIZES"); want != "" && !slices.Contains(strings.Split(want, ","), strconv.Itoa(s.Pods())) {
			continue
		}
		b.Run(fmt.Sprintf("pods=%d", s.Pods()), func(b *testing.B) {
			if figures[s.Name] == nil {
				figures[s.Name] = measure(b, s)
			}
			for _, k := range slices.Sorted(maps.Keys(figures[s.Name])) {
				b.ReportMetric(figures[s.Name][k], k)
			}
		})
	}
}

func measure(b *testing.B, size synth.Size) map[string]float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := testenv.New()
	must(b, err)
	cfg, err := env.Start()
	must(b, err)
	defer func() {
		if err := env.Stop(); err != nil {
			b.Logf("stopping the control plane: %v", err)
		}
	}()
	sch := controllers.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: sch})
	must(b, err)
	out := map[string]float64{}

	cluster := synth.Generate(size)
	load(b, ctx, c, cluster)
	b.Logf("%s: loaded %d pods and %d NetworkPolicies", size.Name, size.Pods(), size.Policies())

	out["cache-B/pod(transform)"] = cacheBytesPerPod(b, cfg, size, sch, cache.ByObject{Transform: controllers.TransformPod})
	out["cache-B/pod(strip-managed-fields)"] = cacheBytesPerPod(b, cfg, size, sch, cache.ByObject{Transform: cache.TransformStripManagedFields()})
	out["cache-B/pod(raw)"] = cacheBytesPerPod(b, cfg, size, sch, cache.ByObject{})

	// The benchmark watches the operator's output through a cache of its
	// own: polling lists of thousands of policies would load the API
	// server it measures.
	watch := outputCache(b, ctx, cfg, sch)

	// (a) convergence from an empty start.
	want, snap := expected(b, ctx, c)
	b.Logf("%s: measured the pod cache; starting the operator", size.Name)
	op := startOperator(b, env)
	defer op.stop(b)
	start := time.Now()
	convergeProfiled := op.profile(b, "cpu-converge-"+size.Name, "profile?seconds=10")
	waitRight(b, ctx, watch, want)
	out["converge-s"] = time.Since(start).Seconds()
	<-convergeProfiled
	convergeWrites := settle(b, op)
	out["writes/np-converge"] = convergeWrites / float64(size.Policies())
	m := op.scrape(b)
	out["rss-MB"] = m["process_resident_memory_bytes"] / 1e6
	out["heap-MB"] = m["go_memstats_heap_inuse_bytes"] / 1e6
	out["rss-KB/pod"] = m["process_resident_memory_bytes"] / 1e3 / float64(size.Pods())
	anon, file := op.rss(b)
	out["rss-anon-MB"], out["rss-file-MB"] = anon/1e6, file/1e6

	steady := op.scrape(b)[writesMetric]
	time.Sleep(settleFor)
	out["steady-writes"] = op.scrape(b)[writesMetric] - steady

	// (b) relabelling 100 pods.
	before := want
	beforeStatus := statuses(b, ctx, watch)
	op.profile(b, "heap-"+size.Name, "heap")
	profiled := op.profile(b, "cpu-relabel-"+size.Name, "profile?seconds=5")
	m0 := op.scrape(b)
	// What the relabel must lead to, computed beforehand, in memory.
	picked := pickRelabelled(b, cluster, size)
	snap.Pods = slices.Clone(snap.Pods)
	for i, p := range snap.Pods {
		if slices.ContainsFunc(picked, func(q corev1.Pod) bool { return q.Namespace == p.Namespace && q.Name == p.Name }) {
			snap.Pods[i].Labels = relabelledLabels(p.Labels)
		}
	}
	want = translate.Translate(snap, controllers.Settings{}.TranslateOptions()).Translations
	start = time.Now()
	relabel(b, ctx, c, picked)
	out["relabel-writes-s"] = time.Since(start).Seconds()
	waitRight(b, ctx, watch, want)
	out["relabel-s"] = time.Since(start).Seconds()
	relabelWrites := settle(b, op) - m0[writesMetric]
	m1 := op.scrape(b)
	changedSet := changedPolicies(before, want)
	changed := len(changedSet)
	out["changed-aps"] = float64(changed)
	out["writes/relabelled-pod"] = relabelWrites / relabelled
	if changed > 0 {
		out["writes/changed-ap"] = relabelWrites / float64(changed)
	}
	out["reconciles/relabelled-pod"] = (m1[reconcilesMetric] - m0[reconcilesMetric]) / relabelled
	out["reconcile-s(relabel)"] = m1[reconcileTimeMetric] - m0[reconcileTimeMetric]
	out["write-s(relabel)"] = m1[writeTimeMetric] - m0[writeTimeMetric]
	out["conflicts(relabel)"] = m1[conflictsMetric] - m0[conflictsMetric]
	out["reconcile-errors(relabel)"] = m1[errorsMetric] - m0[errorsMetric]
	<-profiled

	// The API server's own pace for the relabel's writes, one by one and
	// as many at a time as the operator's workers, in the same run.
	serial := apiServerRelabelTime(b, ctx, c, changedSet, before, beforeStatus, 1)
	concurrent := apiServerRelabelTime(b, ctx, c, changedSet, before, beforeStatus, workers())
	out["apiserver-s/relabel-writes"] = serial.Seconds()
	out["apiserver-s/relabel-writes(parallel)"] = concurrent.Seconds()
	out["apiserver-writes/relabel"] = float64(writesOf(changedSet))
	out["relabel/apiserver(parallel)"] = (out["relabel-s"] - out["relabel-writes-s"]) / concurrent.Seconds()

	// The API server's own pace for the convergence's writes (the same
	// objects), one by one and four at a time, in the same run.
	same, n := apiServerConvergeTime(b, ctx, c, before, beforeStatus, 1)
	sameParallel, _ := apiServerConvergeTime(b, ctx, c, before, beforeStatus, workers())
	out["apiserver-writes/converge(same)"] = float64(n)
	out["apiserver-s/converge(same)"] = same.Seconds()
	out["apiserver-s/converge(same,parallel)"] = sameParallel.Seconds()
	out["converge/apiserver(same)"] = out["converge-s"] / same.Seconds()
	out["converge/apiserver(same,parallel)"] = out["converge-s"] / sameParallel.Seconds()

	// The API server's own pace for as many writes, in the same run.
	t := apiServerTime(b, ctx, c, int(convergeWrites))
	out["apiserver-s/converge-writes"] = t.Seconds()
	out["apiserver-ms/write"] = t.Seconds() * 1000 / convergeWrites
	out["converge-writes"] = convergeWrites
	out["converge/apiserver"] = out["converge-s"] / t.Seconds()
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
// status is written through the status subresource. Its namespaces follow
// label changes (identity mode follow): a relabelled pod's identity then
// joins the policies at once, which is the operator's costlier path (under
// review, the default, it is held back and only the status changes).
func load(b *testing.B, ctx context.Context, c client.Client, cl synth.Cluster) {
	b.Helper()
	for i := range cl.Namespaces {
		ns := cl.Namespaces[i].DeepCopy()
		ns.Annotations[translate.AnnotationIdentity] = string(translate.IdentityFollow)
		must(b, c.Create(ctx, ns))
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

// outputCache is an informer cache of the AuthorizationPolicies and
// NetworkPolicyTranslations, which the benchmark reads the operator's
// output from; it stops with ctx.
func outputCache(b *testing.B, ctx context.Context, cfg *rest.Config, sch *k8sruntime.Scheme) client.Reader {
	ca, err := cache.New(cfg, cache.Options{Scheme: sch, DefaultTransform: cache.TransformStripManagedFields()})
	must(b, err)
	for _, o := range []client.Object{&securityv1.AuthorizationPolicy{}, &policyv1alpha1.NetworkPolicyTranslation{}} {
		_, err := ca.GetInformer(ctx, o)
		must(b, err)
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		b.Fatal("the output cache did not sync")
	}
	return ca
}

// cacheBytesPerPod is the live heap a pod informer holds per pod after it
// synced, with the given pod cache settings.
func cacheBytesPerPod(b *testing.B, cfg *rest.Config, size synth.Size, sch *k8sruntime.Scheme, podCfg cache.ByObject) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := liveHeap()
	ca, err := cache.New(cfg, cache.Options{Scheme: sch, ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: podCfg}})
	must(b, err)
	inf, err := ca.GetInformer(ctx, &corev1.Pod{})
	must(b, err)
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		b.Fatal("pod cache did not sync")
	}
	store, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		b.Fatalf("the pod informer is a %T", inf)
	}
	if n := len(store.GetStore().ListKeys()); n != size.Pods() {
		b.Fatalf("pod cache holds %d pods, want %d", n, size.Pods())
	}
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

// The operator's metrics the benchmark reads: client-go's request counter
// (the writes: POST, PUT, PATCH, DELETE) and controller-runtime's reconcile
// counter and time, of the NetworkPolicy controller.
const (
	writesMetric        = "writes"
	reconcilesMetric    = "reconciles"
	reconcileTimeMetric = "reconcile-seconds"
	writeTimeMetric     = "write-seconds"
	conflictsMetric     = "conflicts"
	errorsMetric        = "reconcile-errors"
)

// operatorProcess is `netpol2authz manager` running against the control
// plane, with plain-HTTP metrics on a local port.
type operatorProcess struct {
	cmd     *exec.Cmd
	metrics string
	log     *os.File
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// startOperator builds the binary once and starts it as the installed
// Deployment runs it, but with plain-HTTP metrics on a free local port.
func startOperator(b *testing.B, env *envtest.Environment) *operatorProcess {
	b.Helper()
	buildOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(binDir, "netpol2authz")
		cmd := exec.Command("go", "build", "-o", binary, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	must(b, buildErr)
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "bench-operator", Groups: []string{"system:masters"}}, nil)
	must(b, err)
	kc, err := user.KubeConfig()
	must(b, err)
	dir := b.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	must(b, os.WriteFile(kubeconfig, kc, 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	addr := l.Addr().String()
	must(b, l.Close())
	logDir := dir
	if d := os.Getenv("BENCH_PROFILES"); d != "" {
		logDir = d // kept, next to the profiles
	}
	logFile, err := os.Create(filepath.Join(logDir, "operator.log"))
	must(b, err)
	args := append([]string{"manager", "--kubeconfig=" + kubeconfig, "--metrics-bind-address=" + addr, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--zap-log-level=error"}, extraArgs...)
	if pp := os.Getenv("BENCH_PPROF"); pp != "" {
		args = append(args, "--pprof-bind-address="+pp)
	}
	cmd := exec.Command(binary, args...)
	// The operator dies with the benchmark, also when it panics or is
	// killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), strings.Fields(os.Getenv("BENCH_OPERATOR_ENV"))...)
	must(b, cmd.Start())
	op := &operatorProcess{cmd: cmd, metrics: "http://" + addr + "/metrics", log: logFile}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := op.tryScrape(); err == nil {
			return op
		} else if time.Now().After(deadline) {
			op.stop(b)
			b.Fatalf("the operator's metrics did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *operatorProcess) stop(b *testing.B) {
	if o.cmd.ProcessState != nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		// A process stopped by a signal exits with an error: expected.
		_ = o.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = o.cmd.Process.Kill()
		<-done
	}
	if b.Failed() {
		log, _ := os.ReadFile(o.log.Name())
		b.Logf("operator log:\n%s", tail(string(log), 4000))
	}
	_ = o.log.Close()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// profile saves the operator's pprof profile path (e.g. "heap",
// "profile?seconds=5") as BENCH_PROFILES/name.pprof when both BENCH_PPROF
// (the operator's --pprof-bind-address) and BENCH_PROFILES are set; the
// channel closes when it is saved.
func (o *operatorProcess) profile(b *testing.B, name, path string) <-chan struct{} {
	done := make(chan struct{})
	addr, dir := os.Getenv("BENCH_PPROF"), os.Getenv("BENCH_PROFILES")
	if addr == "" || dir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + addr + "/debug/pprof/" + path)
		if err != nil {
			b.Logf("profile %s: %v", name, err)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".pprof"), data, 0o644)
		}
		if err != nil {
			b.Logf("profile %s: %v", name, err)
		}
	}()
	if path == "heap" {
		<-done
	}
	return done
}

func (o *operatorProcess) scrape(b *testing.B) map[string]float64 {
	b.Helper()
	m, err := o.tryScrape()
	must(b, err)
	return m
}

// rss is the operator process's resident memory in two parts: anonymous
// (its heap, stacks, runtime) and file-backed (the pages of its binary).
func (o *operatorProcess) rss(b *testing.B) (anon, file float64) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", o.cmd.Process.Pid))
	must(b, err)
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "RssAnon" && k != "RssFile") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		must(b, err)
		if k == "RssAnon" {
			anon = kb * 1024
		} else {
			file = kb * 1024
		}
	}
	return anon, file
}

// tryScrape reads the operator's metrics endpoint into the few figures the
// benchmark needs.
func (o *operatorProcess) tryScrape() (map[string]float64, error) {
	resp, err := http.Get(o.metrics)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			label := func(n string) string {
				for _, l := range m.GetLabel() {
					if l.GetName() == n {
						return l.GetValue()
					}
				}
				return ""
			}
			switch name {
			case "rest_client_requests_total":
				switch label("method") {
				case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
					out[writesMetric] += m.GetCounter().GetValue()
				}
				if label("code") == "409" {
					out[conflictsMetric] += m.GetCounter().GetValue()
				}
			case "rest_client_request_duration_seconds":
				switch label("verb") {
				case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
					out[writeTimeMetric] += m.GetHistogram().GetSampleSum()
				}
			case "controller_runtime_reconcile_errors_total":
				if label("controller") == "networkpolicy" {
					out[errorsMetric] += m.GetCounter().GetValue()
				}
			case "controller_runtime_reconcile_total":
				if label("controller") == "networkpolicy" {
					out[reconcilesMetric] += m.GetCounter().GetValue()
				}
			case "controller_runtime_reconcile_time_seconds":
				if label("controller") == "networkpolicy" {
					out[reconcileTimeMetric] += m.GetHistogram().GetSampleSum()
				}
			case "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes":
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out, nil
}

// expected translates the whole cluster, as read from the API, in one
// engine call: the operator, one policy at a time from its cache, must end
// up with the same policies. It returns the snapshot too, from which the
// outcome of a change is computed without loading the API server while
// the operator is measured.
func expected(b *testing.B, ctx context.Context, c client.Client) ([]translate.Translation, translate.Snapshot) {
	var nss corev1.NamespaceList
	var pods corev1.PodList
	var nps networkingv1.NetworkPolicyList
	var approvals policyv1alpha1.IdentityApprovalList
	must(b, c.List(ctx, &nss))
	must(b, c.List(ctx, &pods))
	must(b, c.List(ctx, &nps))
	must(b, c.List(ctx, &approvals))
	snap := translate.Snapshot{NetworkPolicies: nps.Items, Mesh: translate.MeshSettings{TrustDomain: "cluster.local", RootNamespace: "istio-system"}}
	for _, a := range approvals.Items {
		rec := translate.Approval{Namespace: a.Namespace, NetworkPolicy: a.Name}
		for _, id := range a.Spec.Identities {
			rec.Identities = append(rec.Identities, translate.Identity(id))
		}
		snap.Approvals = append(snap.Approvals, rec)
	}
	for _, n := range nss.Items {
		snap.Namespaces = append(snap.Namespaces, translate.Namespace{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations})
	}
	for i := range pods.Items {
		snap.Pods = append(snap.Pods, translate.PodOf(&pods.Items[i]))
	}
	return translate.Translate(snap, controllers.Settings{}.TranslateOptions()).Translations, snap
}

// right says whether the cluster holds exactly the expected policies and
// an up-to-date, Ready status for each translated NetworkPolicy; when not,
// it says what is missing.
func right(ctx context.Context, c client.Reader, want []translate.Translation) (bool, string, error) {
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

func waitRight(b *testing.B, ctx context.Context, c client.Reader, want []translate.Translation) {
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

// settle waits until the operator's write count stops moving and returns
// it.
func settle(b *testing.B, op *operatorProcess) float64 {
	last := op.scrape(b)[writesMetric]
	for {
		time.Sleep(settleFor)
		n := op.scrape(b)[writesMetric]
		if n == last {
			return n
		}
		last = n
	}
}

// relabel moves five pods of every namespace (apps 1 to 5, with their own
// ServiceAccounts or the default one) into app-0 and tier=api, which peers
// of the synthetic policies select: their principals join those policies.
func relabel(b *testing.B, ctx context.Context, c client.Client, picked []corev1.Pod) {
	parallel(b, len(picked), func(i int) error {
		p := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(&picked[i]), p); err != nil {
			return err
		}
		p.Labels = relabelledLabels(p.Labels)
		return c.Update(ctx, p)
	})
}

// pickRelabelled picks the pods relabel changes: the same few in every
// namespace.
func pickRelabelled(b *testing.B, cl synth.Cluster, size synth.Size) []corev1.Pod {
	var picked []corev1.Pod
	for i, p := range cl.Pods {
		if n := i % size.PodsPerNamespace; n >= 1 && n <= relabelled/size.Namespaces {
			picked = append(picked, p)
		}
	}
	if len(picked) != relabelled {
		b.Fatalf("picked %d pods, want %d", len(picked), relabelled)
	}
	return picked
}

// relabelledLabels are the labels relabel gives a pod that had labels.
func relabelledLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	out["app"], out["tier"] = "app-0", "api"
	return out
}

// changedPolicies are the generated policies that differ between two
// translations of the cluster, including those that appear or go: their
// keys, and for each the NetworkPolicy it belongs to.
func changedPolicies(before, after []translate.Translation) map[types.NamespacedName]types.NamespacedName {
	index := func(ts []translate.Translation) map[types.NamespacedName]*securityv1.AuthorizationPolicy {
		out := map[types.NamespacedName]*securityv1.AuthorizationPolicy{}
		for _, t := range ts {
			for _, p := range t.Policies {
				out[client.ObjectKeyFromObject(p)] = p
			}
		}
		return out
	}
	owners := func(ts []translate.Translation, into map[types.NamespacedName]types.NamespacedName, keep func(types.NamespacedName) bool) {
		for _, t := range ts {
			for _, p := range t.Policies {
				if k := client.ObjectKeyFromObject(p); keep(k) {
					into[k] = t.NetworkPolicy
				}
			}
		}
	}
	a, z := index(before), index(after)
	out := map[types.NamespacedName]types.NamespacedName{}
	owners(after, out, func(k types.NamespacedName) bool {
		p, ok := a[k]
		return !ok || !proto.Equal(&p.Spec, &z[k].Spec)
	})
	owners(before, out, func(k types.NamespacedName) bool { _, ok := z[k]; return !ok })
	return out
}

// statuses are the statuses of every NetworkPolicyTranslation, read from
// the benchmark's own cache.
func statuses(b *testing.B, ctx context.Context, r client.Reader) map[types.NamespacedName]policyv1alpha1.NetworkPolicyTranslationStatus {
	var list policyv1alpha1.NetworkPolicyTranslationList
	must(b, r.List(ctx, &list))
	out := make(map[types.NamespacedName]policyv1alpha1.NetworkPolicyTranslationStatus, len(list.Items))
	for i := range list.Items {
		out[client.ObjectKeyFromObject(&list.Items[i])] = list.Items[i].Status
	}
	return out
}

// writesOf is the number of writes apiServerRelabelTime makes for changed
// at most: one per policy and one per NetworkPolicy.
func writesOf(changed map[types.NamespacedName]types.NamespacedName) int {
	owners := map[types.NamespacedName]bool{}
	for _, o := range changed {
		owners[o] = true
	}
	return len(changed) + len(owners)
}

// apiServerRelabelTime is how long the API server alone takes for the
// writes a relabel made the operator do, replayed on copies in a namespace
// of their own: for each changed policy, a copy in its state before the
// relabel (made untimed) is updated to its state after it (created or
// deleted when the relabel made or removed it); for each NetworkPolicy
// that changed, a copy of its translation with the status before (untimed)
// gets the status after. Sent by workers at a time; the copies are deleted
// afterwards, untimed.
func apiServerRelabelTime(b *testing.B, ctx context.Context, c client.Client, changed map[types.NamespacedName]types.NamespacedName, before []translate.Translation, beforeStatus map[types.NamespacedName]policyv1alpha1.NetworkPolicyTranslationStatus, workers int) time.Duration {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-relabel-%d", workers)}}
	must(b, c.Create(ctx, ns))
	old := map[types.NamespacedName]*securityv1.AuthorizationPolicy{}
	for _, t := range before {
		for _, p := range t.Policies {
			old[client.ObjectKeyFromObject(p)] = p
		}
	}
	var writes []func() error
	owners := map[types.NamespacedName]bool{}
	for _, k := range slices.SortedFunc(maps.Keys(changed), func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) }) {
		cp := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ap-%d", len(writes)), Namespace: ns.Name}}
		if p, ok := old[k]; ok {
			cp.Labels = p.Labels
			proto.Merge(&cp.Spec, &p.Spec)
			must(b, c.Create(ctx, cp))
		}
		var ap securityv1.AuthorizationPolicy
		switch err := c.Get(ctx, k, &ap); {
		case err != nil && cp.ResourceVersion != "":
			writes = append(writes, func() error { return c.Delete(ctx, cp) })
		case err != nil:
		case cp.ResourceVersion != "":
			cp.Spec.Reset()
			proto.Merge(&cp.Spec, &ap.Spec)
			writes = append(writes, func() error { return c.Update(ctx, cp) })
		default:
			cp.Labels = ap.Labels
			proto.Merge(&cp.Spec, &ap.Spec)
			writes = append(writes, func() error { return c.Create(ctx, cp) })
		}
		owner := changed[k]
		var npt policyv1alpha1.NetworkPolicyTranslation
		if owners[owner] || c.Get(ctx, owner, &npt) != nil {
			continue
		}
		owners[owner] = true
		cpt := &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("npt-%d", len(writes)), Namespace: ns.Name}}
		must(b, c.Create(ctx, cpt))
		cpt.Status = beforeStatus[owner]
		must(b, c.Status().Update(ctx, cpt))
		cpt.Status = npt.Status
		writes = append(writes, func() error { return c.Status().Update(ctx, cpt) })
	}
	t := replay(b, writes, workers)
	must(b, c.DeleteAllOf(ctx, &securityv1.AuthorizationPolicy{}, client.InNamespace(ns.Name)))
	must(b, c.DeleteAllOf(ctx, &policyv1alpha1.NetworkPolicyTranslation{}, client.InNamespace(ns.Name)))
	return t
}

// replay runs writes with workers at a time and returns how long they
// took.
func replay(b *testing.B, writes []func() error, workers int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(writes))
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(writes); i = int(next.Add(1)) - 1 {
				if err := writes[i](); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	t := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return t
}

// apiServerConvergeTime is how long the API server alone takes for the
// writes a convergence makes, replayed in a namespace of its own: for each
// translation, its NetworkPolicyTranslation created and its status written,
// and a copy of each of its AuthorizationPolicies created (the operator's
// Events left out), sent by workers at a time. Returns the time and the
// number of writes; the copies are deleted afterwards, untimed.
func apiServerConvergeTime(b *testing.B, ctx context.Context, c client.Client, ts []translate.Translation, st map[types.NamespacedName]policyv1alpha1.NetworkPolicyTranslationStatus, workers int) (time.Duration, int) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-converge-%d", workers)}}
	must(b, c.Create(ctx, ns))
	var writes []func() error
	n := 0
	for i, t := range ts {
		status, ok := st[t.NetworkPolicy]
		if !ok {
			continue // not translated: no writes
		}
		npt := &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("npt-%d", i), Namespace: ns.Name}}
		writes = append(writes, func() error {
			if err := c.Create(ctx, npt); err != nil {
				return err
			}
			npt.Status = status
			return c.Status().Update(ctx, npt)
		})
		n += 2
		for j, p := range t.Policies {
			cp := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ap-%d-%d", i, j), Namespace: ns.Name, Labels: p.Labels}}
			proto.Merge(&cp.Spec, &p.Spec)
			writes = append(writes, func() error { return c.Create(ctx, cp) })
			n++
		}
	}
	t := replay(b, writes, workers)
	must(b, c.DeleteAllOf(ctx, &securityv1.AuthorizationPolicy{}, client.InNamespace(ns.Name)))
	must(b, c.DeleteAllOf(ctx, &policyv1alpha1.NetworkPolicyTranslation{}, client.InNamespace(ns.Name)))
	return t, n
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
