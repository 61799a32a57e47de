package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// adminFixture: the NetworkPolicy lets web reach db; an AdminNetworkPolicy
// denies web (permissive generates no DENY: AdminPolicyDenies explains
// that Istio allows it) and a ClusterNetworkPolicy (served in v1alpha2 and
// v1beta1, read once) accepts backup, which the NetworkPolicy does not.
const adminFixture = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations:
    netpol2authz.io/mode: enforce
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: no-web-to-db}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
  ingress:
  - name: no-web
    action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}]
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: backup-to-db}
spec:
  tier: Admin
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - name: backup
    action: Accept
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: backup}}}}]
`

func adminFixturePod(name, app string) string {
	return `---
apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  namespace: shop
  labels: {app: ` + app + `}
  annotations:
    sidecar.istio.io/status: '{"containers":["istio-proxy"]}'
spec:
  serviceAccountName: ` + app + `
  containers:
  - {name: app, image: registry.example/app:1}
  - {name: istio-proxy, image: istio/proxyv2:1.29.0}
status:
  phase: Running
  podIP: 10.0.2.` + map[string]string{"db": "1", "web": "2", "backup": "3"}[app] + `
`
}

// TestVerifyLiveAdminPolicies verifies a cluster that serves the admin
// network policies: they are read, once each, and judged as in files; a
// reader not allowed to list them gets an error, never a report that
// leaves them out.
func TestVerifyLiveAdminPolicies(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	crds, err := testenv.AdminPolicyCRDs(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, env, host, admin := startLive(t, crds...)
	fixture := t.TempDir()
	data := adminFixture + adminFixturePod("db-0", "db") + adminFixturePod("web-0", "web") + adminFixturePod("backup-0", "backup")
	if err := os.WriteFile(filepath.Join(fixture, "shop.yaml"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	createFixture(ctx, t, admin, fixture)
	kubeconfig := readOnlyUser(ctx, t, env, admin)

	for _, args := range [][]string{nil, {"-o", "json"}} {
		out := compareLive(t, host, kubeconfig, fixture, args)
		if !strings.Contains(out, "AdminPolicyDenies") {
			t.Errorf("verify %v: the live report does not explain the admin Deny:\n%s", args, out)
		}
	}

	// A reader who may not list the admin policies: an error, not a report
	// without them.
	role := &rbacv1.ClusterRole{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "netpol2authz-verify"}, role); err != nil {
		t.Fatal(err)
	}
	role.Rules = role.Rules[:len(role.Rules)-1]
	if role.Rules[len(role.Rules)-1].APIGroups[0] == "policy.networking.k8s.io" {
		t.Fatal("the last rule is still the admin policies'")
	}
	if err := admin.Update(ctx, role); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		out.Reset()
		errOut.Reset()
		code := RunVerify([]string{"--kubeconfig", kubeconfig}, nil, &out, &errOut)
		if code == ExitBadInput && strings.Contains(errOut.String(), "adminnetworkpolicies") && strings.Contains(errOut.String(), "forbidden") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without the right to list admin policies: exit %d\n%s%s", code, out.String(), errOut.String())
		}
	}
}
