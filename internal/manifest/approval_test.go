package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

const approvalHeader = `apiVersion: policy.netpol2authz.io/v1alpha1
kind: IdentityApproval
metadata: {name: db, namespace: shop}
`

func TestIdentityApprovals(t *testing.T) {
	res := decodeYAML(t, Options{}, "approvals.yaml", `
apiVersion: policy.netpol2authz.io/v1alpha1
kind: IdentityApproval
metadata: {name: web, namespace: shop}
spec:
  identities: [namespace/monitoring, serviceaccount/shop/api]
---
apiVersion: policy.netpol2authz.io/v1alpha1
kind: IdentityApproval
metadata: {name: db, namespace: shop}
spec:
  identities: [serviceaccount/shop/web]
---
# No identity approved: every identity its selectors resolve is pending.
apiVersion: policy.netpol2authz.io/v1alpha1
kind: IdentityApproval
metadata: {name: empty}
`, "list.yaml", `
apiVersion: v1
kind: List
items:
- apiVersion: policy.netpol2authz.io/v1alpha1
  kind: IdentityApproval
  metadata: {name: api, namespace: shop}
  spec: {identities: [serviceaccount/ops/debugger]}
`)
	want := []translate.Approval{
		{Namespace: "default", NetworkPolicy: "empty"},
		{Namespace: "shop", NetworkPolicy: "api", Identities: []translate.Identity{"serviceaccount/ops/debugger"}},
		{Namespace: "shop", NetworkPolicy: "db", Identities: []translate.Identity{"serviceaccount/shop/web"}},
		{Namespace: "shop", NetworkPolicy: "web", Identities: []translate.Identity{"namespace/monitoring", "serviceaccount/shop/api"}},
	}
	if diff := cmp.Diff(want, res.Snapshot.Approvals, cmpOpts); diff != "" {
		t.Errorf("approvals (-want,+got):\n%s", diff)
	}
	if n := res.Stats.Objects["IdentityApproval"]; n != 4 {
		t.Errorf("counted %d IdentityApprovals, want 4", n)
	}
}

func TestIdentityApprovalErrors(t *testing.T) {
	tests := map[string]struct {
		input string
		want  []string
	}{
		"not an identity": {
			input: approvalHeader + "spec:\n  identities: [serviceaccount/shop/web, serviceaccount/shop]\n",
			want: []string{`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[1]: "serviceaccount/shop" is not an identity: ` +
				`write serviceaccount/NAMESPACE/NAME or namespace/NAME`},
		},
		"invalid names": {
			input: approvalHeader + "spec:\n  identities: [namespace/Shop, serviceaccount/shop/-web]\n",
			want: []string{
				`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[0]: identity "namespace/Shop": invalid namespace name "Shop": ` +
					`a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[1]: identity "serviceaccount/shop/-web": invalid ServiceAccount name "-web": ` +
					`a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
			},
		},
		// The API server admits the canonical form only: a manifest it
		// would reject must not pass offline.
		"short and principal forms": {
			input: approvalHeader + "spec:\n  identities: [sa/shop/web, ns/ops, cluster.local/ns/shop/sa/api, sa/Shop/web]\n",
			want: []string{
				`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[0]: "sa/shop/web": write "serviceaccount/shop/web", the form the IdentityApproval API accepts`,
				`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[1]: "ns/ops": write "namespace/ops", the form the IdentityApproval API accepts`,
				`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[2]: "cluster.local/ns/shop/sa/api": write "serviceaccount/shop/api", the form the IdentityApproval API accepts`,
				`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[3]: "sa/Shop/web" is not an identity: write serviceaccount/NAMESPACE/NAME or namespace/NAME`,
			},
		},
		"listed twice": {
			input: approvalHeader + "spec:\n  identities: [namespace/ops, serviceaccount/shop/web, namespace/ops]\n",
			want:  []string{`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities[2]: "namespace/ops" is listed twice (also spec.identities[0])`},
		},
		"not a list": {
			input: approvalHeader + "spec:\n  identities: serviceaccount/shop/web\n",
			want:  []string{`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identities: cannot use a JSON string as a list`},
		},
		"misspelt field": {
			input: approvalHeader + "spec:\n  identity: [serviceaccount/shop/web]\n",
			want:  []string{`in.yaml:1: document 1 (IdentityApproval shop/db): spec.identity: unknown field`},
		},
		"generateName only": {
			input: "apiVersion: policy.netpol2authz.io/v1alpha1\nkind: IdentityApproval\nmetadata: {generateName: db-, namespace: shop}\n",
			want:  []string{`in.yaml:1: document 1 (IdentityApproval shop/db-): metadata.name: required: the name of the NetworkPolicy whose identities it approves`},
		},
		"defined twice": {
			input: approvalHeader + "---\n" + approvalHeader,
			want:  []string{`in.yaml:5: document 2 (IdentityApproval shop/db): defined twice: also in in.yaml:1 document 1`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := Decode(inputs("in.yaml", tc.input), Options{})
			if diff := cmp.Diff(tc.want, errorLines(t, err)); diff != "" {
				t.Errorf("errors (-want,+got):\n%s", diff)
			}
			if len(res.Snapshot.Approvals) > 1 {
				t.Errorf("an invalid IdentityApproval was kept: %v", res.Snapshot.Approvals)
			}
		})
	}
}

// An IdentityApproval the operator made for an earlier NetworkPolicy of
// the same name (another UID) is not the record of the one in the input,
// which is then at its first translation, as in the cluster.
func TestIdentityApprovalOfAnEarlierPolicy(t *testing.T) {
	approvalOf := func(uid string) string {
		return `apiVersion: policy.netpol2authz.io/v1alpha1
kind: IdentityApproval
metadata:
  name: db
  namespace: shop
  ownerReferences:
  - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, name: db, uid: ` + uid + `, controller: true}
spec:
  identities: [serviceaccount/shop/web]
`
	}
	np := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop, uid: 7d3c1c55-0000-4000-8000-000000000001}\nspec: {podSelector: {}}\n"
	for name, tc := range map[string]struct {
		input string
		want  int
	}{
		"same policy":                 {input: np + "---\n" + approvalOf("7d3c1c55-0000-4000-8000-000000000001"), want: 1},
		"earlier policy":              {input: np + "---\n" + approvalOf("7d3c1c55-0000-4000-8000-000000000002"), want: 0},
		"policy not in the input":     {input: approvalOf("7d3c1c55-0000-4000-8000-000000000002"), want: 1},
		"policy without uid (in Git)": {input: npHeader + "spec: {podSelector: {}}\n---\n" + approvalOf("7d3c1c55-0000-4000-8000-000000000002"), want: 1},
	} {
		t.Run(name, func(t *testing.T) {
			res := decodeYAML(t, Options{}, "in.yaml", tc.input)
			if got := len(res.Snapshot.Approvals); got != tc.want {
				t.Errorf("%d approvals, want %d: %v", got, tc.want, res.Snapshot.Approvals)
			}
		})
	}
}
