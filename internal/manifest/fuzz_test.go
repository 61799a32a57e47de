package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
	f.Add([]byte(`{"apiVersion":"v1","kind":"PodList","items":[{"metadata":{"name":"p"}}]}`))
	// What dumps carry: a status on every kind, "status: {}" on a
	// NetworkPolicy, whose type has none.
	f.Add([]byte(npHeader + "spec: {podSelector: {}}\nstatus: {}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: []\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nstatus: Active\nstatus: {}\n"))
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"status":{"replicas":"x"},"status":null}`))
	f.Add([]byte(approvalHeader + "spec:\n  identities: [serviceaccount/shop/web, namespace/ops, sa/shop/api, ns/Ops, serviceaccount/shop/web]\n"))
	f.Add([]byte(`{"apiVersion":"policy.netpol2authz.io/v1alpha1","kind":"IdentityApprovalList","items":[{"metadata":{"name":"db","namespace":"shop"},"spec":{"identities":["namespace/ops"]}}]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		in := []Input{{Name: "fuzz.yaml", Data: data}}
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
				if e.File != "fuzz.yaml" || e.Err == nil {
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
	})
}
