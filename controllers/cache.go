package controllers

import (
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

// CacheOptions are the manager's cache options: managedFields are dropped
// from everything, AuthorizationPolicies keep a digest of their spec
// instead of the spec (apcache.go), NetworkPolicyTranslations a cut status
// and its digest (nptcache.go), Services keep only what the engine reads
// (waypoints.go), and ConfigMaps are cached only for the mesh config, one
// object in one namespace. Pods are not in this cache at all: the operator
// keeps them in its own, smaller, pod store (podstore.go).
func CacheOptions(s Settings) cache.Options {
	var resync *time.Duration
	if s.ResyncPeriod > 0 {
		resync = &s.ResyncPeriod
	}
	return cache.Options{
		SyncPeriod:       resync,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&securityv1.AuthorizationPolicy{}:          {Transform: transformAuthorizationPolicy},
			&corev1.Service{}:                          {Transform: transformService},
			&policyv1alpha1.NetworkPolicyTranslation{}: {Transform: transformTranslation},
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{
				s.istioNamespace(): {FieldSelector: fields.OneTermEqualSelector("metadata.name", MeshConfigMapName)},
			}},
		},
	}
}
