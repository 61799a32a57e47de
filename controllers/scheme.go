package controllers

import (
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

// Scheme holds every type the operator reads or writes: Kubernetes' own,
// NetworkPolicyTranslations, Istio's security API, the admin network
// policies (policy.networking.k8s.io) and the Gateway API's Gateways.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(policyv1alpha1.AddToScheme(s))
	utilruntime.Must(securityv1.AddToScheme(s))
	utilruntime.Must(netpolv1alpha1.Install(s))
	utilruntime.Must(netpolv1alpha2.Install(s))
	utilruntime.Must(netpolv1beta1.Install(s))
	utilruntime.Must(gatewayv1.Install(s))
	utilruntime.Must(gatewayv1beta1.Install(s))
	return s
}
