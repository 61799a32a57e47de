package translate

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// hboneProtocol is the protocol of a waypoint's listener.
const hboneProtocol = "HBONE"

// ServiceOf is the engine's view of a Service, the one conversion the
// operator's cache and the offline loader share: its name, labels (the
// waypoint labels), selector and ports.
func ServiceOf(svc *corev1.Service) Service {
	out := Service{
		Namespace: svc.Namespace, Name: svc.Name,
		Labels: maps.Clone(svc.Labels), Selector: maps.Clone(svc.Spec.Selector),
	}
	for _, sp := range svc.Spec.Ports {
		out.Ports = append(out.Ports, ServicePort{Name: sp.Name, Port: sp.Port, TargetPort: sp.TargetPort, Protocol: sp.Protocol})
	}
	return out
}

// GatewayOf is the engine's view of a Gateway API Gateway (a v1beta1 one
// converts to v1 as is): class, labels, annotations, whether istiod has
// given it addresses (status.addresses not empty) and which namespaces
// its HBONE listener admits. The offline loader counts a manifest without
// status as addressed; it sets Addressed itself.
func GatewayOf(gw *gatewayv1.Gateway) Gateway {
	out := Gateway{
		Namespace: gw.Namespace, Name: gw.Name, ClassName: string(gw.Spec.GatewayClassName),
		Labels: maps.Clone(gw.Labels), Annotations: maps.Clone(gw.Annotations),
		Addressed: len(gw.Status.Addresses) > 0,
	}
	for _, ln := range gw.Spec.Listeners {
		if ln.Protocol != hboneProtocol {
			continue
		}
		if ns := ln.AllowedRoutes; ns != nil && ns.Namespaces != nil {
			if ns.Namespaces.From != nil {
				out.AttachFrom = string(*ns.Namespaces.From)
			}
			out.AttachSelector = ns.Namespaces.Selector
		}
		break
	}
	return out
}
