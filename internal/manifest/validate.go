package manifest

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateNetworkPolicy checks what the API server would reject and the
// engine relies on: selectors, ports and peers. A policy the server would
// refuse has no meaning to translate.
func validateNetworkPolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validateSelector(&np.Spec.PodSelector, spec.Child("podSelector"))
	for i, t := range np.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(spec.Child("policyTypes").Index(i), t,
				[]networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}))
		}
	}
	for i, rule := range np.Spec.Ingress {
		p := spec.Child("ingress").Index(i)
		for j, port := range rule.Ports {
			errs = append(errs, validatePort(port, p.Child("ports").Index(j))...)
		}
		for j, peer := range rule.From {
			errs = append(errs, validatePeer(peer, p.Child("from").Index(j))...)
		}
	}
	for i, rule := range np.Spec.Egress {
		p := spec.Child("egress").Index(i)
		for j, port := range rule.Ports {
			errs = append(errs, validatePort(port, p.Child("ports").Index(j))...)
		}
		for j, peer := range rule.To {
			errs = append(errs, validatePeer(peer, p.Child("to").Index(j))...)
		}
	}
	return errs
}

func validateSelector(sel *metav1.LabelSelector, p *field.Path) field.ErrorList {
	if sel == nil {
		return nil
	}
	return metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p)
}

func validatePort(port networkingv1.NetworkPolicyPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil {
		switch *port.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(p.Child("protocol"), *port.Protocol,
				[]corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}))
		}
	}
	if port.Port == nil {
		if port.EndPort != nil {
			errs = append(errs, field.Required(p.Child("port"), "required when endPort is set"))
		}
		return errs
	}
	if port.Port.Type == intstr.Int {
		if msgs := validation.IsValidPortNum(int(port.Port.IntVal)); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("port"), port.Port.IntVal, msgs[0]))
		}
	} else {
		for _, msg := range validation.IsValidPortName(port.Port.StrVal) {
			errs = append(errs, field.Invalid(p.Child("port"), port.Port.StrVal, msg))
		}
	}
	if port.EndPort != nil {
		switch {
		case port.Port.Type != intstr.Int:
			errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be set with a named port"))
		case *port.EndPort < port.Port.IntVal:
			errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "must be greater than or equal to port"))
		default:
			if msgs := validation.IsValidPortNum(int(*port.EndPort)); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, msgs[0]))
			}
		}
	}
	return errs
}

func validatePeer(peer networkingv1.NetworkPolicyPeer, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	hasSelector := peer.PodSelector != nil || peer.NamespaceSelector != nil
	switch {
	case peer.IPBlock != nil && hasSelector:
		return field.ErrorList{field.Forbidden(p, "may not specify both ipBlock and another peer")}
	case peer.IPBlock == nil && !hasSelector:
		return field.ErrorList{field.Required(p, "must specify a peer")}
	}
	errs = append(errs, validateSelector(peer.PodSelector, p.Child("podSelector"))...)
	errs = append(errs, validateSelector(peer.NamespaceSelector, p.Child("namespaceSelector"))...)
	if peer.IPBlock == nil {
		return errs
	}
	bp := p.Child("ipBlock")
	cidr, err := netip.ParsePrefix(peer.IPBlock.CIDR)
	if err != nil {
		return append(errs, field.Invalid(bp.Child("cidr"), peer.IPBlock.CIDR, "must be a CIDR, such as 10.0.0.0/8"))
	}
	for i, ex := range peer.IPBlock.Except {
		exp, err := netip.ParsePrefix(ex)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(bp.Child("except").Index(i), ex, "must be a CIDR, such as 10.1.0.0/16"))
		case exp.Addr().Is4() != cidr.Addr().Is4() || exp.Bits() <= cidr.Bits() || !cidr.Masked().Contains(exp.Addr()):
			errs = append(errs, field.Invalid(bp.Child("except").Index(i), ex, "must be a strict subset of cidr "+peer.IPBlock.CIDR))
		}
	}
	return errs
}

// validatePod checks the fields of a Pod the engine reads that JSON
// decoding alone does not.
func validatePod(pod *corev1.Pod) field.ErrorList {
	if pod.Status.PodIP == "" {
		return nil
	}
	if _, err := netip.ParseAddr(pod.Status.PodIP); err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("status", "podIP"), pod.Status.PodIP, "must be an IP address")}
	}
	return nil
}
