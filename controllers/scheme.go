package controllers

import (
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

// Scheme holds every type the operator reads or writes: Kubernetes' own,
// NetworkPolicyTranslations and Istio's security API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(policyv1alpha1.AddToScheme(s))
	utilruntime.Must(securityv1.AddToScheme(s))
	return s
}
