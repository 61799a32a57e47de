package controllers

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// notInitial drops the creations of the informer's initial list: at start
// every NetworkPolicy is enqueued by its own initial list, so mapping
// thousands of pods and namespaces to them again is wasted work.
func notInitial(e event.CreateEvent) bool { return !e.IsInInitialList }

// podChanged passes pod creations (but those of the initial list) and
// deletions, and only the updates that change what the engine reads of a
// pod (labels, ServiceAccount, phase, IP, hostNetwork, sidecar presence,
// container ports). Status heartbeats and unrelated annotations stop here.
func podChanged() predicate.Predicate {
	return predicate.Funcs{CreateFunc: notInitial, UpdateFunc: func(e event.UpdateEvent) bool {
		oldPod, ok1 := e.ObjectOld.(*cachedPod)
		newPod, ok2 := e.ObjectNew.(*cachedPod)
		if !ok1 || !ok2 {
			return true
		}
		return cachedPodDiffers(oldPod, newPod)
	}}
}

// resynced passes the updates of a periodic resync: the informer hands every
// object again, unchanged (same resourceVersion).
func resynced() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetResourceVersion() == e.ObjectNew.GetResourceVersion()
		},
	}
}

// namespaceChanged passes namespace creations (but those of the initial
// list) and deletions, and updates that change its labels or its
// netpol2authz annotations.
func namespaceChanged() predicate.Predicate {
	return predicate.Funcs{CreateFunc: notInitial, UpdateFunc: func(e event.UpdateEvent) bool {
		return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
			optionsDiffer(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations())
	}}
}

// optionsDiffer says whether the netpol2authz annotations differ.
func optionsDiffer(a, b map[string]string) bool {
	for _, k := range translate.NamespaceAnnotations {
		va, oka := a[k]
		vb, okb := b[k]
		if va != vb || oka != okb {
			return true
		}
	}
	return false
}

// meshConfigChanged passes creations (but that of the initial list) and
// deletions of the mesh ConfigMap and updates of its mesh key.
func meshConfigChanged() predicate.Predicate {
	return predicate.Funcs{CreateFunc: notInitial, UpdateFunc: func(e event.UpdateEvent) bool {
		a, ok1 := e.ObjectOld.(*corev1.ConfigMap)
		b, ok2 := e.ObjectNew.(*corev1.ConfigMap)
		return !ok1 || !ok2 || a.Data[MeshConfigKey] != b.Data[MeshConfigKey]
	}}
}
