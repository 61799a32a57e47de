package install_test

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// checkAdminPolicyAccess checks, as the manager's ServiceAccount, that the
// installed RBAC lets it read the admin network policies (get, list,
// watch: it watches them where their CRDs are served) and write none.
func checkAdminPolicyAccess(ctx context.Context, t *testing.T, sa client.Client) {
	t.Helper()
	for _, resource := range []string{"adminnetworkpolicies", "baselineadminnetworkpolicies", "clusternetworkpolicies"} {
		for verb, want := range map[string]bool{"get": true, "list": true, "watch": true, "create": false, "update": false, "patch": false, "delete": false} {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "policy.networking.k8s.io", Resource: resource, Verb: verb},
			}}
			if err := sa.Create(ctx, review); err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed != want {
				t.Errorf("the manager's ServiceAccount may %s %s.policy.networking.k8s.io: %t, want %t", verb, resource, review.Status.Allowed, want)
			}
		}
	}
}
