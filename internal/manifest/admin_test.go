package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

const (
	anpDoc = `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: sre-access}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {tier: app}}}
  ingress:
  - name: monitoring
    action: Allow
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
    ports: [{namedPort: metrics}, {portNumber: {port: 9090}}, {portRange: {protocol: UDP, start: 1, end: 9}}]
  egress:
  - action: Deny
    to: [{networks: [10.0.0.0/8]}]
`
	banpDoc = `apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
status: {conditions: []}
`
	cnpDoc = `apiVersion: policy.networking.k8s.io/VERSION
kind: ClusterNetworkPolicy
metadata: {name: pass-kube-system}
spec:
  tier: Admin
  priority: 5
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - action: Pass
    from: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {}}}]
    protocols: [{tcp: {destinationPort: {number: 5432}}}, {destinationNamedPort: pg}]
`
)

func TestDecodeAdminPolicies(t *testing.T) {
	res := decodeYAML(t, Options{},
		"anp.yaml", anpDoc, "banp.yaml", banpDoc,
		"cnp.yaml", replaceVersion(cnpDoc, "v1beta1"),
	)
	var got []string
	for _, p := range res.Snapshot.AdminPolicies {
		got = append(got, p.Describe()+" "+p.APIVersion)
	}
	want := []string{
		"ClusterNetworkPolicy/pass-kube-system (tier Admin, priority 5) policy.networking.k8s.io/v1beta1",
		"AdminNetworkPolicy/sre-access (priority 10) policy.networking.k8s.io/v1alpha1",
		"BaselineAdminNetworkPolicy/default (baseline) policy.networking.k8s.io/v1alpha1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("admin policies, in precedence order (-want,+got):\n%s", diff)
	}
	anp := res.Snapshot.AdminPolicies[1]
	wantPorts := []adminpolicy.Port{
		{Path: "spec.ingress[0].ports[0].namedPort", Name: "metrics"},
		{Path: "spec.ingress[0].ports[1].portNumber", Protocol: "TCP", First: 9090, Last: 9090},
		{Path: "spec.ingress[0].ports[2].portRange", Protocol: "UDP", First: 1, Last: 9},
	}
	if diff := cmp.Diff(wantPorts, anp.Ingress[0].Ports); diff != "" {
		t.Errorf("ports (-want,+got):\n%s", diff)
	}
	if anp.Egress[0].Peers[0].Networks[0] != "10.0.0.0/8" {
		t.Errorf("egress networks: %+v", anp.Egress[0].Peers)
	}
	cnp := res.Snapshot.AdminPolicies[0]
	if cnp.Ingress[0].Action != adminpolicy.ActionPass || len(cnp.Ingress[0].Ports) != 2 || cnp.Ingress[0].Ports[1].Name != "pg" {
		t.Errorf("ClusterNetworkPolicy rule: %+v", cnp.Ingress[0])
	}
	if res.Stats.Objects["ClusterNetworkPolicy"] != 1 || res.Stats.Objects["AdminNetworkPolicy"] != 1 {
		t.Errorf("counts: %v", res.Stats.Objects)
	}
}

func TestDecodeAdminPolicyErrors(t *testing.T) {
	tests := map[string]struct {
		input string
		want  []string
	}{
		"misspelt field": {
			input: "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec: {priority: 1, subjet: {namespaces: {}}}\n",
			want: []string{
				`in.yaml:1: document 1 (AdminNetworkPolicy a): spec.subjet: unknown field`,
				`in.yaml:1: document 1 (AdminNetworkPolicy a): spec.subject: must set exactly one of namespaces, pods`,
			},
		},
		"what the API server rejects": {
			input: `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 1001
  subject: {namespaces: {}}
  ingress:
  - action: Accept
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {"a b": x}}}}]
    ports: [{portRange: {start: 90, end: 80}}]
`,
			want: []string{
				`in.yaml:1: document 1 (AdminNetworkPolicy a): spec.priority: must be between 0 and 1000, not 1001`,
				`in.yaml:1: document 1 (AdminNetworkPolicy a): spec.ingress[0].action: unsupported value "Accept": supported values are "Allow", "Deny", "Pass"`,
				`in.yaml:1: document 1 (AdminNetworkPolicy a): spec.ingress[0].from[0].pods.podSelector.matchLabels: Invalid value: "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`in.yaml:1: document 1 (AdminNetworkPolicy a): spec.ingress[0].ports[0].portRange: start 90 must be less than end 80`,
			},
		},
		"baseline not named default": {
			input: "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\nspec: {subject: {namespaces: {}}}\n",
			want:  []string{`in.yaml:1: document 1 (BaselineAdminNetworkPolicy other): metadata.name: must be "default": the cluster has one BaselineAdminNetworkPolicy`},
		},
		"one ClusterNetworkPolicy in two versions": {
			input: replaceVersion(cnpDoc, "v1alpha2") + "---\n" + replaceVersion(cnpDoc, "v1beta1"),
			want:  []string{`in.yaml:13: document 2 (ClusterNetworkPolicy pass-kube-system): defined twice: also in in.yaml:1 document 1`},
		},
		"Allow in a ClusterNetworkPolicy": {
			input: "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: a}\nspec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}]}]}\n",
			want:  []string{`in.yaml:1: document 1 (ClusterNetworkPolicy a): spec.ingress[0].action: unsupported value "Allow (not a ClusterNetworkPolicy action)": supported values are "Accept", "Deny", "Pass"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(inputs("in.yaml", tc.input), Options{})
			if diff := cmp.Diff(tc.want, errorLines(t, err)); diff != "" {
				t.Errorf("errors (-want,+got):\n%s", diff)
			}
		})
	}
}

func replaceVersion(doc, version string) string {
	const marker = "VERSION"
	for i := 0; i+len(marker) <= len(doc); i++ {
		if doc[i:i+len(marker)] == marker {
			return doc[:i] + version + doc[i+len(marker):]
		}
	}
	return doc
}
