package istio_test

import (
	"net/netip"
	"strings"
	"testing"

	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// A waypoint chain's filter in the shape istiod builds for a policy bound
// to a Service (measured: docs/istio.md, "Waypoints"): principals and
// namespaces on the filter state io.istio.peer_principal, the service port.
const (
	waypointDiffPolicies = `
- metadata: {name: netpol-db-svc-db, namespace: shop}
  spec:
    targetRefs: [{kind: Service, name: db}]
    rules:
    - from:
      - source: {principals: [cluster.local/ns/shop/sa/api]}
      - source: {namespaces: [ops]}
      - source: {ipBlocks: [10.0.0.0/8], notIpBlocks: [10.0.1.5]}
      to:
      - operation: {ports: ["80"]}
`
	waypointDiffFilter = `{"statPrefix": "tcp.", "rules": {"policies": {
  "ns[shop]-policy[netpol-db-svc-db]-rule[0]": {
    "permissions": [{"andRules": {"rules": [{"orRules": {"rules": [{"destinationPort": 80}]}}]}}],
    "principals": [
      {"andIds": {"ids": [{"orIds": {"ids": [
        {"filterState": {"key": "io.istio.peer_principal", "stringMatch": {"exact": "spiffe://cluster.local/ns/shop/sa/api"}}}]}}]}},
      {"andIds": {"ids": [{"orIds": {"ids": [
        {"filterState": {"key": "io.istio.peer_principal", "stringMatch": {"safeRegex": {"regex": ".*/ns/ops/.*"}}}}]}}]}},
      {"andIds": {"ids": [
        {"orIds": {"ids": [{"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}]}},
        {"notId": {"orIds": {"ids": [{"directRemoteIp": {"addressPrefix": "10.0.1.5", "prefixLen": 32}}]}}}]}}]}}}}`
)

// TestWaypointDiffFindsEveryChange: the waypoint decoder reads principals
// from the filter state (and only there: the sidecar decoder refuses
// them), the comparison finds the filter equal to its policy and any
// change to the policy a difference; the path evaluation follows it.
func TestWaypointDiffFindsEveryChange(t *testing.T) {
	r := &rbacnet.RBAC{}
	if err := protojson.Unmarshal([]byte(waypointDiffFilter), r); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeFilter(r.Rules, r.ShadowRules); err == nil || !strings.Contains(err.Error(), "unexpected matcher") {
		t.Fatalf("the sidecar decoder read a waypoint's filter state: %v", err)
	}
	got, err := testenv.DecodeWaypointFilter(r.Rules, r.ShadowRules)
	if err != nil {
		t.Fatal(err)
	}
	read := func() []*securityv1.AuthorizationPolicy { return policiesFromYAML(t, waypointDiffPolicies) }
	want, err := expectRBAC(read())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRBAC(want, got); d != "" {
		t.Fatalf("the filter differs from the policy it was built from (-policy +filter):\n%s", d)
	}
	for what, mutate := range map[string]func(ap *securityv1.AuthorizationPolicy){
		"a principal":  func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].From[0].Source.Principals[0] += "x" },
		"a namespace":  func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].From[1].Source.Namespaces = []string{"*"} },
		"an except":    func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].From[2].Source.NotIpBlocks = nil },
		"the port":     func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].To[0].Operation.Ports = []string{"8080"} },
		"any port":     func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].To = nil },
		"a source":     func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].From = ap.Spec.Rules[0].From[1:] },
		"another name": func(ap *securityv1.AuthorizationPolicy) { ap.Name = "netpol-db-svc-db2" },
	} {
		aps := read()
		mutate(aps[0])
		want, err := expectRBAC(aps)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if diffRBAC(want, got) == "" {
			t.Errorf("%s: no difference", what)
		}
	}

	for _, c := range []struct {
		principal, ip string
		port          int32
		allowed       bool
	}{
		{"cluster.local/ns/shop/sa/api", "192.168.0.1", 80, true},
		{"cluster.local/ns/shop/sa/api", "192.168.0.1", 8080, false},
		{"cluster.local/ns/shop/sa/web", "192.168.0.1", 80, false},
		{"cluster.local/ns/ops/sa/any", "192.168.0.1", 80, true},
		{"cluster.local/ns/shop/sa/web", "10.1.0.1", 80, true},
		{"cluster.local/ns/shop/sa/web", "10.0.1.5", 80, false},
	} {
		if got := chainAllows(&got, c.principal, netip.MustParseAddr(c.ip), c.port); got != c.allowed {
			t.Errorf("chainAllows(%s from %s on %d) = %v", c.principal, c.ip, c.port, got)
		}
	}
	if !chainAllows(nil, "", netip.MustParseAddr("10.0.0.1"), 1) {
		t.Error("a chain without RBAC lets everything through")
	}
}
