package install_test

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// checkWaypointAccess checks, as the manager's ServiceAccount, that the
// installed RBAC lets it read Services and the Gateway API's Gateways
// (get, list, watch: the waypoints) and write neither.
func checkWaypointAccess(ctx context.Context, t *testing.T, sa client.Client) {
	t.Helper()
	for _, r := range []struct{ group, resource string }{{"", "services"}, {"gateway.networking.k8s.io", "gateways"}} {
		for verb, want := range map[string]bool{"get": true, "list": true, "watch": true, "create": false, "update": false, "patch": false, "delete": false} {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Group: r.group, Resource: r.resource, Verb: verb},
			}}
			if err := sa.Create(ctx, review); err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed != want {
				t.Errorf("the manager's ServiceAccount may %s %s (group %q): %t, want %t", verb, r.resource, r.group, review.Status.Allowed, want)
			}
		}
	}
	for _, sub := range []string{"status"} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "gateway.networking.k8s.io", Resource: "gateways", Subresource: sub, Verb: "update"},
		}}
		if err := sa.Create(ctx, review); err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed {
			t.Errorf("the manager's ServiceAccount may update gateways/%s", sub)
		}
	}
}
