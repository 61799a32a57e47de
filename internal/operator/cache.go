package operator

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions are the manager's cache options: pods are cut down to what
// the engine reads, managedFields are dropped from everything else, and
// ConfigMaps are cached only for the mesh config, one object in one
// namespace.
func CacheOptions(s Settings) cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Transform: TransformPod},
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{
				s.istioNamespace(): {FieldSelector: fields.OneTermEqualSelector("metadata.name", MeshConfigMapName)},
			}},
		},
	}
}
