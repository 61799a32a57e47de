package istio_test

// A second istiod, started with AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY
// to see what it sends ztunnel for a dry-run policy. testenv.StartIstiod
// cannot start it: it re-registers the suite's one validating webhook for
// the istiod it starts, which would leave every later spec without one.
// This istiod only watches: it has a revision of its own (so it patches no
// webhook configuration of the suite's istiod), a control-plane namespace of
// its own (so its leader-election leases, the status writer's among them,
// never hold the suite's istiod back: a cold CI run once saw no status
// written for a minute) and writes no status.

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// watchingNamespace is the watching istiod's control-plane namespace.
const watchingNamespace = "istio-watching"

// watchingIstiod is an istiod that serves xDS and its debug endpoints and
// writes nothing to the cluster the suite checks.
type watchingIstiod struct {
	HTTPAddr string
	cmd      *exec.Cmd
	done     chan struct{}
	dir      string
	log      bytes.Buffer
}

// startWatchingIstiod starts istiod with the extra environment (KEY=VALUE)
// and waits until it is ready.
func startWatchingIstiod(env *envtest.Environment, extra ...string) (*watchingIstiod, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := testenv.IstiodBinary(root)
	if err != nil {
		return nil, err
	}
	user, err := env.AddUser(envtest.User{Name: "istiod-watching", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "netpol2authz-istiod-watching-")
	if err != nil {
		return nil, err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: watchingNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	w := &watchingIstiod{done: make(chan struct{}), dir: dir}
	for name, data := range map[string][]byte{"kubeconfig": kubeconfig, "mesh.yaml": []byte("trustDomain: cluster.local\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			w.Stop()
			return nil, err
		}
	}
	addrs := make([]string, 6)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			w.Stop()
			return nil, err
		}
	}
	w.HTTPAddr = addrs[0]
	_, ctrlz, _ := net.SplitHostPort(addrs[5])
	w.cmd = exec.Command(bin, "discovery",
		"--kubeconfig", filepath.Join(dir, "kubeconfig"),
		"--namespace", watchingNamespace,
		"--meshConfig", filepath.Join(dir, "mesh.yaml"),
		"--httpAddr", addrs[0],
		"--grpcAddr", addrs[1],
		"--secureGRPCAddr", addrs[2],
		"--monitoringAddr", addrs[3],
		"--httpsAddr", addrs[4],
		"--ctrlz_port", ctrlz,
		"--domain", "cluster.local",
		"--log_output_level", "default:warn",
	)
	w.cmd.Env = append(os.Environ(),
		"PILOT_ENABLE_AMBIENT=true",
		"REVISION=netpol2authz-watching",
		"ISTIOD_CUSTOM_HOST=localhost",
		"POD_NAMESPACE="+watchingNamespace,
		"POD_NAME=istiod-netpol2authz-watching",
		"CLUSTER_ID=Kubernetes",
		"AMBIENT_ENABLE_STATUS=false",
		"VALIDATION_WEBHOOK_CONFIG_NAME=",
		"INJECTION_WEBHOOK_CONFIG_NAME=",
	)
	w.cmd.Env = append(w.cmd.Env, extra...)
	w.cmd.Stdout, w.cmd.Stderr = &w.log, &w.log
	w.cmd.Dir = dir
	if err := w.cmd.Start(); err != nil {
		w.Stop()
		return nil, err
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-w.done:
			return nil, fmt.Errorf("istiod exited: %s", w.log.String())
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + w.HTTPAddr + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w, nil
			}
		}
	}
	w.Stop()
	return nil, fmt.Errorf("the watching istiod is not ready within 1m")
}

// Stop ends istiod and removes its files.
func (w *watchingIstiod) Stop() {
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Signal(os.Interrupt)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	}
	_ = os.RemoveAll(w.dir)
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}
