package controllers

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// NamespaceReconciler warns, with an Event on the namespace, when its
// netpol2authz annotations have a value netpol2authz does not know, whether
// or not it holds NetworkPolicies yet. What that means for each policy is
// the NetworkPolicy reconciler's business.
type NamespaceReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// Reconcile emits one Warning per invalid annotation. It runs when a
// namespace appears (also at start-up) and when its netpol2authz
// annotations change, not on other updates.
func (r *NamespaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, req.NamespacedName, ns); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ns.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	for _, f := range translate.NamespaceFindings(translate.Namespace{Name: ns.Name, Annotations: ns.Annotations}) {
		r.Recorder.Eventf(ns, nil, corev1.EventTypeWarning, string(f.Type), "Translate", "%s", f.Message)
	}
	return ctrl.Result{}, nil
}

// netpol2authzAnnotationsChanged passes creations and the updates that
// change a netpol2authz annotation.
func netpol2authzAnnotationsChanged() predicate.Funcs {
	ours := func(o client.Object) map[string]string {
		a := map[string]string{}
		for _, k := range translate.NamespaceAnnotations {
			if v, ok := o.GetAnnotations()[k]; ok {
				a[k] = v
			}
		}
		return a
	}
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		UpdateFunc:  func(e event.UpdateEvent) bool { return !maps.Equal(ours(e.ObjectOld), ours(e.ObjectNew)) },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// SetupWithManager registers the controller.
func (r *NamespaceReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("namespace").
		For(&corev1.Namespace{}, builder.WithPredicates(netpol2authzAnnotationsChanged())).
		WithOptions(opts).
		Complete(r)
}
