package install_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// A manager Deployment as rendered by each way of installing, and the flags
// it must pass (flag=value, or a bare flag).
var managerRenders = map[string]struct {
	render   func(t *testing.T) []byte
	want     []string
	dontWant []string
}{
	"kustomize config/default": {
		render: func(t *testing.T) []byte { return kustomize(t, "config/default") },
		want:   []string{"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443"},
	},
	"chart defaults": {
		render: func(t *testing.T) []byte { return helmTemplate(t, "") },
		want: []string{
			"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443",
			"--zap-log-level=info",
			"--istio-namespace=" + controllers.DefaultIstioNamespace,
			fmt.Sprintf("--max-port-range=%d", translate.DefaultMaxPortRange),
		},
		dontWant: []string{"--metrics-secure", "--trust-domain", "--root-namespace"},
	},
	"chart without metrics, with mesh settings": {
		render: func(t *testing.T) []byte {
			return helmTemplate(t, `
metrics: {enable: false}
manager:
  trustDomain: example.org
  rootNamespace: mesh-root
  istioNamespace: istio-control
  maxPortRange: 64
  logLevel: debug
  healthProbe: {port: 9081}
  extraArgs: [--enable-http2]
`)
		},
		want: []string{
			"--leader-elect", "--health-probe-bind-address=:9081", "--trust-domain=example.org",
			"--root-namespace=mesh-root", "--istio-namespace=istio-control", "--max-port-range=64",
			"--zap-log-level=debug", "--enable-http2",
		},
		dontWant: []string{"--metrics-bind-address", "--metrics-secure"},
	},
	"chart with plain-HTTP metrics, replicas and scheduling": {
		render: func(t *testing.T) []byte {
			return helmTemplate(t, `
metrics: {port: 8080, secure: false}
manager:
  replicas: 3
  image: {repository: registry.example.com/netpol2authz, tag: v9.9.9, pullPolicy: Always}
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/name: netpol2authz}}
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {cpu: "1", memory: 1Gi}
`)
		},
		want: []string{"--leader-elect", "--metrics-bind-address=:8080", "--metrics-secure=false"},
	},
}

func TestManagerPodMeetsRestrictedAndRuns(t *testing.T) {
	flags := managerFlags(t)
	for name, tc := range managerRenders {
		t.Run(name, func(t *testing.T) {
			d := managerDeployment(t, parse(t, tc.render(t)))
			checkRestricted(t, d)
			c := checkManagerContainer(t, d, flags)
			for _, w := range tc.want {
				if !hasArg(c.Args, w) {
					t.Errorf("args %q lack %s", c.Args, w)
				}
			}
			for _, f := range tc.dontWant {
				if flagValue(c.Args, f) != nil {
					t.Errorf("args %q pass %s", c.Args, f)
				}
			}
		})
	}
}

// checkRestricted runs the Pod Security Admission library's own checks of
// the restricted level, latest version, on the pod template.
func checkRestricted(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	results := ev.EvaluatePod(lv, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec)
	if len(results) == 0 {
		t.Fatal("the restricted level ran no checks")
	}
	for _, r := range results {
		if !r.Allowed {
			t.Errorf("restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}

// checkManagerContainer checks what the restricted level leaves open and the
// manager needs: a read-only root filesystem, requests and limits, probes on
// the health port, and `netpol2authz manager` with flags it knows.
func checkManagerContainer(t *testing.T, d *appsv1.Deployment, flags map[string]bool) corev1.Container {
	t.Helper()
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 || spec.Containers[0].Name != "manager" {
		t.Fatalf("want one container named manager, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if spec.ServiceAccountName == "" {
		t.Error("no serviceAccountName")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is not read-only")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[r]
		lim, hasLim := c.Resources.Limits[r]
		switch {
		case !hasReq || req.IsZero():
			t.Errorf("no %s request", r)
		case !hasLim || lim.IsZero():
			t.Errorf("no %s limit", r)
		case req.Cmp(lim) > 0:
			t.Errorf("%s request %s exceeds its limit %s", r, req.String(), lim.String())
		}
	}

	if len(c.Command) != 1 || c.Command[0] != imageEntrypoint {
		t.Errorf("command %q, want [%s] (the image's entrypoint)", c.Command, imageEntrypoint)
	}
	if len(c.Args) == 0 || c.Args[0] != "manager" {
		t.Fatalf("args %q do not start with the subcommand manager", c.Args)
	}
	seen := map[string]bool{}
	for _, a := range c.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "-"):
			t.Errorf("argument %q after the flags: the manager takes none", a)
		case !flags[name]:
			t.Errorf("flag %s is not a flag of `netpol2authz manager`", a)
		case seen[name]:
			t.Errorf("flag --%s is passed twice", name)
		}
		seen[name] = true
	}

	probePort := 8081
	if v := flagValue(c.Args, "--health-probe-bind-address"); v != nil {
		if _, err := fmt.Sscanf(strings.TrimPrefix(*v, ":"), "%d", &probePort); err != nil {
			t.Errorf("--health-probe-bind-address=%s: no port: %v", *v, err)
		}
	}
	for _, pr := range []struct {
		name, path string
		probe      *corev1.Probe
	}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
		switch p := pr.probe; {
		case p == nil || p.HTTPGet == nil:
			t.Errorf("no HTTP %s probe", pr.name)
		case p.HTTPGet.Path != pr.path || p.HTTPGet.Port.IntValue() != probePort:
			t.Errorf("%s probe on %s:%s, want %s:%d", pr.name, p.HTTPGet.Path, p.HTTPGet.Port.String(), pr.path, probePort)
		}
	}
	if v := flagValue(c.Args, "--metrics-bind-address"); v != nil && *v != "0" {
		var port int32
		if _, err := fmt.Sscanf(strings.TrimPrefix(*v, ":"), "%d", &port); err != nil {
			t.Errorf("--metrics-bind-address=%s: no port: %v", *v, err)
		}
		if !hasContainerPort(c, port) {
			t.Errorf("metrics on %s but no containerPort %d", *v, port)
		}
	}
	return c
}

func hasContainerPort(c corev1.Container, port int32) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

// hasArg says whether args hold want, a bare flag or flag=value.
func hasArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// flagValue returns the value of --name in args ("" for a bare flag), or nil.
func flagValue(args []string, name string) *string {
	for _, a := range args {
		if a == name {
			v := ""
			return &v
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return &v
		}
	}
	return nil
}

var (
	flagLine      = regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)
	managerHelp   sync.Once
	managerFlagsV map[string]bool
	managerErr    error
)

// managerFlags returns the flags of `netpol2authz manager`, from its help.
func managerFlags(t *testing.T) map[string]bool {
	t.Helper()
	managerHelp.Do(func() {
		cmd := exec.Command("go", "run", ".", "manager", "-h")
		cmd.Dir = root(t)
		out, _ := cmd.CombinedOutput() // -h exits with status 2
		managerFlagsV = map[string]bool{}
		for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
			managerFlagsV[m[1]] = true
		}
		if !managerFlagsV["leader-elect"] {
			managerErr = fmt.Errorf("`go run . manager -h` lists no --leader-elect:\n%s", out)
		}
	})
	if managerErr != nil {
		t.Fatal(managerErr)
	}
	return managerFlagsV
}
