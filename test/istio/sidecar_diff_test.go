package istio_test

import (
	"testing"

	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"
)

// A filter in the shape istiod builds (see docs/istio.md, "Sidecars") for
// the two policies below, and how the comparison reads it.
const (
	sidecarDiffPolicies = `
- metadata: {name: netpol-db, namespace: shop}
  spec:
    selector: {matchLabels: {app: db}}
    rules:
    - from:
      - source: {principals: [cluster.local/ns/shop/sa/ops, cluster.local/ns/shop/sa/admin]}
      - source: {namespaces: ["*"]}
      - source: {ipBlocks: [10.0.0.0/8], notIpBlocks: [10.0.1.5]}
      to:
      - operation: {ports: ["5432", "5433"]}
    - to:
      - operation: {ports: ["9090"]}
- metadata: {name: netpol-deny, namespace: shop}
  spec: {}
`
	sidecarDiffFilter = `{"statPrefix": "tcp.", "rules": {"policies": {
  "ns[shop]-policy[netpol-db]-rule[0]": {
    "permissions": [{"andRules": {"rules": [{"orRules": {"rules": [{"destinationPort": 5432}, {"destinationPort": 5433}]}}]}}],
    "principals": [
      {"andIds": {"ids": [{"orIds": {"ids": [
        {"authenticated": {"principalName": {"exact": "spiffe://cluster.local/ns/shop/sa/ops"}}},
        {"authenticated": {"principalName": {"exact": "spiffe://cluster.local/ns/shop/sa/admin"}}}]}}]}},
      {"andIds": {"ids": [{"orIds": {"ids": [
        {"authenticated": {"principalName": {"safeRegex": {"regex": ".*/ns/.*/.*"}}}}]}}]}},
      {"andIds": {"ids": [
        {"orIds": {"ids": [{"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}]}},
        {"notId": {"orIds": {"ids": [{"directRemoteIp": {"addressPrefix": "10.0.1.5", "prefixLen": 32}}]}}}]}}]},
  "ns[shop]-policy[netpol-db]-rule[1]": {
    "permissions": [{"andRules": {"rules": [{"orRules": {"rules": [{"destinationPort": 9090}]}}]}}],
    "principals": [{"andIds": {"ids": [{"any": true}]}}]},
  "ns[shop]-policy[netpol-deny]-rule[0]": {
    "permissions": [{"notRule": {"any": true}}],
    "principals": [{"notId": {"any": true}}]}}}}`
)

// policiesFromYAML decodes a YAML list of AuthorizationPolicies, strictly.
func policiesFromYAML(t *testing.T, text string) []*securityv1.AuthorizationPolicy {
	t.Helper()
	var aps []*securityv1.AuthorizationPolicy
	if err := yaml.UnmarshalStrict([]byte(text), &aps); err != nil {
		t.Fatal(err)
	}
	return aps
}

// TestSidecarDiffFindsEveryChange: the comparison reads the filter back
// into the policies' rules, and any change to the policies is a difference.
func TestSidecarDiffFindsEveryChange(t *testing.T) {
	r := &rbacnet.RBAC{}
	if err := protojson.Unmarshal([]byte(sidecarDiffFilter), r); err != nil {
		t.Fatal(err)
	}
	got, err := decodeFilter(r.Rules, r.ShadowRules)
	if err != nil {
		t.Fatal(err)
	}
	read := func() []*securityv1.AuthorizationPolicy { return policiesFromYAML(t, sidecarDiffPolicies) }
	want, err := expectRBAC(read())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffRBAC(want, got); d != "" {
		t.Fatalf("the filter differs from the policies it was built from (-policies +filter):\n%s", d)
	}

	for what, mutate := range map[string]func(db, deny *securityv1.AuthorizationPolicy){
		"a principal fewer": func(db, _ *securityv1.AuthorizationPolicy) {
			s := db.Spec.Rules[0].From[0].Source
			s.Principals = s.Principals[1:]
		},
		"a namespace": func(db, _ *securityv1.AuthorizationPolicy) {
			db.Spec.Rules[0].From[1].Source.Namespaces = []string{"shop"}
		},
		"an except": func(db, _ *securityv1.AuthorizationPolicy) { db.Spec.Rules[0].From[2].Source.NotIpBlocks = nil },
		"a wider block": func(db, _ *securityv1.AuthorizationPolicy) {
			db.Spec.Rules[0].From[2].Source.IpBlocks = []string{"10.0.0.0/7"}
		},
		"a port fewer": func(db, _ *securityv1.AuthorizationPolicy) { db.Spec.Rules[0].To[0].Operation.Ports = []string{"5432"} },
		"any port":     func(db, _ *securityv1.AuthorizationPolicy) { db.Spec.Rules[0].To = nil },
		"a source":     func(db, _ *securityv1.AuthorizationPolicy) { db.Spec.Rules[1].From = db.Spec.Rules[0].From[:1] },
		"a rule fewer": func(db, _ *securityv1.AuthorizationPolicy) { db.Spec.Rules = db.Spec.Rules[:1] },
		"dry-run": func(db, _ *securityv1.AuthorizationPolicy) {
			db.Annotations = map[string]string{"istio.io/dry-run": "true"}
		},
		"allow-all": func(_, deny *securityv1.AuthorizationPolicy) { deny.Spec.Rules = []*secv1beta1.Rule{{}} },
		"renamed":   func(db, _ *securityv1.AuthorizationPolicy) { db.Name = "netpol-db2" },
	} {
		aps := read()
		mutate(aps[0], aps[1])
		want, err := expectRBAC(aps)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if diffRBAC(want, got) == "" {
			t.Errorf("%s: no difference", what)
		}
	}
}
