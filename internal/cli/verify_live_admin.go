package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// adminPolicyLists are the admin network policy kinds `verify --cluster`
// reads, so that it judges the whole stack as the operator does: each kind
// in the versions it may be served in, newest first. A kind is read in
// the first version the cluster serves (one ClusterNetworkPolicy served in
// two versions is one object); a kind not served at all (its CRD absent,
// as the API server's discovery says) is skipped. Any other error, such as
// a user not allowed to list them, fails verify: a cluster's admin
// policies are never left out silently. They are listed as stored
// (unstructured) and decoded by the manifest loader, strictly: one of
// another schema revision (network-policy-api v0.1's peers) is an error
// naming its field, never misread by types that drop what they do not know.
var adminPolicyLists = [][]struct {
	list func() client.ObjectList
	gvk  string
}{
	{{storedList("policy.networking.k8s.io/v1alpha1/AdminNetworkPolicy"), "policy.networking.k8s.io/v1alpha1/AdminNetworkPolicy"}},
	{{storedList("policy.networking.k8s.io/v1alpha1/BaselineAdminNetworkPolicy"), "policy.networking.k8s.io/v1alpha1/BaselineAdminNetworkPolicy"}},
	{
		{storedList("policy.networking.k8s.io/v1beta1/ClusterNetworkPolicy"), "policy.networking.k8s.io/v1beta1/ClusterNetworkPolicy"},
		{storedList("policy.networking.k8s.io/v1alpha2/ClusterNetworkPolicy"), "policy.networking.k8s.io/v1alpha2/ClusterNetworkPolicy"},
	},
}

// storedList returns a list of the objects of gvk as they are stored.
func storedList(gvk string) func() client.ObjectList {
	return func() client.ObjectList {
		apiVersion, kind := splitGVK(gvk)
		l := &unstructured.UnstructuredList{}
		l.SetAPIVersion(apiVersion)
		l.SetKind(kind + "List")
		return l
	}
}

// addAdminPolicyTypes registers the admin network policy types.
func addAdminPolicyTypes(s *runtime.Scheme) error {
	for _, add := range []func(*runtime.Scheme) error{netpolv1alpha1.Install, netpolv1alpha2.Install, netpolv1beta1.Install} {
		if err := add(s); err != nil {
			return err
		}
	}
	return nil
}

// listAdminPolicies lists the admin network policies the cluster serves.
func listAdminPolicies(ctx context.Context, c client.Client) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for _, versions := range adminPolicyLists {
		for _, v := range versions {
			got, err := listAll(ctx, c, v.list(), v.gvk)
			if meta.IsNoMatchError(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", v.gvk, err)
			}
			out = append(out, got...)
			break
		}
	}
	return out, nil
}
