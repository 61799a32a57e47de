package controllers

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

const sidecarAnnotation = "sidecar.istio.io/status"

// hasSidecar says whether a pod carries Istio's sidecar, as the engine's
// one rule says.
func hasSidecar(p *corev1.Pod) bool { return translate.HasSidecar(p.Annotations, &p.Spec) }

// EnginePod is the part of a pod the engine reads, as the operator gathers
// it.
func EnginePod(p *corev1.Pod) translate.Pod {
	out := translate.Pod{
		Namespace:      p.Namespace,
		Name:           p.Name,
		Labels:         p.Labels,
		ServiceAccount: p.Spec.ServiceAccountName,
		Phase:          p.Status.Phase,
		HostNetwork:    p.Spec.HostNetwork,
		Sidecar:        hasSidecar(p),
		Ports:          translate.ContainerPortsOf(&p.Spec),
	}
	if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
		out.IP = ip
	}
	return out
}

// TransformPod is the pod cache's transform: it keeps only what the engine,
// the predicates and the map functions read (identity, labels,
// ServiceAccount, hostNetwork, container ports, phase and pod IP) and drops
// the rest, managedFields first. Sidecar presence is kept as the
// sidecar.istio.io/status annotation with an empty value (its value,
// Istio's injection record, is never read), so containers without ports
// can go. Other types pass through unchanged.
func TransformPod(in any) (any, error) {
	p, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	out := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              p.Name,
			Namespace:         p.Namespace,
			UID:               p.UID,
			ResourceVersion:   p.ResourceVersion,
			DeletionTimestamp: p.DeletionTimestamp,
			Labels:            p.Labels,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: p.Spec.ServiceAccountName,
			HostNetwork:        p.Spec.HostNetwork,
			Containers:         portsOnly(p.Spec.Containers),
			InitContainers:     portsOnly(p.Spec.InitContainers),
		},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP},
	}
	if hasSidecar(p) {
		out.Annotations = map[string]string{sidecarAnnotation: ""}
	}
	return out, nil
}

// portsOnly keeps the name, ports and restart policy (which makes an init
// container a native sidecar, whose ports count) of the containers that
// declare ports.
func portsOnly(in []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for i := range in {
		if len(in[i].Ports) > 0 {
			out = append(out, corev1.Container{Name: in[i].Name, Ports: in[i].Ports, RestartPolicy: in[i].RestartPolicy})
		}
	}
	return out
}
