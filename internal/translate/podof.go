package translate

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// PodOf is the engine's view of an admitted pod, the one conversion the
// operator's pod cache and the offline loader share: identity, labels (the
// same map, not a copy), ServiceAccount (the deprecated serviceAccount
// alias when serviceAccountName is empty, as the API server fills it),
// phase, pod IP, hostNetwork, sidecar presence and the container ports a
// named port can resolve to.
func PodOf(p *corev1.Pod) Pod {
	out := Pod{
		Namespace:      p.Namespace,
		Name:           p.Name,
		Labels:         p.Labels,
		ServiceAccount: p.Spec.ServiceAccountName,
		Phase:          p.Status.Phase,
		HostNetwork:    p.Spec.HostNetwork,
		Sidecar:        HasSidecar(p.Annotations, &p.Spec),
		Ports:          ContainerPortsOf(&p.Spec),
	}
	if out.ServiceAccount == "" {
		out.ServiceAccount = p.Spec.DeprecatedServiceAccount
	}
	if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
		out.IP = ip
	}
	return out
}
