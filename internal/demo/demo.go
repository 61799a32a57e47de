// Package demo runs netpol2authz end to end on a local control plane: the
// same kube-apiserver and etcd the tests use, the project's CRDs and Istio's,
// the operator, and the samples of config/samples. `make demo` runs it.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/cli"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Options of one demo run.
type Options struct {
	// Out receives the story.
	Out io.Writer
	// Samples is the directory of the sample manifests (config/samples).
	Samples string
	// Keep leaves the control plane and the operator running after the
	// story, until ctx is done, and prints a kubeconfig to explore them.
	Keep bool
	// Wait bounds every wait for the operator.
	Wait time.Duration
	// Relabel names the pod ("namespace/name") that gets role=admin in the
	// last act; DBPolicy is the AuthorizationPolicy to watch change.
	Relabel  string
	DBPolicy string
}

// Defaults for the shipped samples.
const (
	DefaultRelabel  = "shop/reporting-0"
	DefaultDBPolicy = "shop/netpol-db-admins-only"
)

// Run tells the story; it stops everything it started before returning.
func Run(ctx context.Context, o Options) (err error) {
	o = withDefaults(o)
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }

	say("==> Starting a local control plane (kube-apiserver + etcd, built from source on first use)")
	env, err := testenv.New()
	if err != nil {
		return err
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stopping the control plane: %w", stopErr)
		}
	}()

	scheme := controllers.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	say("==> Starting istiod (pilot-discovery, built from source on first use) with its validating webhook")
	istiod, err := testenv.StartIstiod(ctx, env, c, testenv.IstiodOptions{})
	if err != nil {
		return fmt.Errorf("starting istiod: %w", err)
	}
	defer istiod.Stop()

	say("==> Starting the operator")
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	defer func() {
		stopMgr()
		if mgrErr := <-mgrDone; mgrErr != nil && err == nil {
			err = fmt.Errorf("operator: %w", mgrErr)
		}
	}()
	if err := startOperator(mgrCtx, cfg, scheme, mgrDone); err != nil {
		mgrDone <- nil
		return err
	}

	say("==> Applying the samples of %s", o.Samples)
	objs, err := ReadSamples(o.Samples)
	if err != nil {
		return err
	}
	if err := ApplySamples(ctx, c, objs); err != nil {
		return err
	}
	policies := NetworkPolicies(objs)

	say("==> Waiting for the operator to translate %d NetworkPolicies", len(policies))
	if err := WaitTranslated(ctx, c, policies, o.Wait); err != nil {
		return err
	}

	say("\n==> The AuthorizationPolicies it generated\n")
	if err := printPolicies(ctx, c, o.Out); err != nil {
		return err
	}

	say("\n==> kubectl get npt -A: the migration dashboard\n")
	if err := printTable(ctx, cfg, o.Out); err != nil {
		return err
	}
	say("\n==> The findings: where the translation is not exact\n")
	if err := printFindings(ctx, c, o.Out); err != nil {
		return err
	}

	if err := showIstio(ctx, c, istiod, o, say); err != nil {
		return err
	}

	if err := relabel(ctx, cfg, c, o, say); err != nil {
		return err
	}

	if o.Keep {
		path, err := writeKubeconfig(env)
		if err != nil {
			return err
		}
		// The kubeconfig is worthless once the control plane stops.
		defer func() { _ = os.RemoveAll(filepath.Dir(path)) }()
		say("\n==> Still running (DEMO_KEEP=1). Explore with kubectl:\n")
		say("    export KUBECONFIG=%s", path)
		say("    kubectl get npt -A; kubectl get authorizationpolicies -A -o yaml")
		say("    (make kubectl builds a kubectl of the same release into bin/)")
		say("\n    Press Ctrl-C to stop the operator and the control plane.")
		<-ctx.Done()
	}
	say("\n==> Done: stopping the operator and the control plane")
	return nil
}

func serializerFor() runtime.NegotiatedSerializer { return clientgoscheme.Codecs.WithoutConversion() }

func withDefaults(o Options) Options {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Samples == "" {
		o.Samples = "config/samples"
	}
	if o.Wait <= 0 {
		o.Wait = time.Minute
	}
	if o.Relabel == "" {
		o.Relabel = DefaultRelabel
	}
	if o.DBPolicy == "" {
		o.DBPolicy = DefaultDBPolicy
	}
	return o
}

func startOperator(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, done chan<- error) error {
	settings := controllers.Settings{}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(settings),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("creating the operator: %w", err)
	}
	skip := true
	if err := controllers.Setup(ctx, mgr, settings, controller.Options{SkipNameValidation: &skip}); err != nil {
		return fmt.Errorf("setting up the operator: %w", err)
	}
	go func() { done <- mgr.Start(ctx) }()
	return nil
}

// ReadSamples decodes every YAML file of dir, sorted by name, skipping the
// kustomization.
func ReadSamples(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for i := 1; ; i++ {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: document %d: %w", f, i, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no samples in %s", dir)
	}
	// Namespaces and ServiceAccounts first, as a real apply needs them,
	// then pods, then the rest: a NetworkPolicy's first translation
	// approves the identities it resolves then (identity review), so the
	// pods it selects as sources must exist before it does.
	rank := map[string]int{"Namespace": 0, "ServiceAccount": 1, "Pod": 2, "NetworkPolicy": 4}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		ra, ok := rank[a.GetKind()]
		if !ok {
			ra = 3
		}
		rb, ok := rank[b.GetKind()]
		if !ok {
			rb = 3
		}
		return ra - rb
	})
	return objs, nil
}

// ApplySamples creates the samples. The control plane has neither Istio's injector
// nor a kubelet, so the demo plays both: pods of namespaces labelled
// istio-injection=enabled get an istio-proxy container, and every pod gets
// the status (phase, IP) its manifest carries.
func ApplySamples(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	injected := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() == "Namespace" && u.GetLabels()["istio-injection"] == "enabled" {
			injected[u.GetName()] = true
		}
	}
	for _, u := range objs {
		if u.GetKind() != "Pod" {
			if err := c.Create(ctx, u); err != nil {
				return fmt.Errorf("creating %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			continue
		}
		pod := &corev1.Pod{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, pod); err != nil {
			return fmt.Errorf("pod %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
		status := pod.Status
		if injected[pod.Namespace] && pod.Annotations["sidecar.istio.io/inject"] != "false" {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.29.0"})
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations["sidecar.istio.io/status"] = `{"containers":["istio-proxy"]}`
		}
		pod.Status = corev1.PodStatus{}
		if err := c.Create(ctx, pod); err != nil {
			return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		pod.Status = status
		if status.PodIP != "" && len(status.PodIPs) == 0 {
			pod.Status.PodIPs = []corev1.PodIP{{IP: status.PodIP}}
		}
		if err := c.Status().Update(ctx, pod); err != nil {
			return fmt.Errorf("setting the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

// NetworkPolicies are the keys of the NetworkPolicies among objs.
func NetworkPolicies(objs []*unstructured.Unstructured) []client.ObjectKey {
	var keys []client.ObjectKey
	for _, u := range objs {
		if u.GetKind() == "NetworkPolicy" {
			keys = append(keys, client.ObjectKey{Namespace: u.GetNamespace(), Name: u.GetName()})
		}
	}
	return keys
}

// WaitTranslated waits until every NetworkPolicy of an opted-in namespace
// has a NetworkPolicyTranslation that is Ready for its generation.
func WaitTranslated(ctx context.Context, c client.Client, keys []client.ObjectKey, timeout time.Duration) error {
	var pending []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pending = pending[:0]
		for _, key := range keys {
			ns := &corev1.Namespace{}
			if err := c.Get(ctx, client.ObjectKey{Name: key.Namespace}, ns); err != nil {
				return false, err
			}
			if ns.Annotations["netpol2authz.io/mode"] == "" {
				continue
			}
			np := &networkingv1.NetworkPolicy{}
			if err := c.Get(ctx, key, np); err != nil {
				return false, err
			}
			npt := &policyv1alpha1.NetworkPolicyTranslation{}
			if err := c.Get(ctx, key, npt); err != nil || npt.Status.ObservedGeneration != np.Generation ||
				!isTrue(npt.Status.Conditions, policyv1alpha1.ConditionReady) {
				pending = append(pending, key.String())
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("the operator did not translate %s within %s: %w", strings.Join(pending, ", "), timeout, err)
	}
	return nil
}

func isTrue(conds []metav1.Condition, t string) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// printPolicies prints the generated AuthorizationPolicies as a user would
// apply them: no server-side metadata.
func printPolicies(ctx context.Context, c client.Client, out io.Writer) error {
	list := &securityv1.AuthorizationPolicyList{}
	if err := c.List(ctx, list, client.MatchingLabels{"app.kubernetes.io/managed-by": "netpol2authz"}); err != nil {
		return err
	}
	slices.SortFunc(list.Items, func(a, b *securityv1.AuthorizationPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for _, ap := range list.Items {
		data, err := policyYAML(ap)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "---\n%s", data)
	}
	return nil
}

func policyYAML(ap *securityv1.AuthorizationPolicy) ([]byte, error) {
	clean := &securityv1.AuthorizationPolicy{
		TypeMeta: metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"},
		ObjectMeta: metav1.ObjectMeta{
			Name: ap.Name, Namespace: ap.Namespace, Labels: ap.Labels, Annotations: ap.Annotations,
		},
	}
	ap.Spec.DeepCopyInto(&clean.Spec)
	data, err := yaml.Marshal(clean)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// printTable prints the NetworkPolicyTranslations as kubectl does: the API
// server renders the CRD's printer columns as a Table.
func printTable(ctx context.Context, cfg *rest.Config, out io.Writer) error {
	tc := rest.CopyConfig(cfg)
	tc.AcceptContentTypes = "application/json;as=Table;v=v1;g=meta.k8s.io"
	tc.GroupVersion = &policyv1alpha1.GroupVersion
	tc.APIPath = "/apis"
	tc.NegotiatedSerializer = serializerFor()
	rc, err := rest.RESTClientFor(tc)
	if err != nil {
		return err
	}
	raw, err := rc.Get().Resource("networkpolicytranslations").Do(ctx).Raw()
	if err != nil {
		return fmt.Errorf("listing networkpolicytranslations as a table: %w", err)
	}
	table := &metav1.Table{}
	if err := yaml.Unmarshal(raw, table); err != nil {
		return err
	}
	return writeTable(out, table)
}

// writeTable prints a Table like kubectl get -A: a NAMESPACE column, then
// the columns of priority 0.
func writeTable(out io.Writer, t *metav1.Table) error {
	w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	header := []string{"NAMESPACE"}
	var cols []int
	for i, c := range t.ColumnDefinitions {
		if c.Priority == 0 {
			header = append(header, strings.ToUpper(c.Name))
			cols = append(cols, i)
		}
	}
	fmt.Fprintln(w, strings.Join(header, "\t"))
	type row struct{ ns, line string }
	var rows []row
	for _, r := range t.Rows {
		meta := &metav1.PartialObjectMetadata{}
		if err := yaml.Unmarshal(r.Object.Raw, meta); err != nil {
			return err
		}
		cells := []string{meta.Namespace}
		for _, i := range cols {
			v := ""
			if i < len(r.Cells) && r.Cells[i] != nil {
				v = fmt.Sprint(r.Cells[i])
			}
			cells = append(cells, v)
		}
		rows = append(rows, row{meta.Namespace + "/" + meta.Name, strings.Join(cells, "\t")})
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.ns, b.ns) })
	for _, r := range rows {
		fmt.Fprintln(w, r.line)
	}
	return w.Flush()
}

func printFindings(ctx context.Context, c client.Client, out io.Writer) error {
	list := &policyv1alpha1.NetworkPolicyTranslationList{}
	if err := c.List(ctx, list); err != nil {
		return err
	}
	slices.SortFunc(list.Items, func(a, b policyv1alpha1.NetworkPolicyTranslation) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for _, npt := range list.Items {
		for _, f := range npt.Status.Findings {
			fmt.Fprintf(out, "%s/%s  %s %s\n    %s\n", npt.Namespace, npt.Name, f.Severity, f.Type, f.Message)
		}
	}
	return nil
}

// relabel plays the attack identity review stops: someone who can edit
// pods gives one role=admin, as kubectl label would. Its ServiceAccount is
// held back, pending, and named with who wrote the label; a reviewer
// approves it with netpol2authz approve, and only then it joins.
func relabel(ctx context.Context, cfg *rest.Config, c client.Client, o Options, say func(string, ...any)) error {
	podKey, err := parseKey(o.Relabel)
	if err != nil {
		return err
	}
	apKey, err := parseKey(o.DBPolicy)
	if err != nil {
		return err
	}
	nptKey := client.ObjectKey{Namespace: apKey.Namespace, Name: strings.TrimPrefix(apKey.Name, "netpol-")}
	before, err := principals(ctx, c, apKey)
	if err != nil {
		return err
	}
	say("\n==> The attack: kubectl label pod -n %s %s role=admin", podKey.Namespace, podKey.Name)
	say("    principals of %s before: %s", apKey, strings.Join(before, ", "))
	pod := &corev1.Pod{}
	if err := c.Get(ctx, podKey, pod); err != nil {
		return err
	}
	patch := client.MergeFrom(pod.DeepCopy())
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels["role"] = "admin"
	if err := c.Patch(ctx, pod, patch, client.FieldOwner("kubectl-label")); err != nil {
		return err
	}
	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, o.Wait, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, nptKey, npt)
		return err == nil && npt.Status.Pending > 0 && len(npt.Status.PendingIdentities[0].Sources) > 0 &&
			len(npt.Status.PendingIdentities[0].Sources[0].FieldManagers) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("the relabelled pod's ServiceAccount was not reported pending on %s within %s: %w", nptKey, o.Wait, err)
	}
	held, err := principals(ctx, c, apKey)
	if err != nil {
		return err
	}
	say("    held back, pending review: principals of %s still: %s\n", apKey, strings.Join(held, ", "))
	if err := printTable(ctx, cfg, o.Out); err != nil {
		return err
	}
	for _, f := range npt.Status.Findings {
		if f.Type == string(translate.IdentityPending) {
			say("\n%s/%s  %s %s\n    %s", npt.Namespace, npt.Name, f.Severity, f.Type, f.Message)
		}
	}

	id := translate.Identity(npt.Status.PendingIdentities[0].Identity)
	say("\n==> A reviewer approves: netpol2authz approve -n %s %s %s", nptKey.Namespace, nptKey.Name, id)
	if _, err := cli.Approve(ctx, c, nptKey, []translate.Identity{id}, false); err != nil {
		return err
	}
	var after []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, o.Wait, true, func(ctx context.Context) (bool, error) {
		after, err = principals(ctx, c, apKey)
		return err == nil && !slices.Equal(held, after), nil
	})
	if err != nil {
		return fmt.Errorf("the principals of %s did not take the approved identity within %s: %w", apKey, o.Wait, err)
	}
	say("    principals of %s after:  %s", apKey, strings.Join(after, ", "))
	return nil
}

func parseKey(s string) (client.ObjectKey, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return client.ObjectKey{}, fmt.Errorf("%q is not namespace/name", s)
	}
	return client.ObjectKey{Namespace: ns, Name: name}, nil
}

func principals(ctx context.Context, c client.Client, key client.ObjectKey) ([]string, error) {
	ap := &securityv1.AuthorizationPolicy{}
	if err := c.Get(ctx, key, ap); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range ap.Spec.Rules {
		for _, f := range r.From {
			out = append(out, f.Source.GetPrincipals()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// writeKubeconfig writes an admin kubeconfig for the running control plane.
func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "netpol2authz-demo-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}
