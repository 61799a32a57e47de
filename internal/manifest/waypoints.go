package manifest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// readService reads a Service: which pods it selects, its ports and its
// waypoint labels (docs/translation.md#waypoints).
func (l *loader) readService(p place, data []byte) []fieldError {
	svc := &corev1.Service{}
	if errs := l.decode(p, data, svc, func() field.ErrorList { return validateService(svc) }); len(errs) > 0 {
		return errs
	}
	out := translate.ServiceOf(svc)
	out.Namespace = p.namespace
	l.services = append(l.services, out)
	return nil
}

// validateService checks what the engine reads of a Service that JSON
// decoding alone does not: its selector and ports, as the API server does.
func validateService(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	for k, v := range svc.Spec.Selector {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(spec.Child("selector").Key(k), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(spec.Child("selector").Key(k), v, msg))
		}
	}
	for i, sp := range svc.Spec.Ports {
		pp := spec.Child("ports").Index(i)
		if msgs := validation.IsValidPortNum(int(sp.Port)); len(msgs) > 0 {
			errs = append(errs, field.Invalid(pp.Child("port"), sp.Port, msgs[0]))
		}
		switch {
		case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
			for _, msg := range validation.IsValidPortName(sp.TargetPort.StrVal) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), sp.TargetPort.StrVal, msg))
			}
		case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
			if msgs := validation.IsValidPortNum(int(sp.TargetPort.IntVal)); len(msgs) > 0 {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), sp.TargetPort.IntVal, msgs[0]))
			}
		}
		switch sp.Protocol {
		case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), sp.Protocol, []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}))
		}
	}
	return errs
}

// readGateway reads a Gateway API Gateway of any version, for the
// waypoints the use-waypoint labels name.
func readGateway[T any](toV1 func(*T) *gatewayv1.Gateway) func(*loader, place, []byte) []fieldError {
	return func(l *loader, p place, data []byte) []fieldError {
		obj := new(T)
		gw := toV1(obj)
		if errs := l.decode(p, data, obj, func() field.ErrorList { return validateGateway(gw) }); len(errs) > 0 {
			return errs
		}
		out := translate.GatewayOf(gw)
		out.Namespace = p.namespace
		// A manifest without status is one to apply: istiod gives it
		// addresses once its pods are ready, so it counts as a waypoint.
		// A status read from a cluster says what is.
		out.Addressed = !hasStatus(data) || out.Addressed
		l.gateways = append(l.gateways, out)
		return nil
	}
}

// validateGateway checks what the engine reads of a Gateway: its class is
// required, and a Selector attachment needs a valid selector.
func validateGateway(gw *gatewayv1.Gateway) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if gw.Spec.GatewayClassName == "" {
		errs = append(errs, field.Required(spec.Child("gatewayClassName"), ""))
	}
	for i, ln := range gw.Spec.Listeners {
		if ln.AllowedRoutes == nil || ln.AllowedRoutes.Namespaces == nil {
			continue
		}
		ns := ln.AllowedRoutes.Namespaces
		path := spec.Child("listeners").Index(i).Child("allowedRoutes", "namespaces")
		if ns.From != nil {
			switch *ns.From {
			case gatewayv1.NamespacesFromAll, gatewayv1.NamespacesFromSame, gatewayv1.NamespacesFromSelector, gatewayv1.NamespacesFromNone:
			default:
				errs = append(errs, field.NotSupported(path.Child("from"), *ns.From, []gatewayv1.FromNamespaces{gatewayv1.NamespacesFromAll, gatewayv1.NamespacesFromSame, gatewayv1.NamespacesFromSelector, gatewayv1.NamespacesFromNone}))
			}
		}
		errs = append(errs, validateSelector(ns.Selector, path.Child("selector"))...)
	}
	return errs
}

// hasStatus says whether an object's status is there and not empty
// (blankStatus has nulled an empty one).
func hasStatus(data []byte) bool {
	var top struct {
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return false
	}
	return len(top.Status) > 0 && !bytes.Equal(bytes.TrimSpace(top.Status), []byte("null"))
}

func gatewayV1(o *gatewayv1.Gateway) *gatewayv1.Gateway { return o }

func gatewayV1beta1(o *gatewayv1beta1.Gateway) *gatewayv1.Gateway { return (*gatewayv1.Gateway)(o) }

// sortWaypointObjects orders what was read, so that input order never
// shows.
func sortWaypointObjects(svcs []translate.Service, gws []translate.Gateway) {
	slices.SortFunc(svcs, func(a, b translate.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(gws, func(a, b translate.Gateway) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
