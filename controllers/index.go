package controllers

import (
	"context"
	"fmt"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Field indexes on the informer cache. Lookups by namespace use the cache's
// own namespace index; these add the rest.
const (
	// indexScope indexes a NetworkPolicy under ScopeAnyNamespace when an
	// ingress peer has a namespaceSelector, so that a change in any
	// namespace finds the few policies that can reach across namespaces.
	indexScope = "netpol2authz.io/scope"
	// scopeAnyNamespace is the IndexScope key of cross-namespace policies.
	scopeAnyNamespace = "*"
	// indexOwner indexes an AuthorizationPolicy under the name of the
	// NetworkPolicy that is its controller.
	indexOwner = "netpol2authz.io/owner"
	// indexConflict indexes a NetworkPolicyTranslation under the names of
	// the AuthorizationPolicies its Conflict findings are about, so that
	// the NetworkPolicy is retried when such a policy goes away.
	indexConflict = "netpol2authz.io/conflict"
)

// setupIndexes registers the field indexes on the manager's cache.
func setupIndexes(ctx context.Context, fi client.FieldIndexer) error {
	for _, ix := range []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&networkingv1.NetworkPolicy{}, indexScope, scopeKeys},
		{&securityv1.AuthorizationPolicy{}, indexOwner, ownerKeys},
		{&policyv1alpha1.NetworkPolicyTranslation{}, indexConflict, conflictKeys},
	} {
		if err := fi.IndexField(ctx, ix.obj, ix.field, ix.fn); err != nil {
			return fmt.Errorf("indexing %T by %s: %w", ix.obj, ix.field, err)
		}
	}
	return nil
}

func scopeKeys(o client.Object) []string {
	np, ok := o.(*networkingv1.NetworkPolicy)
	if !ok || !translate.DependenciesOf(np).CrossNamespace() {
		return nil
	}
	return []string{scopeAnyNamespace}
}

func ownerKeys(o client.Object) []string {
	if ref := metav1.GetControllerOfNoCopy(o); ref != nil && ref.Kind == "NetworkPolicy" {
		return []string{ref.Name}
	}
	return nil
}

func conflictKeys(o client.Object) []string {
	npt, ok := o.(*policyv1alpha1.NetworkPolicyTranslation)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range npt.Status.Findings {
		if f.Type != string(translate.Conflict) {
			continue
		}
		for _, obj := range f.Objects {
			if obj.Kind == "AuthorizationPolicy" {
				out = append(out, obj.Name)
			}
		}
	}
	return out
}
