package translate

import corev1 "k8s.io/api/core/v1"

// Istio's marks of a pod with a sidecar.
const (
	sidecarContainer  = "istio-proxy"
	sidecarAnnotation = "sidecar.istio.io/status"
)

// HasSidecar says whether a pod (its annotations and spec) carries Istio's
// sidecar: a container or init container named istio-proxy, or the
// sidecar.istio.io/status annotation the injector writes. The operator and
// the offline loader both ask this.
func HasSidecar(annotations map[string]string, spec *corev1.PodSpec) bool {
	if _, ok := annotations[sidecarAnnotation]; ok {
		return true
	}
	for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == sidecarContainer {
				return true
			}
		}
	}
	return false
}

// ContainerPortsOf lists the ports a named port of a NetworkPolicy can
// resolve to on a pod: those of its containers, and of its init containers
// that keep running beside them (restartPolicy: Always, "native sidecars"),
// since those serve traffic too; other init containers have exited by the
// time traffic arrives. The operator and the offline loader both use it.
func ContainerPortsOf(spec *corev1.PodSpec) []ContainerPort {
	var out []ContainerPort
	add := func(c *corev1.Container) {
		for _, p := range c.Ports {
			out = append(out, ContainerPort{Name: p.Name, Port: p.ContainerPort, Protocol: p.Protocol})
		}
	}
	for i := range spec.Containers {
		add(&spec.Containers[i])
	}
	for i := range spec.InitContainers {
		if c := &spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	return out
}
