// Package v1alpha1 contains the API of netpol2authz: the
// NetworkPolicyTranslation, through which the operator reports how each
// NetworkPolicy was translated.
// +kubebuilder:object:generate=true
// +groupName=policy.netpol2authz.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "policy.netpol2authz.io", Version: "v1alpha1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	SchemeBuilder = &schemeBuilder{}

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// schemeBuilder is controller-runtime's scheme.Builder, which it deprecates:
// an API package should import apimachinery only, so that clients can import
// it without controller-runtime (.golangci.yml's depguard rule "api").
// +kubebuilder:object:generate=false
type schemeBuilder struct{ runtime.SchemeBuilder }

// Register adds objects to the types that AddToScheme registers in
// GroupVersion.
func (b *schemeBuilder) Register(objects ...runtime.Object) {
	b.SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, objects...)
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
}
