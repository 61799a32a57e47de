package manifest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestDecodeCountsDocumentsAndKinds(t *testing.T) {
	tests := map[string]struct {
		input       string
		wantDocs    int
		wantObjects map[string]int
		wantSkipped map[string]int
	}{
		"multi-document YAML with empty and comment-only documents": {
			input: `
---
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
# only a comment
---
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: a}
`,
			wantDocs:    2,
			wantObjects: map[string]int{"Namespace": 1},
			wantSkipped: map[string]int{"v1/Secret": 1},
		},
		"JSON stream": {
			input: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x", "namespace": "a"}}`,
			wantDocs:    2,
			wantObjects: map[string]int{"Namespace": 1, "ServiceAccount": 1},
		},
		"v1 List of mixed kinds": {
			input: `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p, namespace: a}
- apiVersion: v1
  kind: Secret
  metadata: {name: s, namespace: a}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: np, namespace: a}
  spec: {podSelector: {}}
`,
			wantDocs:    1,
			wantObjects: map[string]int{"Pod": 1, "NetworkPolicy": 1},
			wantSkipped: map[string]int{"v1/Secret": 1},
		},
		"typed list whose items have no kind": {
			input: `
apiVersion: v1
kind: PodList
items:
- metadata: {name: p1, namespace: a}
- metadata: {name: p2, namespace: a}
`,
			wantDocs:    1,
			wantObjects: map[string]int{"Pod": 2},
		},
		"documents that are not Kubernetes objects are counted as skipped": {
			input: `
replicaCount: 3
image: {tag: latest}
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [a.yaml]
---
apiVersion: apps/v1beta1
kind: Deployment
metadata: {name: old}
`,
			wantDocs:    3,
			wantSkipped: map[string]int{"(not a Kubernetes object) in.yaml": 1, "kustomize.config.k8s.io/v1beta1/Kustomization": 1, "apps/v1beta1/Deployment": 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := decodeYAML(t, Options{}, "in.yaml", tc.input)
			if res.Stats.Documents != tc.wantDocs {
				t.Errorf("Documents = %d, want %d", res.Stats.Documents, tc.wantDocs)
			}
			if diff := cmp.Diff(tc.wantObjects, res.Stats.Objects, cmpOpts); diff != "" {
				t.Errorf("Objects (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSkipped, res.Stats.Skipped, cmpOpts); diff != "" {
				t.Errorf("Skipped (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestDecodePod(t *testing.T) {
	res := decodeYAML(t, Options{}, "pod.yaml", `
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web}
  annotations:
    sidecar.istio.io/status: '{}'
spec:
  serviceAccountName: web
  hostNetwork: false
  initContainers:
  - name: init
    image: busybox
    ports: [{name: ignored, containerPort: 1}]
  - name: log-shipper
    image: shipper
    restartPolicy: Always
    ports: [{name: logs, containerPort: 24224}]
  containers:
  - name: web
    image: nginx
    ports:
    - {name: http, containerPort: 8080}
    - {name: dns, containerPort: 53, protocol: UDP}
status:
  phase: Running
  podIP: 10.1.2.3
  someFieldOfANewerServer: true
`)
	if len(res.Snapshot.Pods) != 1 {
		t.Fatalf("got %d pods", len(res.Snapshot.Pods))
	}
	got := res.Snapshot.Pods[0]
	if got.Namespace != "default" || got.Name != "web-1" || got.ServiceAccount != "web" ||
		got.Phase != corev1.PodRunning || got.IP.String() != "10.1.2.3" || !got.Sidecar || got.Template != "" {
		t.Errorf("pod = %+v", got)
	}
	wantPorts := []string{"http/8080/", "dns/53/UDP", "logs/24224/"}
	var gotPorts []string
	for _, p := range got.Ports {
		gotPorts = append(gotPorts, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
	}
	if diff := cmp.Diff(wantPorts, gotPorts); diff != "" {
		t.Errorf("ports (-want,+got):\n%s", diff)
	}
}

func TestDecodeKeepsAuthorizationPoliciesOutOfTheSnapshot(t *testing.T) {
	res := decodeYAML(t, Options{}, "ap.yaml", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b, namespace: x}
spec:
  rules:
  - from:
    - source: {principals: [cluster.local/ns/x/sa/y]}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: a, namespace: x}
spec: {}
`)
	if len(res.AuthorizationPolicies) != 2 || res.AuthorizationPolicies[0].Name != "a" {
		t.Fatalf("AuthorizationPolicies = %v", res.AuthorizationPolicies)
	}
	if got := res.AuthorizationPolicies[1].Spec.GetRules()[0].GetFrom()[0].GetSource().GetPrincipals(); len(got) != 1 {
		t.Errorf("principals = %v", got)
	}
	if len(res.Snapshot.Namespaces) != 0 {
		t.Errorf("AuthorizationPolicies made namespaces known: %v", res.Snapshot.Namespaces)
	}
}

// Dumps carry a status: "status: {}" on a NetworkPolicy (whose type has no
// status any more), what a newer server wrote, or a status of another shape.
// Only a server writes status and only a Pod's is read: none is an error, and
// the objects are read.
func TestDecodeToleratesStatus(t *testing.T) {
	res, err := Decode(inputs("dump.yaml", npHeader+`spec: {podSelector: {}}
status: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec: {podSelector: {}}
status:
  conditions: [{type: Accepted, status: "True", reason: Whatever}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
status: Active
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}}
status: {replicas: "two", somethingNew: []}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: shop}
spec: {}
status:
  conditions: [{type: Reconciled, status: "True"}]
  validationMessages: []
  observedGeneration: "1"
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: shop}
status: []
---
apiVersion: v1
kind: Pod
metadata: {name: p2, namespace: shop}
status: {phase: Running, podIP: 10.0.0.2, newerField: {}}
`), Options{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := map[string]int{"NetworkPolicy": 2, "Namespace": 1, "Deployment": 1, "AuthorizationPolicy": 1, "Pod": 2}
	if diff := cmp.Diff(want, res.Stats.Objects); diff != "" {
		t.Errorf("Objects (-want,+got):\n%s", diff)
	}
	for _, p := range res.Snapshot.Pods {
		if p.Name == "p2" && (p.Phase != corev1.PodRunning || p.IP.String() != "10.0.0.2") {
			t.Errorf("the status of a Pod is still read: %+v", p)
		}
	}
}

// A .yaml file is YAML, whose documents may be flow-style JSON; a .json file
// is a JSON stream; other inputs are JSON when they start with '{'. When that
// reading fails and the other reads the whole input, the other is taken.
func TestDecodeReadsYAMLAndJSON(t *testing.T) {
	const (
		nsA      = `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}`
		nsB      = "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"
		flowYAML = nsA + "\n---\n" + nsB
	)
	tests := map[string]struct {
		name, input string
		want        []string
	}{
		"YAML file whose first document is JSON":            {name: "in.yaml", input: flowYAML, want: []string{"a", "b"}},
		"YAML file with a JSON document in the middle":      {name: "in.yml", input: nsB + "---\n" + nsA + "\n---\n" + namespace("c"), want: []string{"a", "b", "c"}},
		"JSON stream saved as .yaml":                        {name: "in.yaml", input: nsA + "\n" + strings.Replace(nsA, `"a"`, `"b"`, 1), want: []string{"a", "b"}},
		"standard input: YAML whose first document is JSON": {name: StdinName, input: flowYAML, want: []string{"a", "b"}},
		"standard input: JSON stream":                       {name: StdinName, input: nsA + strings.Replace(nsA, `"a"`, `"b"`, 1), want: []string{"a", "b"}},
		"JSON file with a byte order mark":                  {name: "in.json", input: "\xef\xbb\xbf" + nsA, want: []string{"a"}},
		"JSON with an escaped slash, as .yaml":              {name: "in.yaml", input: strings.Replace(nsA, `"a"}`, `"a"`+`, "annotations": {"x": "a\/b"}}`, 1), want: []string{"a"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := Decode([]Input{{Name: tc.name, Data: []byte(tc.input)}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ns := range res.Snapshot.Namespaces {
				got = append(got, ns.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("namespaces (-want,+got):\n%s", diff)
			}
		})
	}
}

// What is not a Kubernetes manifest is skipped, never an error: counted in
// Skipped under its file, and named in NotObjects. A broken manifest is
// still an error.
func TestDecodeSkipsWhatIsNotAnObject(t *testing.T) {
	res, err := Decode(inputs(
		"results.json", `[{"test": "a", "result": "pass"}, {"test": "b", "result": "fail"}]`,
		"package.json", `{"name": "demo", "version": "1.0.0", "scripts": {"test": "jest"}}`,
		"values.yaml", "replicaCount: 3\n---\n- a\n- b\n---\nplain text\n---\n42\n",
		"Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
		"datasources.yaml", "apiVersion: 1\ndatasources: [{name: Prometheus, type: prometheus}]\n",
		"video.json", `{"kind": "youtube#video", "etag": "x", "id": "abc"}`,
		"list.yaml", "apiVersion: v1\nkind: List\nitems:\n- {name: not-an-object}\n- "+strings.ReplaceAll(namespace("a"), "\n", "\n  "),
	), Options{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	wantSkipped := map[string]int{
		"(not a Kubernetes object) results.json":     1,
		"(not a Kubernetes object) package.json":     1,
		"(not a Kubernetes object) values.yaml":      4,
		"(not a Kubernetes object) Chart.yaml":       1,
		"(not a Kubernetes object) datasources.yaml": 1,
		"(not a Kubernetes object) video.json":       1,
		"(not a Kubernetes object) list.yaml":        1,
	}
	if diff := cmp.Diff(wantSkipped, res.Stats.Skipped); diff != "" {
		t.Errorf("Skipped (-want,+got):\n%s", diff)
	}
	var got []string
	for _, n := range res.Stats.NotObjects {
		got = append(got, n.String())
	}
	want := []string{
		"results.json:1: document 1: not a mapping but a list",
		"package.json:1: document 1: no apiVersion and kind",
		"values.yaml:1: document 1: no apiVersion and kind",
		"values.yaml:3: document 2: not a mapping but a list",
		"values.yaml:6: document 3: not a mapping but a string",
		"values.yaml:8: document 4: not a mapping but a number",
		"Chart.yaml:1: document 1: an apiVersion but no kind and no metadata",
		"datasources.yaml:1: document 1: an apiVersion but no kind and no metadata",
		"video.json:1: document 1: no apiVersion, and its kind is not a Kubernetes kind",
		"list.yaml:1: document 1, items[0]: no apiVersion and kind",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NotObjects (-want,+got):\n%s", diff)
	}
	if res.Stats.Documents != 10 || len(res.Snapshot.Namespaces) != 1 {
		t.Errorf("Documents = %d, Namespaces = %v", res.Stats.Documents, res.Snapshot.Namespaces)
	}
}
