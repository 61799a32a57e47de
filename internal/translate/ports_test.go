package translate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func portRange(first, last int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Port: new(intstr.FromInt32(first)), EndPort: new(last)}
}

// TestDefaultPortCap pins the default cap of 1024 ports per rule, shared by
// the rule's ranges, which the goldens (with a cap of 10) do not reach.
func TestDefaultPortCap(t *testing.T) {
	type result struct {
		Ports    int // ports in the rule's to; -1 means no to (any port)
		Findings []FindingType
	}
	cases := map[string]struct {
		ports []networkingv1.NetworkPolicyPort
		want  result
	}{
		"1024 ports expand": {
			ports: []networkingv1.NetworkPolicyPort{portRange(1, 1024)},
			want:  result{Ports: 1024},
		},
		"1025 ports are too many": {
			ports: []networkingv1.NetworkPolicyPort{portRange(1, 1025)},
			want:  result{Ports: -1, Findings: []FindingType{PortRangeTooLarge}},
		},
		"the cap is per rule: ranges share it": {
			ports: []networkingv1.NetworkPolicyPort{portRange(1, 1000), portRange(2001, 3000)},
			want:  result{Ports: -1, Findings: []FindingType{PortRangeTooLarge}},
		},
		"ranges within the cap together expand": {
			ports: []networkingv1.NetworkPolicyPort{portRange(1, 500), portRange(2001, 2524)},
			want:  result{Ports: 1024},
		},
		"single ports do not count against it": {
			ports: []networkingv1.NetworkPolicyPort{portRange(1, 1024), {Port: new(intstr.FromInt32(8080))}},
			want:  result{Ports: 1025},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			np := networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
				Spec: networkingv1.NetworkPolicySpec{
					Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: tc.ports}},
				},
			}
			r := Translate(Snapshot{
				Pods:            []Pod{{Namespace: "shop", Name: "web-0", Sidecar: true}},
				NetworkPolicies: []networkingv1.NetworkPolicy{np},
			}, Options{})
			tr := r.Translations[0]
			if len(tr.Policies) != 1 || len(tr.Policies[0].Spec.Rules) != 1 {
				t.Fatalf("want one policy with one rule, got %+v", tr)
			}
			got := result{Ports: -1}
			if to := tr.Policies[0].Spec.Rules[0].To; len(to) > 0 {
				got.Ports = len(to[0].Operation.Ports)
			}
			for _, f := range tr.Findings {
				got.Findings = append(got.Findings, f.Type)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}
