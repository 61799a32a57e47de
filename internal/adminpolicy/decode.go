package adminpolicy

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"
)

// Decode reads one admin policy manifest of any of the kinds (YAML or
// JSON), strictly: a field this version does not know is an error. It is
// the short form of what internal/manifest does with errors by file,
// document and field, for the golden cases and tests that hold admin
// policies as raw manifests.
func Decode(raw []byte) (Policy, error) {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &meta); err != nil {
		return Policy{}, err
	}
	strict := func(into any) error { return yaml.UnmarshalStrict(raw, into) }
	switch meta.APIVersion + "/" + meta.Kind {
	case V1alpha1 + "/AdminNetworkPolicy":
		var o v1alpha1.AdminNetworkPolicy
		err := strict(&o)
		return FromAdminNetworkPolicy(&o), err
	case V1alpha1 + "/BaselineAdminNetworkPolicy":
		var o v1alpha1.BaselineAdminNetworkPolicy
		err := strict(&o)
		return FromBaselineAdminNetworkPolicy(&o), err
	case V1alpha2 + "/ClusterNetworkPolicy":
		var o v1alpha2.ClusterNetworkPolicy
		if err := strict(&o); err != nil {
			return Policy{}, err
		}
		return FromClusterNetworkPolicyV1alpha2(&o)
	case V1beta1 + "/ClusterNetworkPolicy":
		var o v1beta1.ClusterNetworkPolicy
		err := strict(&o)
		return FromClusterNetworkPolicy(&o), err
	}
	return Policy{}, fmt.Errorf("not an admin policy: %s %s", meta.APIVersion, meta.Kind)
}
