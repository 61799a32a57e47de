package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxApprovedIdentities bounds spec.identities of an IdentityApproval.
const MaxApprovedIdentities = 4096

// IdentityApprovalSpec lists the identities a person approved.
type IdentityApprovalSpec struct {
	// identities that may be sources of the AuthorizationPolicies generated
	// for the NetworkPolicy of the same name and namespace, in namespaces
	// whose netpol2authz.io/identity annotation is review (the default):
	// serviceaccount/NAMESPACE/NAME for a ServiceAccount that a podSelector
	// peer selects (its principal, and the pod IPs of its pods outside the
	// mesh), namespace/NAME for a namespace that a namespaceSelector peer
	// selects. An identity the NetworkPolicy's selectors resolve to but
	// that is not listed here is pending: left out of the generated
	// policies and reported IdentityPending. Listing an identity the
	// selectors do not resolve to grants nothing.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^(serviceaccount/[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?|namespace/[a-z0-9]([-a-z0-9]*[a-z0-9])?)$`
	Identities []string `json:"identities,omitempty"`
}

// IdentityApproval records which identities (ServiceAccounts, namespaces)
// may be sources of the AuthorizationPolicies generated for the
// NetworkPolicy of the same name and namespace. The operator creates it at
// the NetworkPolicy's first translation with every identity resolved then,
// and never adds to it afterwards: later identities wait for a person (or
// Git) to list them here. It is not in the admin, edit or view roles, so
// that only whom a cluster admin grants it to can approve.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=npa,categories=netpol2authz
// +kubebuilder:printcolumn:name="Identities",type=string,JSONPath=`.spec.identities`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IdentityApproval struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata; the name and namespace are
	// those of the NetworkPolicy whose identities it approves.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec lists the approved identities.
	// +optional
	Spec IdentityApprovalSpec `json:"spec,omitempty"`
}

// IdentityApprovalList contains a list of IdentityApproval.
// +kubebuilder:object:root=true
type IdentityApprovalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IdentityApproval `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IdentityApproval{}, &IdentityApprovalList{})
}
