package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// IstiodBinary returns istiod (pilot-discovery): ISTIOD when set, else the
// newest build under bin/istio-*/ (`make istiod`).
func IstiodBinary(root string) (string, error) {
	if p := os.Getenv("ISTIOD"); p != "" {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(root, "bin", "istio-*", "pilot-discovery"))
	var ready []string
	for _, m := range matches {
		if isExec(m) {
			ready = append(ready, m)
		}
	}
	if len(ready) == 0 {
		return "", errors.New("no istiod found: run `make istiod` (or `make test`), or set ISTIOD")
	}
	sort.Strings(ready)
	return ready[len(ready)-1], nil
}

// IstiodOptions shape an istiod run.
type IstiodOptions struct {
	// Namespace is Istio's control-plane namespace; empty means
	// istio-system. It is created when missing.
	Namespace string
	// MeshConfig is the mesh config istiod reads (YAML); empty means
	// "trustDomain: cluster.local".
	MeshConfig string
	// Env adds environment variables (KEY=VALUE), such as
	// AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY=true.
	Env []string
	// Log receives istiod's output; nil discards it.
	Log *bytes.Buffer
	// Watching starts an istiod that only watches, beside the one the
	// tests check: a revision of its own (it patches no webhook
	// configuration), no status writes, no webhook registered. Give it a
	// Namespace of its own too, so that its leader-election leases never
	// hold back the other istiod.
	Watching bool
}

// Istiod is a running istiod against an envtest control plane. Every
// listening address is a free loopback port.
type Istiod struct {
	// HTTPAddr serves /ready and the /debug endpoints (ambientz,
	// authorizationz, configz…).
	HTTPAddr string
	// GRPCAddr is the plaintext xDS server.
	GRPCAddr string
	// WebhookAddr serves the validation webhook (HTTPS).
	WebhookAddr string
	// Namespace is Istio's control-plane namespace.
	Namespace string

	cmd  *exec.Cmd
	done chan struct{}
	dir  string
	log  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the process's writer goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out *bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out != nil {
		b.out.Write(p)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WebhookName is the ValidatingWebhookConfiguration StartIstiod registers.
const WebhookName = "istio-validator-netpol2authz-test"

// StartIstiod runs istiod (with ambient enabled) against the control plane
// of env, registers its validating webhook with the API server, and waits
// until it is ready and the webhook refuses an invalid AuthorizationPolicy.
func StartIstiod(ctx context.Context, env *envtest.Environment, c client.Client, o IstiodOptions) (*Istiod, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := IstiodBinary(root)
	if err != nil {
		return nil, err
	}
	if o.Namespace == "" {
		o.Namespace = "istio-system"
	}
	if o.MeshConfig == "" {
		o.MeshConfig = "trustDomain: cluster.local\n"
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", o.Namespace, err)
	}
	revision := "default"
	if o.Watching {
		revision = "netpol2authz-watching"
	}
	user, err := env.AddUser(envtest.User{Name: "istiod-" + revision, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "netpol2authz-istiod-")
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"kubeconfig": kubeconfig, "mesh.yaml": []byte(o.MeshConfig)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	i := &Istiod{HTTPAddr: addr(0), GRPCAddr: addr(1), WebhookAddr: addr(4), Namespace: o.Namespace, done: make(chan struct{}), dir: dir, log: &syncBuffer{out: o.Log}}
	i.cmd = exec.Command(bin, "discovery",
		"--kubeconfig", filepath.Join(dir, "kubeconfig"),
		"--namespace", o.Namespace,
		"--meshConfig", filepath.Join(dir, "mesh.yaml"),
		"--httpAddr", addr(0),
		"--grpcAddr", addr(1),
		"--secureGRPCAddr", addr(2),
		"--monitoringAddr", addr(3),
		"--httpsAddr", addr(4),
		"--ctrlz_port", strconv.Itoa(ports[5]),
		"--domain", "cluster.local",
		"--log_output_level", "default:warn",
	)
	i.cmd.Env = append(os.Environ(),
		"PILOT_ENABLE_AMBIENT=true",
		"REVISION="+revision,
		"ISTIOD_CUSTOM_HOST=localhost",
		// No Deployments for Gateways: nothing would run them, and the
		// tests write the waypoints' Services and status themselves.
		"PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER=false",
		"POD_NAMESPACE="+o.Namespace,
		"POD_NAME=istiod-"+revision,
		"CLUSTER_ID=Kubernetes",
	)
	if o.Watching {
		i.cmd.Env = append(i.cmd.Env, "AMBIENT_ENABLE_STATUS=false", "VALIDATION_WEBHOOK_CONFIG_NAME=", "INJECTION_WEBHOOK_CONFIG_NAME=")
	}
	i.cmd.Env = append(i.cmd.Env, o.Env...)
	i.cmd.Stdout, i.cmd.Stderr = i.log, i.log
	i.cmd.Dir = dir
	if err := i.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting istiod %s: %w", bin, err)
	}
	go func() { _ = i.cmd.Wait(); close(i.done) }()
	if err := i.waitReady(ctx); err != nil {
		i.Stop()
		return nil, err
	}
	if o.Watching {
		return i, nil
	}
	if err := i.registerWebhook(ctx, c); err != nil {
		i.Stop()
		return nil, err
	}
	return i, nil
}

// Log is what istiod printed so far.
func (i *Istiod) Log() string { return i.log.String() }

// Stop ends istiod and removes its files.
func (i *Istiod) Stop() {
	if i.cmd != nil && i.cmd.Process != nil {
		_ = i.cmd.Process.Signal(os.Interrupt)
		select {
		case <-i.done:
		case <-time.After(10 * time.Second):
			_ = i.cmd.Process.Kill()
			<-i.done
		}
	}
	_ = os.RemoveAll(i.dir)
}

func (i *Istiod) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-i.done:
			return fmt.Errorf("istiod exited: %s", tail(i.Log()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get("http://" + i.HTTPAddr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("istiod not ready within 2m: %s", tail(i.Log()))
}

// registerWebhook registers istiod's validation webhook for Istio's
// security and networking APIs with the API server, as Istio's chart does
// (a configuration labelled with the revision, whose caBundle istiod
// patches in), and waits until it refuses an invalid policy.
func (i *Istiod) registerWebhook(ctx context.Context, c client.Client) error {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	url := "https://localhost:" + portOf(i.WebhookAddr) + "/validate"
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookName, Labels: map[string]string{"app": "istiod", "istio": "istiod", "istio.io/rev": "default"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "rev.validation.istio.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"security.istio.io", "networking.istio.io"}, APIVersions: []string{"*"}, Resources: []string{"*"}}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if err := c.Delete(ctx, vwc); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err := c.Create(ctx, vwc); err != nil {
		return fmt.Errorf("registering istiod's webhook: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		last = WebhookRefuses(ctx, c, i.Namespace)
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("istiod's webhook is not live within 1m: %w; istiod said: %s", last, tail(i.Log()))
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// WebhookRefuses tries (server-side dry run) an AuthorizationPolicy that
// Istio's validation refuses, a rule with an empty source, and returns nil
// when the API server refused it through istiod's webhook.
func WebhookRefuses(ctx context.Context, c client.Client, namespace string) error {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "netpol2authz-webhook-probe", Namespace: namespace}}
	ap.Spec.Rules = []*secv1beta1.Rule{{From: []*secv1beta1.Rule_From{{Source: &secv1beta1.Source{}}}}}
	err := c.Create(ctx, ap, client.DryRunAll)
	switch {
	case err == nil:
		return errors.New("an AuthorizationPolicy with an empty source was admitted")
	case strings.Contains(err.Error(), "admission webhook") && strings.Contains(err.Error(), "denied"):
		return nil
	default:
		return err
	}
}
