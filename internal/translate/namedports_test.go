package translate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNamedPortsPerPod pins the choices of the named-port split that the
// goldens do not reach: selectors of three labels, a fallback that is
// exact because every pod it selects has the number anyway, and a group
// that no single selector covers.
func TestNamedPortsPerPod(t *testing.T) {
	pod := func(name string, lbls map[string]string, ports ...int32) Pod {
		p := Pod{Namespace: "shop", Name: name, Labels: map[string]string{"app": "web"}, Phase: "Running", Sidecar: true}
		for k, v := range lbls {
			p.Labels[k] = v
		}
		for _, n := range ports {
			p.Ports = append(p.Ports, ContainerPort{Name: "http", Port: n})
		}
		return p
	}
	cases := map[string]struct {
		pods     []Pod
		fidelity Fidelity
		// want maps each policy's selector to its ports, "-" for none.
		want     map[string]string
		findings []FindingType
	}{
		"three labels tell the pod apart": {
			pods: []Pod{
				pod("t", map[string]string{"a": "1", "b": "1", "c": "1"}, 8080),
				pod("x", map[string]string{"a": "1", "b": "1", "c": "2"}, 9090),
				pod("y", map[string]string{"a": "1", "b": "2", "c": "1"}, 9090),
				pod("z", map[string]string{"a": "2", "b": "1", "c": "1"}, 9090),
			},
			want: map[string]string{
				"app=web":             "-",
				"a=1,app=web,b=1,c=1": "8080",
				"app=web,c=2":         "9090",
				"app=web,b=2":         "9090",
				"a=2,app=web":         "9090",
			},
		},
		"a fallback whose number every pod has is exact": {
			// Every label of t is on u, which also gives 9090.
			pods: []Pod{
				pod("t", map[string]string{"tier": "front"}, 8080),
				pod("u", map[string]string{"tier": "front", "debug": "true"}, 8080, 9090),
				pod("v", map[string]string{"tier": "back"}, 7070),
			},
			fidelity: FidelityStrict,
			want: map[string]string{
				"app=web":            "-",
				"app=web,tier=front": "8080",
				"app=web,debug=true": "8080,9090",
				"app=web,tier=back":  "7070",
			},
		},
		"pods of one number that no single selector covers": {
			pods: []Pod{
				pod("p", map[string]string{"zone": "a", "track": "x"}, 8080),
				pod("q", map[string]string{"zone": "b", "track": "y"}, 8080),
				pod("r", map[string]string{"zone": "c", "track": "x"}, 9090),
				pod("s", map[string]string{"zone": "c", "track": "y"}, 9090),
			},
			want: map[string]string{
				"app=web":        "-",
				"app=web,zone=a": "8080",
				"app=web,zone=b": "8080",
				"app=web,zone=c": "9090",
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			np := networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{
						Ports: []networkingv1.NetworkPolicyPort{{Port: new(intstr.FromString("http"))}},
					}},
				},
			}
			s := Snapshot{Pods: tc.pods, NetworkPolicies: []networkingv1.NetworkPolicy{np}}
			o := Options{DefaultFidelity: tc.fidelity}
			r := Translate(s, o)
			if errs := checkInvariants(s, o, r); len(errs) > 0 {
				t.Fatal(strings.Join(errs, "\n"))
			}
			got := map[string]string{}
			for _, ap := range r.Translations[0].Policies {
				ports := "-"
				for _, rule := range ap.Spec.Rules {
					ports = strings.Join(rule.To[0].Operation.Ports, ",")
				}
				got[setString(ap.Spec.Selector.MatchLabels)] = ports
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("policies (-want,+got):\n%s", diff)
			}
			var findings []FindingType
			for _, f := range r.Translations[0].Findings {
				findings = append(findings, f.Type)
			}
			if diff := cmp.Diff(tc.findings, findings); diff != "" {
				t.Errorf("findings (-want,+got):\n%s", diff)
			}
		})
	}
}
