package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// startLive starts a control plane serving the project's CRDs and the
// CRDs at crdPaths besides, stopped when t ends, and returns a context
// bounded to two minutes, the control plane, its address and an admin
// client.
func startLive(t *testing.T, crdPaths ...string) (context.Context, *envtest.Environment, string, client.Client) {
	t.Helper()
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	env.CRDDirectoryPaths = append(env.CRDDirectoryPaths, crdPaths...)
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	admin, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, env, strings.TrimSuffix(cfg.Host, "/"), admin
}

// TestVerifyLive verifies a real API server holding the objects of the
// existing-too-wide fixture, as a user who may only read: the reports must
// say what the offline runs over the same manifests say.
func TestVerifyLive(t *testing.T) {
	ctx, env, host, admin := startLive(t)

	fixture := filepath.Join(verifyFixtureRoot, "existing-too-wide", "in")
	createFixture(ctx, t, admin, fixture)
	kubeconfig := readOnlyUser(ctx, t, env, admin)

	for _, args := range [][]string{nil, {"--existing"}, {"--existing", "-o", "json", "-n", "shop"}} {
		compareLive(t, host, kubeconfig, fixture, args)
	}

	// The mesh ConfigMap is read from the control-plane namespace.
	mustCreate(ctx, t, admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}})
	mustCreate(ctx, t, admin, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
		Data:       map[string]string{"mesh": "trustDomain: corp.example\nrootNamespace: istio-config\n"},
	})
	var out, errOut bytes.Buffer
	if code := RunVerify([]string{"--kubeconfig", kubeconfig}, nil, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "trust domain corp.example (mesh config), root namespace istio-config (mesh config)"; !strings.Contains(out.String(), want) {
		t.Errorf("the report does not say %q:\n%s", want, out.String())
	}

	// An unreachable cluster is bad input, not a crash.
	bad := filepath.Join(t.TempDir(), "kubeconfig")
	data, _ := os.ReadFile(kubeconfig)
	if err := os.WriteFile(bad, bytes.ReplaceAll(data, []byte(host), []byte("https://127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := RunVerify([]string{"--kubeconfig", bad}, nil, &out, &errOut); code != ExitBadInput || !strings.Contains(errOut.String(), "error: cluster https://127.0.0.1:1") {
		t.Errorf("unreachable cluster: exit %d, stderr %q", code, errOut.String())
	}
}

// TestVerifyLiveIdentityReview verifies a cluster holding the IdentityApproval
// of the identity-pending fixture: the pending identities are read from the
// cluster as from the files, and explained alike.
func TestVerifyLiveIdentityReview(t *testing.T) {
	ctx, env, host, admin := startLive(t)
	fixture := filepath.Join(verifyFixtureRoot, "identity-pending", "in")
	createFixture(ctx, t, admin, fixture)
	kubeconfig := readOnlyUser(ctx, t, env, admin)
	for _, args := range [][]string{nil, {"-o", "json"}, {"--identity", "follow"}} {
		out := compareLive(t, host, kubeconfig, fixture, args)
		if pending := strings.Contains(out, "IdentityPending"); pending != (len(args) == 0 || args[0] != "--identity") {
			t.Errorf("verify %v: IdentityPending in the report: %t\n%s", args, pending, out)
		}
	}

	// Without the IdentityApproval CRD (netpol2authz not installed), no
	// NetworkPolicy has an approval record: each is at its first
	// translation, and verify goes on.
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName("identityapprovals.policy.netpol2authz.io")
	if err := admin.Delete(ctx, crd); err != nil {
		t.Fatal(err)
	}
	// Once it is gone, listing IdentityApprovals cannot succeed: verify
	// must skip them.
	for deadline := time.Now().Add(time.Minute); !apierrors.IsNotFound(admin.Get(ctx, client.ObjectKeyFromObject(crd), crd)); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the IdentityApproval CRD is not deleted")
		}
	}
	var out, errOut bytes.Buffer
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		out.Reset()
		errOut.Reset()
		code := RunVerify([]string{"--kubeconfig", kubeconfig}, nil, &out, &errOut)
		if code == ExitOK && strings.Contains(out.String(), "no difference") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without the IdentityApproval CRD: exit %d\n%s%s", code, out.String(), errOut.String())
		}
	}
}

// compareLive runs verify with args over the cluster of kubeconfig and over
// the fixture's files: the exit codes and reports must be the same but for
// the input they name. It returns the live report.
func compareLive(t *testing.T, host, kubeconfig, fixture string, args []string) string {
	t.Helper()
	var live string
	t.Run(strings.Join(append([]string{"verify"}, args...), " "), func(t *testing.T) {
		var offOut, offErr, liveOut, liveErr bytes.Buffer
		offCode := RunVerify(append([]string{"-f", fixture}, args...), nil, &offOut, &offErr)
		liveCode := RunVerify(append([]string{"--kubeconfig", kubeconfig}, args...), nil, &liveOut, &liveErr)
		live = liveOut.String()
		if liveCode != offCode {
			t.Fatalf("exit %d live, %d offline\nlive stderr:\n%s", liveCode, offCode, liveErr.String())
		}
		l, off := strings.Replace(liveOut.String(), "in the cluster", "in the input", 1), offOut.String()
		if got, want := withoutInput(l), withoutInput(off); got != want {
			t.Errorf("live report differs from the offline one:\n--- live\n%s\n--- offline\n%s", liveOut.String(), offOut.String())
		}
		if !strings.Contains(liveOut.String(), host) {
			t.Errorf("the live report does not name the cluster %s:\n%s", host, liveOut.String())
		}
	})
	return live
}

// withoutInput drops the line naming where the input came from.
func withoutInput(report string) string {
	var keep []string
	for _, l := range strings.Split(report, "\n") {
		if strings.HasPrefix(l, "Input:") {
			continue
		}
		keep = append(keep, l)
	}
	out := strings.Join(keep, "\n")
	// The JSON report names its input in a block of its own.
	if i := strings.Index(out, `"input": {`); i >= 0 {
		if j := strings.Index(out[i:], "},"); j >= 0 {
			out = out[:i] + out[i+j+2:]
		}
	}
	return out
}

// createFixture creates every object of the fixture's manifests, and sets
// the status of its pods as the kubelet would.
func createFixture(ctx context.Context, t *testing.T, c client.Client, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixture in %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(obj.Object) > 0 {
				objs = append(objs, obj)
			}
		}
	}
	// Namespaces first.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return compareBool(a.GetKind() != "Namespace", b.GetKind() != "Namespace")
	})
	{
		for _, obj := range objs {
			status, hasStatus := obj.Object["status"]
			mustCreate(ctx, t, c, obj)
			if obj.GetKind() != "Pod" || !hasStatus {
				continue
			}
			pod := &corev1.Pod{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), pod); err != nil {
				t.Fatal(err)
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(status.(map[string]any), &pod.Status); err != nil {
				t.Fatal(err)
			}
			if pod.Status.PodIP != "" {
				pod.Status.PodIPs = []corev1.PodIP{{IP: pod.Status.PodIP}}
			}
			if err := c.Status().Update(ctx, pod); err != nil {
				t.Fatalf("pod %s status: %v", pod.Name, err)
			}
		}
	}
}

// readOnlyUser adds a user who may only get and list what verify reads, and
// returns the path of its kubeconfig.
func readOnlyUser(ctx context.Context, t *testing.T, env *envtest.Environment, admin client.Client) string {
	t.Helper()
	read := []string{"get", "list"}
	mustCreate(ctx, t, admin, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol2authz-verify"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces", "pods", "configmaps", "services"}, Verbs: read},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"gateways"}, Verbs: read},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
			{APIGroups: []string{"security.istio.io"}, Resources: []string{"authorizationpolicies"}, Verbs: read},
			{APIGroups: []string{"policy.netpol2authz.io"}, Resources: []string{"identityapprovals"}, Verbs: read},
			{APIGroups: []string{"policy.networking.k8s.io"}, Resources: []string{"adminnetworkpolicies", "baselineadminnetworkpolicies", "clusternetworkpolicies"}, Verbs: read},
		},
	})
	mustCreate(ctx, t, admin, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "netpol2authz-verify"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "netpol2authz-verify"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "verify-reader"}},
	})
	user, err := env.AddUser(envtest.User{Name: "verify-reader"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func mustCreate(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(ctx, obj); err != nil {
		t.Fatalf("creating %s %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
	}
}
