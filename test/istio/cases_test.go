package istio_test

// Shared helpers: the golden cases of internal/translate/testdata/cases as
// a broad cluster to build (every row of the translation contract), with
// their namespaces renamed so that each spec gets fresh ones (envtest has no
// namespace controller: a deleted namespace never goes away, so a name is
// never reused), and pods created as a kubelet would report them.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// caseInput is testdata/cases/<name>/input.yaml (a copy of the struct of
// internal/translate/golden_test.go, which tests cannot import).
type caseInput struct {
	Options         translate.Options            `json:"options"`
	Mesh            translate.MeshSettings       `json:"mesh"`
	Namespaces      []translate.Namespace        `json:"namespaces"`
	Pods            []translate.Pod              `json:"pods"`
	NetworkPolicies []networkingv1.NetworkPolicy `json:"networkPolicies"`
	Approvals       []translate.Approval         `json:"approvals"`
	AdminPolicies   []json.RawMessage            `json:"adminPolicies"`
	Services        []translate.Service          `json:"services"`
	Gateways        []translate.Gateway          `json:"gateways"`
	OtherPolicies   []networkingv1.NetworkPolicy `json:"otherPolicies"`
}

// goldenCase is one variant of a golden case: expected.yaml runs the input
// as written, expected.<fidelity>.yaml with that default fidelity.
type goldenCase struct {
	// Name is the case directory, with "/<fidelity>" for a fidelity
	// variant.
	Name     string
	Snapshot translate.Snapshot
	Options  translate.Options
}

// loadGoldenCases reads every variant of every case, sorted by name.
func loadGoldenCases() ([]goldenCase, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	dirs, err := filepath.Glob(filepath.Join(root, "internal", "translate", "testdata", "cases", "*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dirs)
	var out []goldenCase
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
		if err != nil {
			return nil, err
		}
		var in caseInput
		if err := yaml.UnmarshalStrict(data, &in); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		snap := translate.Snapshot{Namespaces: in.Namespaces, Pods: in.Pods, NetworkPolicies: in.NetworkPolicies, Mesh: in.Mesh, Approvals: in.Approvals,
			Services: in.Services, Gateways: in.Gateways, OtherPolicies: in.OtherPolicies}
		for i, raw := range in.AdminPolicies {
			p, err := adminpolicy.Decode(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: adminPolicies[%d]: %w", dir, i, err)
			}
			snap.AdminPolicies = append(snap.AdminPolicies, p)
		}
		for _, v := range []struct {
			file     string
			fidelity translate.Fidelity
		}{{"expected.yaml", ""}, {"expected.permissive.yaml", translate.FidelityPermissive}, {"expected.strict.yaml", translate.FidelityStrict}} {
			if _, err := os.Stat(filepath.Join(dir, v.file)); err != nil {
				continue
			}
			c := goldenCase{Name: filepath.Base(dir), Snapshot: snap, Options: in.Options}
			if v.fidelity != "" {
				c.Name += "/" + string(v.fidelity)
				c.Options.DefaultFidelity = v.fidelity
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no golden cases under %s", root)
	}
	return out, nil
}

// Policies are the AuthorizationPolicies the engine generates for the case,
// in the case's own namespaces.
func (c goldenCase) Policies() []*securityv1.AuthorizationPolicy {
	var out []*securityv1.AuthorizationPolicy
	for _, tr := range translate.Translate(c.Snapshot, c.Options).Translations {
		out = append(out, tr.Policies...)
	}
	return out
}

// Namespaces are the names of every namespace the case declares or puts a
// pod or NetworkPolicy in, sorted.
func (c goldenCase) Namespaces() []string {
	set := map[string]bool{}
	for _, ns := range c.Snapshot.Namespaces {
		set[ns.Name] = true
	}
	for _, p := range c.Snapshot.Pods {
		set[p.Namespace] = true
	}
	for _, np := range c.Snapshot.NetworkPolicies {
		set[np.Namespace] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LivePods are the case's pods a kubelet would report and istiod would
// build a workload for: real pods (not templates), neither terminated nor
// on the host network. Each is returned as a Pod of namespace rename(ns)
// with the case's labels, ServiceAccount (default when empty: envtest does
// not default it) and container ports; its status is set by createPod.
func (c goldenCase) LivePods(rename func(string) string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range c.Snapshot.Pods {
		if p.Template != "" || p.HostNetwork || p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed {
			continue
		}
		sa := p.ServiceAccount
		if sa == "" {
			sa = "default"
		}
		ctr := corev1.Container{Name: "app", Image: "registry.k8s.io/pause:3.10"}
		for _, cp := range p.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ctr.Ports = append(ctr.Ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.Port, Protocol: proto})
		}
		labels := map[string]string{}
		for k, v := range p.Labels {
			labels[k] = v
		}
		out = append(out, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: rename(p.Namespace), Labels: labels},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{ctr}},
		})
	}
	return out
}

// specSeq numbers the renamings of this run.
var specSeq atomic.Int64

// freshRenamer returns a renaming of namespaces unique to this run:
// ns → ns-<tag><n>. tag tells who made it (a for ambient, s for sidecar…).
func freshRenamer(tag string) func(string) string {
	suffix := fmt.Sprintf("-%s%d", tag, specSeq.Add(1))
	return func(ns string) string {
		if len(ns)+len(suffix) > 63 {
			ns = ns[:63-len(suffix)]
		}
		return ns + suffix
	}
}

// renamePolicy returns a copy of ap in namespace rename(ap.Namespace) whose
// sources name the renamed namespaces: the namespace of each principal
// (<trust domain>/ns/<namespace>/sa/<sa>) and each entry of namespaces.
// Wildcards are left as they are.
func renamePolicy(ap *securityv1.AuthorizationPolicy, rename func(string) string) *securityv1.AuthorizationPolicy {
	out := ap.DeepCopy()
	out.Namespace = rename(ap.Namespace)
	one := func(ns string) string {
		if ns == "" || strings.Contains(ns, "*") {
			return ns
		}
		return rename(ns)
	}
	for _, r := range out.Spec.Rules {
		for _, f := range r.From {
			s := f.GetSource()
			if s == nil {
				continue
			}
			for i, p := range s.Principals {
				parts := strings.Split(p, "/")
				for j := 0; j+1 < len(parts); j++ {
					if parts[j] == "ns" {
						parts[j+1] = one(parts[j+1])
						break
					}
				}
				s.Principals[i] = strings.Join(parts, "/")
			}
			for i, ns := range s.Namespaces {
				s.Namespaces[i] = one(ns)
			}
		}
	}
	return out
}

// podIPSeq hands out pod IPs unique to this run, from 10.200.0.0/16 up:
// the cases reuse IPs, and istiod's ambient index is keyed by address.
var podIPSeq atomic.Uint32

// freshPodIP returns an IPv4 address no other pod of this run has.
func freshPodIP() netip.Addr {
	n := podIPSeq.Add(1)
	return netip.AddrFrom4([4]byte{10, byte(200 + n>>16), byte(n >> 8), byte(n)})
}

// createPod creates pod and reports it Running and Ready with ip, as a
// kubelet would.
func createPod(ctx context.Context, c client.Client, pod *corev1.Pod, ip netip.Addr) error {
	if err := c.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	pod.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		PodIP:      ip.String(),
		PodIPs:     []corev1.PodIP{{IP: ip.String()}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if err := c.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("setting the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
