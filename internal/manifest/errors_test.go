package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

const npHeader = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
`

func TestDecodeErrors(t *testing.T) {
	tests := map[string]struct {
		name  string // of the input; in.yaml when empty
		input string
		want  []string
	}{
		"type error names the indexed field": {
			input: npHeader + `spec:
  podSelector: {}
  ingress:
  - ports: [{port: 80}]
  - ports: [{port: 80}, {port: [1]}]
`,
			want: []string{`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[1].ports[1].port: cannot use a JSON array as an integer`},
		},
		"wrong type in a map": {
			input: npHeader + `spec:
  podSelector:
    matchLabels: {app: 1}
`,
			want: []string{`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.podSelector.matchLabels.app: cannot use a JSON number as a string`},
		},
		"misspelt field": {
			input: npHeader + "spec:\n  podSelecter: {}\n",
			want:  []string{`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.podSelecter: unknown field`},
		},
		"misspelt fields and invalid values are all reported": {
			input: npHeader + `spec:
  podSelector: {}
  ingress:
  - ports: [{prot: 80, port: 0}]
`,
			want: []string{
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].ports[0].prot: unknown field`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`,
			},
		},
		"duplicate key": {
			input: npHeader + "spec:\n  podSelector: {}\n  podSelector: {}\n",
			want:  []string{`in.yaml:1: document 1: yaml: unmarshal errors: line 6: key "podSelector" already set in map`},
		},
		"syntax error has the line of the file": {
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n labels: {}\n",
			want:  []string{`in.yaml:5: document 2: yaml: line 8: did not find expected key`},
		},
		// The YAML reader drops the document before a bad separator; reading
		// goes on after it.
		"invalid separator": {
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- x\napiVersion: v1\nkind: Pod\nmetadata: {name: [p]}\n",
			want: []string{
				`in.yaml:4: document 1: invalid Yaml document separator: x`,
				`in.yaml:5: document 2 (Pod): metadata.name: cannot use a JSON array as a string`,
			},
		},
		// What is not a manifest is skipped (TestDecodeSkipsWhatIsNotAnObject);
		// what is a broken one is not.
		"an item of a List that is not an object": {
			input: "apiVersion: v1\nkind: List\nitems: [[a]]\n",
			want:  []string{`in.yaml:1: document 1, items[0]: not a Kubernetes object: want a mapping with apiVersion and kind`},
		},
		"apiVersion and metadata without kind": {
			input: "apiVersion: v1\nmetadata: {name: p}\n",
			want:  []string{`in.yaml:1: document 1 (p): kind: required`},
		},
		"kind without apiVersion": {
			input: "kind: Pod\nmetadata: {name: p}\n",
			want:  []string{`in.yaml:1: document 1 (Pod p): apiVersion: required`},
		},
		"kind is not a string": {
			input: "apiVersion: v1\nkind: [Pod]\n",
			want:  []string{`in.yaml:1: document 1: kind: must be a string`},
		},
		"missing name": {
			input: "apiVersion: v1\nkind: Pod\nmetadata: {namespace: a}\n",
			want:  []string{`in.yaml:1: document 1 (Pod): metadata.name: required`},
		},
		"no metadata": {
			input: "apiVersion: v1\nkind: Namespace\n",
			want:  []string{`in.yaml:1: document 1 (Namespace): metadata.name: required`},
		},
		"invalid pod IP": {
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIP: 10.0.0.300}\n",
			want:  []string{`in.yaml:1: document 1 (Pod default/p): status.podIP: Invalid value: "10.0.0.300": must be an IP address`},
		},
		"unknown status fields are tolerated, unknown spec fields are not": {
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwerk: true}\nstatus: {newField: 1}\n",
			want:  []string{`in.yaml:1: document 1 (Pod default/p): spec.hostNetwerk: unknown field`},
		},
		// A status is tolerated, but not at the expense of what is read:
		// the rest stays strict, and a Pod's status is read.
		"status does not hide a misspelt spec field": {
			input: npHeader + "spec: {podSelecter: {}}\nstatus: {}\n",
			want:  []string{`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.podSelecter: unknown field`},
		},
		"a Pod's status is read strictly": {
			input: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {phase: [Running]}\n",
			want:  []string{`in.yaml:1: document 1 (Pod default/p): status.phase: cannot use a JSON array as a string`},
		},
		"invalid policy": {
			input: npHeader + `spec:
  podSelector:
    matchExpressions: [{key: app, operator: Equals, values: [a]}]
  policyTypes: [Ingress, Sideways]
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/33}
    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}
    - {}
    - ipBlock: {cidr: 10.0.0.0/8}
      podSelector: {}
    ports:
    - {port: 8000, endPort: 7000}
    - {port: http, endPort: 9000}
    - {port: "-bad-"}
    - {protocol: ICMP}
`,
			want: []string{
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.podSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].ports[0].endPort: Invalid value: 7000: must be greater than or equal to port`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].ports[1].endPort: Invalid value: 9000: may not be set with a named port`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].ports[2].port: Invalid value: "-bad-": must not begin or end with a hyphen`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].ports[3].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a CIDR, such as 10.0.0.0/8`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "11.0.0.0/16": must be a strict subset of cidr 10.0.0.0/8`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].from[2]: Required value: must specify a peer`,
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.ingress[0].from[3]: Forbidden: may not specify both ipBlock and another peer`,
			},
		},
		"error in a List item": {
			input: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: ok}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: bad, namespace: ok}
  spec: {podSelector: {}, ingress: [{ports: [{port: 99999}]}]}
`,
			want: []string{`in.yaml:1: document 1, items[1] (NetworkPolicy ok/bad): spec.ingress[0].ports[0].port: Invalid value: 99999: must be between 1 and 65535, inclusive`},
		},
		"same object twice": {
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
			want:  []string{`in.yaml:5: document 2 (Namespace a): defined twice: also in in.yaml:1 document 1`},
		},
		"broken mesh config": {
			input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: 'trustDomain: [x'\n",
			want:  []string{`in.yaml:1: document 1 (ConfigMap istio-system/istio): data.mesh: Invalid value: not a mesh config: yaml: line 1: did not find expected ',' or ']'`},
		},
		"broken JSON stream": {
			name:  "in.json",
			input: "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \n}",
			want:  []string{`in.json:3: document 2: invalid character '}' looking for beginning of value`},
		},
		// A .yaml file is YAML, flow-style documents included; the strict
		// checks are the same, with the line of each document.
		"errors in flow-style documents of a YAML file": {
			input: `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "db", "namespace": "shop"}, "spec": {"podSelecter": {}}}
---
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": 3}}
---
apiVersion: v1
kind: Namespace
metadata: {name: [a]}
`,
			want: []string{
				`in.yaml:1: document 1 (NetworkPolicy shop/db): spec.podSelecter: unknown field`,
				`in.yaml:4: document 2 (Pod default/p): spec.containers: cannot use a JSON number as a list`,
				`in.yaml:6: document 3 (Namespace): metadata.name: cannot use a JSON array as a string`,
			},
		},
		"duplicate key in a flow-style document": {
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n{\"apiVersion\": \"v1\", \"apiVersion\": \"v1\"}\n",
			want:  []string{`in.yaml:5: document 2: yaml: unmarshal errors: line 5: key "apiVersion" already set in map`},
		},
		// go-yaml reads the first document and would drop the rest unseen.
		"two JSON objects without a separator among YAML documents": {
			input: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"b\"}}\n{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"c\"}}\n",
			want:  []string{`in.yaml:5: document 2: text follows the end of the YAML document (a second {...}, a first line indented more than the next, or text after "..."): separate documents with a --- line`},
		},
		"a first line indented deeper than the next": {
			input: "  apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
			want:  []string{`in.yaml:1: document 1: text follows the end of the YAML document (a second {...}, a first line indented more than the next, or text after "..."): separate documents with a --- line`},
		},
		// A broken JSON stream in a .yaml file is reported as YAML.
		"broken JSON stream in a YAML file": {
			input: "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \n}",
			want:  []string{`in.yaml:1: document 1: text follows the end of the YAML document (a second {...}, a first line indented more than the next, or text after "..."): separate documents with a --- line`},
		},
		"lines of a file with CRLF line ends and no newline at the end": {
			input: "apiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}\r\n---\r\napiVersion: v1\r\nkind: Pod\r\nmetadata: {name: [p]}",
			want:  []string{`in.yaml:5: document 2 (Pod): metadata.name: cannot use a JSON array as a string`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			file := tc.name
			if file == "" {
				file = "in.yaml"
			}
			_, err := Decode(inputs(file, tc.input), Options{})
			if diff := cmp.Diff(tc.want, errorLines(t, err)); diff != "" {
				t.Errorf("errors (-want,+got):\n%s", diff)
			}
		})
	}
}

// A broken document must not hide the others: every error is reported, and
// the good documents are still read.
func TestDecodeCollectsAllErrors(t *testing.T) {
	res, err := Decode(inputs(
		"a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec: {containers: 3}\n",
		"b.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n---\n{bad\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n",
	), Options{})
	want := []string{
		`a.yaml:5: document 2 (Pod a/p): spec.containers: cannot use a JSON number as a list`,
		`b.yaml:5: document 2: yaml: line 5: did not find expected ',' or '}'`,
		`b.yaml:7: document 3 (Pod a/q): defined twice: also in b.yaml:1 document 1`,
	}
	if diff := cmp.Diff(want, errorLines(t, err)); diff != "" {
		t.Errorf("errors (-want,+got):\n%s", diff)
	}
	if len(res.Snapshot.Pods) != 1 || res.Snapshot.Pods[0].Name != "q" {
		t.Errorf("good documents not read: %+v", res.Snapshot.Pods)
	}
	if len(res.Snapshot.Namespaces) != 1 || res.Snapshot.Namespaces[0].Name != "a" {
		t.Errorf("good documents not read: %+v", res.Snapshot.Namespaces)
	}
}
