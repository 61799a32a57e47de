package adminpolicy

import (
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// parse reads one admin policy of any kind from YAML.
func parse(t *testing.T, doc string) Policy {
	t.Helper()
	var meta struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
		t.Fatal(err)
	}
	switch meta.APIVersion + "/" + meta.Kind {
	case V1alpha1 + "/AdminNetworkPolicy":
		var o v1alpha1.AdminNetworkPolicy
		mustUnmarshal(t, doc, &o)
		return FromAdminNetworkPolicy(&o)
	case V1alpha1 + "/BaselineAdminNetworkPolicy":
		var o v1alpha1.BaselineAdminNetworkPolicy
		mustUnmarshal(t, doc, &o)
		return FromBaselineAdminNetworkPolicy(&o)
	case V1alpha2 + "/ClusterNetworkPolicy":
		var o v1alpha2.ClusterNetworkPolicy
		mustUnmarshal(t, doc, &o)
		p, err := FromClusterNetworkPolicyV1alpha2(&o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	case V1beta1 + "/ClusterNetworkPolicy":
		var o v1beta1.ClusterNetworkPolicy
		mustUnmarshal(t, doc, &o)
		return FromClusterNetworkPolicy(&o)
	}
	t.Fatalf("unknown kind %s %s", meta.APIVersion, meta.Kind)
	return Policy{}
}

func mustUnmarshal(t *testing.T, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatal(err)
	}
}

func compileAll(t *testing.T, docs ...string) []*Compiled {
	t.Helper()
	var out []*Compiled
	for _, d := range docs {
		p := parse(t, d)
		c, errs := Compile(&p)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", p.Ref(), errs)
		}
		out = append(out, c)
	}
	Sort(out)
	return out
}

// The houses of the API's conformance suite: one pod each in namespaces
// labelled conformance-house, serving TCP 80 (named web) and 8080.
func house(name string) Endpoint {
	return Endpoint{
		NamespaceLabels: labels.Set{"conformance-house": name, "kubernetes.io/metadata.name": "network-policy-conformance-" + name},
		Labels:          labels.Set{"conformance-house": name},
		Named:           map[string][]int32{"web": {80}},
	}
}

var (
	gryffindor = house("gryffindor")
	slytherin  = house("slytherin")
	hufflepuff = house("hufflepuff")
)

// The admin tier Deny, its Pass variant and the baseline Deny of the API's
// integration conformance test (CNPAdminTierIntegration), read for ingress.
const (
	passExample = `
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: pass-example}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: ACTION
    from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]
  egress:
  - name: deny-all-egress-to-slytherin
    action: ACTION
    to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]
`
	baselineDefault = `
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: default}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
  ingress:
  - name: deny-all-ingress-from-slytherin
    action: Deny
    from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]
  egress:
  - name: deny-all-egress-to-slytherin
    action: Deny
    to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]
`
)

func TestAllowedIntegration(t *testing.T) {
	// The NetworkPolicy allow-gress-from-to-slytherin-to-gryffindor
	// selects gryffindor and allows slytherin both ways.
	npAllows := NetworkPolicies{Selected: true, Allows: true}
	cases := map[string]struct {
		action  string
		np      NetworkPolicies
		ingress bool
		want    bool
	}{
		"admin Deny beats the NetworkPolicy (ingress)":     {action: "Deny", np: npAllows, ingress: true, want: false},
		"admin Deny beats the NetworkPolicy (egress)":      {action: "Deny", np: npAllows, want: false},
		"Pass: the NetworkPolicy allows (ingress)":         {action: "Pass", np: npAllows, ingress: true, want: true},
		"Pass: the NetworkPolicy allows (egress)":          {action: "Pass", np: npAllows, want: true},
		"Pass without NetworkPolicy: baseline denies (in)": {action: "Pass", ingress: true, want: false},
		"Pass without NetworkPolicy: baseline denies (eg)": {action: "Pass", want: false},
		"Accept beats the NetworkPolicy's denial":          {action: "Accept", np: NetworkPolicies{Selected: true}, ingress: true, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ps := compileAll(t, strings.ReplaceAll(passExample, "ACTION", tc.action), baselineDefault)
			for _, port := range []int32{80, 8080} {
				var got bool
				if tc.ingress {
					got = Allowed(ps, true, slytherin, gryffindor, port, tc.np)
				} else {
					got = Allowed(ps, false, gryffindor, slytherin, port, tc.np)
				}
				if got != tc.want {
					t.Errorf("port %d: allowed = %v, want %v", port, got, tc.want)
				}
			}
		})
	}
}

// TestAllowedPriority follows CNPAdminTierPriorityField: a Deny at
// priority 50 and a Pass at 60, then at 40.
func TestAllowedPriority(t *testing.T) {
	const deny50 = `
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: priority-50-example}
spec:
  tier: Admin
  priority: 50
  subject: {pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}}
  ingress:
  - action: Deny
    from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
`
	const pass = `
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: old-priority-60-new-priority-40-example}
spec:
  tier: Admin
  priority: PRIORITY
  subject: {pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}}
  ingress:
  - action: Pass
    from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
`
	for prio, want := range map[string]bool{"60": false, "40": true} {
		ps := compileAll(t, deny50, strings.ReplaceAll(pass, "PRIORITY", prio))
		if got := Allowed(ps, true, slytherin, gryffindor, 80, NetworkPolicies{}); got != want {
			t.Errorf("pass at priority %s: allowed = %v, want %v", prio, got, want)
		}
		// Nothing selects hufflepuff's traffic: the default allows it.
		if !Allowed(ps, true, hufflepuff, gryffindor, 80, NetworkPolicies{}) {
			t.Errorf("pass at priority %s: hufflepuff denied", prio)
		}
	}
}

// TestAllowedRuleOrder: within a policy the first matching rule decides,
// an AdminNetworkPolicy's named port is the destination's, and a port
// range of another protocol matches no TCP.
func TestAllowedRuleOrder(t *testing.T) {
	const anp = `
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: web-from-slytherin}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
  ingress:
  - name: allow-web
    action: Allow
    from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]
    ports: [{namedPort: web}]
  - name: deny-udp-range
    action: Deny
    from: [{namespaces: {}}]
    ports: [{portRange: {protocol: UDP, start: 1, end: 65535}}]
  - name: deny-the-rest
    action: Deny
    from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]
`
	ps := compileAll(t, anp)
	np := NetworkPolicies{Selected: true, Allows: false}
	for _, tc := range []struct {
		src  Endpoint
		port int32
		want bool
	}{
		{slytherin, 80, true},    // the named port web is 80 at gryffindor
		{slytherin, 8080, false}, // the third rule
		{hufflepuff, 80, false},  // no admin rule: the NetworkPolicy denies
	} {
		if got := Allowed(ps, true, tc.src, gryffindor, tc.port, np); got != tc.want {
			t.Errorf("%v:%d allowed = %v, want %v", tc.src.Labels, tc.port, got, tc.want)
		}
	}
	// Where the NetworkPolicy allows, only the Deny rule changes it.
	if Allowed(ps, true, slytherin, gryffindor, 8080, NetworkPolicies{Selected: true, Allows: true}) {
		t.Error("deny-the-rest did not deny 8080")
	}
	if !Allowed(ps, true, hufflepuff, gryffindor, 8080, NetworkPolicies{Selected: true, Allows: true}) {
		t.Error("hufflepuff was denied what the NetworkPolicy allows")
	}
}

// TestAllowedBaseline: a BaselineAdminNetworkPolicy applies only where no
// NetworkPolicy selects the pod.
func TestAllowedBaseline(t *testing.T) {
	const banp = `
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - action: Allow
    from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: hufflepuff}}, podSelector: {}}}]
  - action: Deny
    from: [{namespaces: {}}]
`
	ps := compileAll(t, banp)
	if Allowed(ps, true, slytherin, gryffindor, 80, NetworkPolicies{}) {
		t.Error("baseline deny ignored")
	}
	if !Allowed(ps, true, hufflepuff, gryffindor, 80, NetworkPolicies{}) {
		t.Error("baseline allow ignored")
	}
	if !Allowed(ps, true, slytherin, gryffindor, 80, NetworkPolicies{Selected: true, Allows: true}) {
		t.Error("baseline applied to a pod a NetworkPolicy selects")
	}
	// Outside addresses match no namespaces peer.
	ext := Endpoint{External: true, Addr: netip.MustParseAddr("192.0.2.1")}
	if !Allowed(ps, true, ext, gryffindor, 80, NetworkPolicies{}) {
		t.Error("a namespaces peer matched an outside address")
	}
}

// TestAllowedEgressNetworks: a networks peer matches pod addresses too, as
// the API documents.
func TestAllowedEgressNetworks(t *testing.T) {
	const cnp = `
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-pod-cidr}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  egress:
  - action: Deny
    to: [{networks: [10.0.0.0/8]}]
    protocols: [{tcp: {destinationPort: {range: {start: 80, end: 90}}}}]
`
	ps := compileAll(t, cnp)
	dst := gryffindor
	dst.Addr = netip.MustParseAddr("10.1.2.3")
	if Allowed(ps, false, slytherin, dst, 80, NetworkPolicies{}) {
		t.Error("networks peer did not match a pod address")
	}
	if !Allowed(ps, false, slytherin, dst, 8080, NetworkPolicies{}) {
		t.Error("port outside the range denied")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := map[string]struct {
		doc  string
		want string
	}{
		"baseline not default": {`
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: other}
spec: {subject: {namespaces: {}}}
`, `metadata.name: must be "default"`},
		"priority out of range": {`
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec: {priority: 1001, subject: {namespaces: {}}}
`, "spec.priority: must be between 0 and 1000"},
		"Allow is not a ClusterNetworkPolicy action": {`
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: a}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Allow, from: [{namespaces: {}}]}]
`, `spec.ingress[0].action: unsupported value`},
		"no subject": {`
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: a}
spec: {tier: Admin, priority: 1, subject: {}}
`, "spec.subject: must set exactly one"},
		"bad selector": {`
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchExpressions: [{key: a, operator: Bad}]}}}]}]
`, "spec.ingress[0].from[0].pods.podSelector.matchExpressions[0].operator"},
		"range backwards": {`
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}], ports: [{portRange: {start: 90, end: 80}}]}]
`, "spec.ingress[0].ports[0].portRange: start 90 must be less than end 80"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := parse(t, tc.doc)
			_, errs := Compile(&p)
			var all []string
			for _, e := range errs {
				all = append(all, e.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.want) {
				t.Errorf("errors %q do not mention %q", all, tc.want)
			}
		})
	}
}

// TestFailClosed: a peer of a newer API version matches nothing in an
// Allow rule and everything in a Deny rule.
func TestFailClosed(t *testing.T) {
	p := Policy{Kind: KindAdminNetworkPolicy, Name: "future", Tier: TierAdmin, Priority: 1, SubjectSet: true,
		Ingress: []Rule{
			{Path: "spec.ingress[0]", Action: ActionAllow, Peers: []Peer{{Path: "spec.ingress[0].from[0]"}}},
			{Path: "spec.ingress[1]", Action: ActionDeny, Peers: []Peer{{Path: "spec.ingress[1].from[0]"}}},
		}}
	c, errs := Compile(&p)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if Allowed([]*Compiled{c}, true, slytherin, gryffindor, 80, NetworkPolicies{Selected: true, Allows: true}) {
		t.Error("a fail-closed Deny allowed")
	}
	if m := Decide([]*Compiled{c}, TierAdmin, true, slytherin, gryffindor, 80); m.Rule == nil || m.Rule.Index != 1 {
		t.Errorf("decided by %+v, want the Deny rule", m.Rule)
	}
}
