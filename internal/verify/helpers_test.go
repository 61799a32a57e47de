package verify

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// testCluster is a cluster written as YAML in a test: translate's own
// Namespace and Pod types (fields matched case-insensitively), real
// NetworkPolicies and AuthorizationPolicies.
type testCluster struct {
	Mesh                  translate.MeshSettings            `json:"mesh"`
	Namespaces            []translate.Namespace             `json:"namespaces"`
	Pods                  []translate.Pod                   `json:"pods"`
	NetworkPolicies       []networkingv1.NetworkPolicy      `json:"networkPolicies"`
	AuthorizationPolicies []*securityv1.AuthorizationPolicy `json:"authorizationPolicies"`
	Approvals             []translate.Approval              `json:"approvals"`
	Options               translate.Options                 `json:"options"`
	// AdminPolicies are admin network policy manifests of any kind.
	AdminPolicies []json.RawMessage `json:"adminPolicies"`
	admin         []adminpolicy.Policy
	Services      []translate.Service `json:"services"`
	Gateways      []translate.Gateway `json:"gateways"`
}

func readCluster(t testing.TB, text string) testCluster {
	t.Helper()
	var c testCluster
	if err := yaml.UnmarshalStrict([]byte(text), &c); err != nil {
		t.Fatalf("test cluster: %v", err)
	}
	for i := range c.Pods {
		if c.Pods[i].Phase == "" {
			c.Pods[i].Phase = "Running"
		}
	}
	for i, raw := range c.AdminPolicies {
		res, err := manifest.Decode([]manifest.Input{{Name: fmt.Sprintf("adminPolicies[%d].json", i), Data: raw}}, manifest.Options{})
		if err != nil {
			t.Fatalf("test cluster: %v", err)
		}
		c.admin = append(c.admin, res.Snapshot.AdminPolicies...)
	}
	return c
}

func (c testCluster) snapshot() translate.Snapshot {
	return translate.Snapshot{Namespaces: c.Namespaces, Pods: c.Pods, NetworkPolicies: c.NetworkPolicies, Mesh: c.Mesh, Approvals: c.Approvals, AdminPolicies: c.admin,
		Services: c.Services, Gateways: c.Gateways}
}

// existing is an Input checking the cluster's AuthorizationPolicies.
func (c testCluster) existing() Input {
	s := c.snapshot()
	return Input{Snapshot: s, Translation: translate.Translate(s, c.Options), CheckExisting: true, Existing: c.AuthorizationPolicies}
}

// generated is an Input checking what translate generates.
func (c testCluster) generated() Input {
	s := c.snapshot()
	return Input{Snapshot: s, Translation: translate.Translate(s, c.Options)}
}

// connection is "ns/src -> ns/dst:port".
type connection struct {
	src, dst string
	port     int32
}

func parseConnection(t testing.TB, s string) connection {
	t.Helper()
	src, rest, ok := strings.Cut(s, " -> ")
	dst, port, ok2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(port)
	if !ok || !ok2 || err != nil {
		t.Fatalf("bad connection %q: want ns/src -> ns/dst:port", s)
	}
	return connection{strings.TrimSpace(src), strings.TrimSpace(dst), int32(n)}
}

func (e *engine) pod(t testing.TB, name string) *podInfo {
	t.Helper()
	for _, p := range e.w.pods {
		if p.pod.Namespace+"/"+p.pod.Name == name {
			return p
		}
	}
	t.Fatalf("no counted pod %s", name)
	return nil
}

// npAllows evaluates the NetworkPolicies for one connection: strict reads
// ipBlock as never matching pods, loose as matching their addresses.
func (e *engine) npAllows(t testing.TB, c connection) (strict, loose bool) {
	src, dst := e.pod(t, c.src), e.pod(t, c.dst)
	s := e.newScratch()
	e.np.verdict(e.np.at(e.w.dsts[dst.dst]), c.port, s.npStrict, s.npLoose, s.npEgress, s.egLoose)
	return s.npStrict.has(src.src), s.npLoose.has(src.src)
}

// istioAllows evaluates the policies checked for one connection, with
// dry-run policies as if enforced (asEnforced) and as Istio does today.
func (e *engine) istioAllows(t testing.TB, c connection) (asEnforced, today bool) {
	src, dst := e.pod(t, c.src), e.pod(t, c.dst)
	s := e.newScratch()
	at := e.force.at(e.w.dsts[dst.dst])
	e.force.verdict(at, c.port, false, s.allow, s.deny)
	e.force.verdict(at, c.port, true, s.enfAllow, s.enfDeny)
	return s.allow.has(src.src), s.enfAllow.has(src.src)
}

// describe renders a difference on one line, for failures.
func describe(d Difference) string {
	names := func(ps PodSet) string {
		var s []string
		for _, ns := range ps.AllOf {
			s = append(s, ns+"/*")
		}
		for _, p := range ps.Pods {
			s = append(s, p.Namespace+"/"+p.Name)
		}
		for _, r := range ps.Addresses {
			s = append(s, "["+r.String()+"]")
		}
		return strings.Join(s, ",")
	}
	expl := "UNEXPLAINED"
	if d.Explanation != nil {
		expl = d.Explanation.Type + " " + d.Explanation.NetworkPolicy
	}
	return fmt.Sprintf("%s %s -> %s ports %v dry=%t: %s", d.Direction, names(d.Sources), names(d.Destinations), d.Ports, d.DryRun, expl)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
