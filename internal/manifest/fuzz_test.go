package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yamlv2 "go.yaml.in/yaml/v2"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// FuzzLoad decodes arbitrary bytes as one input. It must never panic (a
// recovered decoder panic, PanicError, counts as one), every problem must
// come back as an Error naming the input, and decoding must be
// deterministic. Seeds are the manifests of the CLI's golden fixtures and of
// these tests.
func FuzzLoad(f *testing.F) {
	_ = filepath.WalkDir("../../test/fixtures/translate", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" || ext == ".json" {
				if data, err := os.ReadFile(path); err == nil {
					f.Add(data)
				}
			}
		}
		return nil
	})
	for _, s := range []string{deployment, ownedReplicaSet, podOfReplicaSet, cronJob, podOfJob, npHeader + "spec: {podSelector: {}}\n"} {
		f.Add([]byte(s))
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- kind: List\n  apiVersion: v1\n  items: [{}]\n"))
	// Waypoints: a Service with named and numbered target ports, Gateways
	// of both versions, with and without a status.
	f.Add([]byte(serviceDoc + "---\n" + replaceVersion(gatewayDoc, "v1beta1") + "---\n" + gatewayDumpDoc))
	f.Add([]byte(`{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"p"}}]}`))
	// What dumps carry: a status on every kind, "status: {}" on a
	// NetworkPolicy, whose type has none.
	f.Add([]byte(npHeader + "spec: {podSelector: {}}\nstatus: {}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: []\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nstatus: Active\nstatus: {}\n"))
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"status":{"replicas":"x"},"status":null}`))
	// YAML whose documents are flow-style JSON; a JSON stream; documents
	// that go on after their end.
	f.Add([]byte("{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n---\n" + npHeader + "spec: {podSelector: {}}\n"))
	f.Add([]byte("{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\", \"labels\": {\"x\": \"a\\/b\"}}}\n{\"apiVersion\": \"v1\"}"))
	f.Add([]byte("  apiVersion: v1\nkind: Namespace\n---\n[1, 2]\n...\nmore\n"))
	f.Add([]byte("\xef\xbb\xbfapiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}"))
	// What is not a Kubernetes object: a JSON array, a Helm Chart.yaml, a
	// Grafana provisioning file, an API response, a List item without kind.
	f.Add([]byte(`[{"test": "a", "result": "pass"}, 1, "x", true]`))
	f.Add([]byte("apiVersion: v2\nname: shop\nversion: 0.1.0\n---\napiVersion: 1\ndatasources: []\n---\n42\n---\n\"text\"\n"))
	f.Add([]byte(`{"kind": "youtube#video", "id": "x"}` + "\n" + `{"apiVersion": "v1", "metadata": {"name": "p"}}`))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{name: x}, [a], null, {apiVersion: '', kind: ''}]\n"))
	f.Add([]byte(approvalHeader + "spec:\n  identities: [serviceaccount/shop/web, namespace/ops, sa/shop/api, ns/Ops, serviceaccount/shop/web]\n"))
	f.Add([]byte(`{"apiVersion":"policy.netpol2authz.io/v1alpha1","kind":"IdentityApprovalList","items":[{"metadata":{"name":"db","namespace":"shop"},"spec":{"identities":["namespace/ops"]}}]}`))

	// Admin network policies of every kind and version, valid and not.
	for _, s := range []string{anpDoc, banpDoc, replaceVersion(cnpDoc, "v1alpha2"), replaceVersion(cnpDoc, "v1beta1")} {
		f.Add([]byte(s))
	}
	f.Add([]byte("apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: a}\nspec: {tier: Middle, priority: -1, subject: {}, ingress: [{action: Accept, from: [{}], protocols: [{}]}]}\n"))
	f.Add([]byte(`{"apiVersion":"policy.networking.k8s.io/v1alpha1","kind":"AdminNetworkPolicyList","items":[{"metadata":{"name":"a"},"spec":{"priority":1,"subject":{"pods":{"namespaceSelector":{},"podSelector":{}}},"egress":[{"action":"Deny","to":[{"networks":["10.0.0.1/8"]},{"nodes":{}},{"domainNames":["*.x"]}]}]}}]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		// Each way of reading: YAML, JSON, and guessed from the content.
		for _, name := range []string{"fuzz.yaml", "fuzz.json", StdinName} {
			checkDecode(t, name, data)
		}
	})
}

func checkDecode(t *testing.T, name string, data []byte) {
	t.Helper()
	{
		in := []Input{{Name: name, Data: data}}
		res, err := Decode(in, Options{})
		if res == nil {
			t.Fatal("nil Result")
		}
		var msgs []string
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, e := range errs {
				var pe *PanicError
				if errors.As(e, &pe) {
					t.Fatalf("decoder panicked: %v", e)
				}
				if e.File != name || e.Err == nil {
					t.Fatalf("error does not name the input: %#v", e)
				}
				msgs = append(msgs, e.Error())
			}
		}
		for _, a := range res.Snapshot.Approvals {
			for _, id := range a.Identities {
				if canonical, err := translate.ParseIdentity(string(id)); err != nil || canonical != id {
					t.Fatalf("approval %s/%s holds %q, not a canonical identity", a.Namespace, a.NetworkPolicy, id)
				}
			}
		}
		if !slices.IsSortedFunc(res.Snapshot.Namespaces, func(a, b translate.Namespace) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatal("namespaces not sorted")
		}
		known := map[string]bool{}
		for _, ns := range res.Snapshot.Namespaces {
			known[ns.Name] = true
		}
		for _, p := range res.Snapshot.Pods {
			if !known[p.Namespace] {
				t.Fatalf("pod %s/%s in a namespace the Snapshot does not have", p.Namespace, p.Name)
			}
		}
		again, err2 := Decode(in, Options{})
		var msgs2 []string
		var errs2 Errors
		if errors.As(err2, &errs2) {
			for _, e := range errs2 {
				msgs2 = append(msgs2, e.Error())
			}
		}
		if diff := cmp.Diff(msgs, msgs2); diff != "" {
			t.Fatalf("errors differ between runs:\n%s", diff)
		}
		if diff := cmp.Diff(res.Snapshot, again.Snapshot, cmpOpts); diff != "" {
			t.Fatalf("Snapshot differs between runs:\n%s", diff)
		}
	}
}

// FuzzMayEndEarly checks that the text mayEndEarly passes over holds one
// YAML document at most: that the parser, had it been asked, would have
// found nothing after it.
func FuzzMayEndEarly(f *testing.F) {
	for _, s := range []string{
		npHeader, "{\"a\": 1}\n{\"b\": 2}\n", "  a: 1\nb: 2\n", "a\n...\nb\n", "- a\n- b\n", "a: 1\n%YAML 1.1\n",
		"# c\n  # d\nfoo\n 'bar'\n", "a: |\n  x\ny: 1\n", "0\n[1]\n", "-\n- 1\n", "_: 1\n\t{b: 1}\n",
		"0\n:\n", "#\r''0\n", "#\u2028{}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			raw, err := r.Read()
			if err != nil {
				return
			}
			if mayEndEarly(raw) {
				continue
			}
			if _, err := yaml.YAMLToJSONStrict(raw); err != nil {
				continue
			}
			dec := yamlv2.NewDecoder(bytes.NewReader(raw))
			var node skipNode
			if dec.Decode(&node) != nil {
				continue
			}
			if err := dec.Decode(&node); !errors.Is(err, io.EOF) {
				t.Fatalf("mayEndEarly(%q) is false, but the parser finds more after the document: %v", raw, err)
			}
		}
	})
}
