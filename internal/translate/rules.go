package translate

import (
	"cmp"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// The rules of the contract about pods and namespaces, exported so that
// whatever else reads a Snapshot (verify) reads it exactly as the engine does.

// Counts says whether a pod takes part in a translation at all: not
// Succeeded or Failed, not hostNetwork, and in a namespace.
func (p *Pod) Counts() bool {
	if p.HostNetwork || p.Namespace == "" {
		return false
	}
	return p.Phase != corev1.PodSucceeded && p.Phase != corev1.PodFailed
}

// AmbientNamespace says whether a namespace's labels put its pods in
// ambient mode.
func AmbientNamespace(labels map[string]string) bool {
	return labels[labelDataplaneMode] == dataplaneAmbient
}

// InMesh says whether the pod presents a mesh identity: it has a sidecar,
// or its namespace is ambient and the pod does not opt out.
func (p *Pod) InMesh(ambientNamespace bool) bool {
	return p.Sidecar || (ambientNamespace && p.Labels[labelDataplaneMode] != dataplaneNone)
}

// Principal is the identity Istio checks for a ServiceAccount.
func Principal(trustDomain, namespace, serviceAccount string) string {
	return trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// PreferNamespace says whether a should replace b when a snapshot names the
// same namespace twice: a full entry over a partial one, then the smaller,
// so that input order never matters.
func PreferNamespace(a, b *Namespace) bool {
	if a.Partial != b.Partial {
		return !a.Partial
	}
	return fmt.Sprint(a.Labels, a.Annotations) < fmt.Sprint(b.Labels, b.Annotations)
}

// ComparePods orders pods by namespace and name, and duplicates by content,
// so that de-duplication keeps the same one whatever the input order.
func ComparePods(a, b *Pod) int {
	if c := cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)); c != 0 {
		return c
	}
	return cmp.Compare(fmt.Sprintf("%+v", *a), fmt.Sprintf("%+v", *b))
}
