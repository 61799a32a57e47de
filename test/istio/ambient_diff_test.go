package istio_test

import (
	"testing"

	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ambientzGood is what istiod's ambientz showed for goodPolicy: a
// workload it selects and the policy compiled for ztunnel.
const ambientzGood = `{"workloads":[{"uid":"Kubernetes//Pod/amb/db-0","name":"db-0","namespace":"amb","addresses":["MTAuMC4wLjk="],"serviceAccount":"db","authorizationPolicies":["amb/good"]}],
"policies":[{"name":"good","namespace":"amb","scope":"WORKLOAD_SELECTOR","groups":[{"rules":[{"matches":[{"destinationPorts":[5432,8080]}]},
{"matches":[{"principals":[{"exact":"cluster.local/ns/amb/sa/api"}],"sourceIps":[{"address":"CgAAAA==","length":8}],"notSourceIps":[{"address":"CgEAAA==","length":16}]},{"namespaces":[{"exact":"mon"}]}]}]}]}]}`

func goodPolicy() *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: "amb"}}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "db"}}
	ap.Spec.Rules = []*secv1beta1.Rule{{
		From: []*secv1beta1.Rule_From{
			{Source: &secv1beta1.Source{Principals: []string{"cluster.local/ns/amb/sa/api"}, IpBlocks: []string{"10.0.0.0/8"}, NotIpBlocks: []string{"10.1.0.0/16"}}},
			{Source: &secv1beta1.Source{Namespaces: []string{"mon"}}},
		},
		To: []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{Ports: []string{"5432", "8080"}}}},
	}}
	return ap
}

// TestZtunnelDiffFindsEveryChange checks the comparison itself, without a
// cluster: the compiled form of goodPolicy equals its expectation, and
// every change to the expected policy is a difference.
func TestZtunnelDiffFindsEveryChange(t *testing.T) {
	z, compiled, err := parseAmbientz([]byte(ambientzGood))
	if err != nil {
		t.Fatal(err)
	}
	if got := z.Workloads[0].ips(); len(got) != 1 || got[0] != "10.0.0.9" {
		t.Errorf("workload addresses %v, want [10.0.0.9]", got)
	}
	expect := func(ap *securityv1.AuthorizationPolicy) []ztPolicy {
		t.Helper()
		p, err := expectedZtunnel(ap, "istio-system")
		if err != nil {
			t.Fatal(err)
		}
		return []ztPolicy{p}
	}
	if d := diffPolicies(expect(goodPolicy()), compiled); d != "" {
		t.Fatalf("the compiled policy differs from the one it came from:\n%s", d)
	}
	src := func(ap *securityv1.AuthorizationPolicy, i int) *secv1beta1.Source {
		return ap.Spec.Rules[0].From[i].Source
	}
	for name, mutate := range map[string]func(*securityv1.AuthorizationPolicy){
		"another port": func(ap *securityv1.AuthorizationPolicy) {
			ap.Spec.Rules[0].To[0].Operation.Ports = append(ap.Spec.Rules[0].To[0].Operation.Ports, "9090")
		},
		"a port less": func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].To[0].Operation.Ports = []string{"5432"} },
		"a port istiod drops": func(ap *securityv1.AuthorizationPolicy) {
			ap.Spec.Rules[0].To[0].Operation.Ports = []string{"5432", "8080", "80-90"}
		},
		"no to":   func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].To = nil },
		"no from": func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules[0].From = nil },
		"another principal": func(ap *securityv1.AuthorizationPolicy) {
			src(ap, 0).Principals = []string{"cluster.local/ns/amb/sa/web"}
		},
		"a wildcard namespace": func(ap *securityv1.AuthorizationPolicy) { src(ap, 1).Namespaces = []string{"*"} },
		"a wider CIDR":         func(ap *securityv1.AuthorizationPolicy) { src(ap, 0).IpBlocks = []string{"10.0.0.0/7"} },
		"an invalid CIDR":      func(ap *securityv1.AuthorizationPolicy) { src(ap, 0).IpBlocks = []string{"10.0.0.0/8", "10.0.0.0/33"} },
		"no except":            func(ap *securityv1.AuthorizationPolicy) { src(ap, 0).NotIpBlocks = nil },
		"the sources merged": func(ap *securityv1.AuthorizationPolicy) {
			src(ap, 0).Namespaces = []string{"mon"}
			ap.Spec.Rules[0].From = ap.Spec.Rules[0].From[:1]
		},
		"an empty rule more": func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules = append(ap.Spec.Rules, &secv1beta1.Rule{}) },
		"no rules":           func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Rules = nil },
		"no selector":        func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Selector = nil },
		"deny":               func(ap *securityv1.AuthorizationPolicy) { ap.Spec.Action = secv1beta1.AuthorizationPolicy_DENY },
		"dry-run":            func(ap *securityv1.AuthorizationPolicy) { ap.Annotations = map[string]string{annotationDryRun: "true"} },
		"another name":       func(ap *securityv1.AuthorizationPolicy) { ap.Name = "other" },
	} {
		ap := goodPolicy()
		mutate(ap)
		if d := diffPolicies(expect(ap), compiled); d == "" {
			t.Errorf("%s: no difference found", name)
		}
	}
}

// TestGoldenCasesCoverEveryZtunnelRow keeps the golden cases, which the
// ambient specs compile in istiod, covering every row of the contract.
func TestGoldenCasesCoverEveryZtunnelRow(t *testing.T) {
	cases, err := loadGoldenCases()
	if err != nil {
		t.Fatal(err)
	}
	var all []*securityv1.AuthorizationPolicy
	expanded := false
	for _, c := range cases {
		ps := c.Policies()
		all = append(all, ps...)
		for _, ap := range ps {
			for _, r := range ap.Spec.Rules {
				for _, to := range r.To {
					expanded = expanded || c.Name == "port-range" && len(to.GetOperation().GetPorts()) > 2
				}
			}
		}
	}
	rows := rowsOf(all)
	for _, row := range []string{"principals", "namespaces", `namespaces ["*"]`, "ipBlocks", "ipBlocks with excepts", "IPv6",
		"port list", "deny-all (no rules)", "allow-all (one empty rule)", "rule without from", "rule without to", "namespace scope", "dry-run"} {
		if !rows[row] {
			t.Errorf("no golden case generates %s", row)
		}
	}
	if !expanded {
		t.Error("port-range generates no expanded range")
	}
	for _, c := range cases {
		if c.Name == "match-expressions" && len(c.Policies()) < 2 {
			t.Error("match-expressions generates no policy per projection")
		}
	}
}
