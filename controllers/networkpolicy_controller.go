package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// NetworkPolicyReconciler keeps the AuthorizationPolicies and the
// NetworkPolicyTranslation of each NetworkPolicy right.
type NetworkPolicyReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client   client.Client
	Recorder events.EventRecorder
	Settings Settings
	// APIReader reads from the API server, past the cache: the
	// managedFields of the objects that brought a pending identity, which
	// the pod cache drops.
	APIReader client.Reader
	// Now is the clock of condition transitions; nil means time.Now.
	Now func() time.Time
	// admin watches the admin network policies (admin.go).
	admin *adminWatcher
	// gateways watches the Gateways, the waypoints (waypoints.go).
	gateways *gatewayWatcher
	// pods is the operator's pod cache (podstore.go).
	pods *podStore
	// deps keeps each NetworkPolicy's dependencies for the event mapping.
	deps *depCache
	// statusWrites remembers, per NetworkPolicy, the last status write
	// whose event the cache may not have brought yet (reconcile.go).
	statusWrites sync.Map
}

// Reconcile translates one NetworkPolicy: fetch it (gone: clean up), gather
// its inputs from the cache, translate, apply, report. Every exit after the
// fetch that is not a cache behind a write leaves a true status: a step
// that failed sets Ready=False with the step and the error, never leaving
// an old Ready=True.
func (r *NetworkPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	np := &networkingv1.NetworkPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, np); err != nil {
		if apierrors.IsNotFound(err) {
			r.deps.forget(req.NamespacedName)
			r.statusWrites.Delete(req.NamespacedName)
			if err := r.cleanUp(ctx, req.NamespacedName); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, r.forgetApproval(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if r.cacheBehindStatus(ctx, req.NamespacedName) {
		return ctrl.Result{}, nil // the write's own event reconciles again
	}
	in, err := gather(ctx, r.Client, r.pods, r.Settings, watched{Admin: r.admin.Items(), Gateways: r.gateways.Items()}, np)
	if err != nil {
		return r.failed(ctx, np, reasonGatherFailed, err)
	}
	if terminating(in) {
		return ctrl.Result{}, nil
	}
	t := translate.Translate(in.Snapshot, r.Settings.TranslateOptions()).Translations[0]
	if t.Action == translate.ActionRemove {
		return ctrl.Result{}, r.cleanUp(ctx, req.NamespacedName, t.Findings...)
	}
	if err := r.recordBaseline(ctx, np, in, t); err != nil {
		return r.failed(ctx, np, reasonRecordFailed, err)
	}
	out, err := r.apply(ctx, np, t)
	if err != nil {
		return r.failed(ctx, np, reasonApplyFailed, err)
	}
	return retryConflicts(ctx, r.report(ctx, np, in, out))
}

// failed ends a reconcile whose step failed: a cache behind a write retries
// quietly; anything else sets Ready=False with the reason and the error on
// the status, and is retried with backoff.
func (r *NetworkPolicyReconciler) failed(ctx context.Context, np *networkingv1.NetworkPolicy, reason string, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return retryConflicts(ctx, err)
	}
	if serr := r.reportFailure(ctx, np, reason, err); serr != nil {
		ctrl.LoggerFrom(ctx).Error(serr, "reporting a failed reconcile")
	}
	return ctrl.Result{}, err
}

// retryConflicts turns a write conflict into a quiet retry: the cache was
// behind a write (usually this controller's own, one reconcile earlier),
// and the watch is bringing the newer object, which ends it.
func retryConflicts(ctx context.Context, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("cache behind a write, retrying", "error", err.Error())
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	}
	return ctrl.Result{}, err
}

// SetupWithManager registers the field indexes and the controller. Pods,
// namespaces, the mesh config and conflicting AuthorizationPolicies map to
// the NetworkPolicies they matter to; AuthorizationPolicies and
// NetworkPolicyTranslations map to their controller, so hand edits and
// deletions are undone. The admin network policies, where served, enqueue
// every translated NetworkPolicy.
func (r *NetworkPolicyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := setupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	admin, err := newAdminWatcher(mgr, r.Settings.AdminPolicyDiscoveryPeriod)
	if err != nil {
		return err
	}
	r.admin = admin
	gateways, err := newGatewayWatcher(mgr, r.Settings.AdminPolicyDiscoveryPeriod)
	if err != nil {
		return err
	}
	r.gateways = gateways
	pods, err := newPodStore(mgr.GetConfig())
	if err != nil {
		return err
	}
	if err := mgr.Add(pods); err != nil {
		return fmt.Errorf("adding the pod store: %w", err)
	}
	r.pods = pods
	r.deps = &depCache{}
	m := mapper{Client: mgr.GetClient(), Admin: admin, Pods: pods, Gateways: gateways, Deps: r.deps}
	return ctrl.NewControllerManagedBy(mgr).
		Named("networkpolicy").
		For(&networkingv1.NetworkPolicy{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, resynced()))).
		Owns(&securityv1.AuthorizationPolicy{}).
		Owns(&policyv1alpha1.NetworkPolicyTranslation{}).
		Watches(&securityv1.AuthorizationPolicy{}, handler.EnqueueRequestsFromMapFunc(m.ConflictRequests)).
		Watches(&policyv1alpha1.IdentityApproval{}, handler.EnqueueRequestsFromMapFunc(sameName)).
		Watches(&networkingv1.NetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(m.SiblingRequests), builder.WithPredicates(isolationChanged())).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(m.ServiceRequests), builder.WithPredicates(serviceChanged())).
		Watches(&corev1.Namespace{}, m.NamespaceHandler(), builder.WithPredicates(namespaceChanged())).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(m.MeshConfigRequests), builder.WithPredicates(meshConfigChanged())).
		WatchesRawSource(kindSource[adminpolicy.Policy]{w: admin, m: m}).
		WatchesRawSource(kindSource[translate.Gateway]{w: gateways, m: m}).
		WatchesRawSource(pods.source(m.PodHandler(), podChanged())).
		WithOptions(opts).
		Complete(r)
}

// sameName maps an IdentityApproval to the NetworkPolicy of its name.
func sameName(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
}

// Setup wires the operator into mgr, whose cache must have been built with
// CacheOptions(settings).
func Setup(ctx context.Context, mgr ctrl.Manager, settings Settings, opts controller.Options) error {
	r := &NetworkPolicyReconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("netpol2authz"),
		Settings:  settings,
		APIReader: mgr.GetAPIReader(),
	}
	if err := r.SetupWithManager(ctx, mgr, opts); err != nil {
		return fmt.Errorf("setting up the NetworkPolicy controller: %w", err)
	}
	ns := &NamespaceReconciler{Client: mgr.GetClient(), Recorder: r.Recorder}
	if err := ns.SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("setting up the Namespace controller: %w", err)
	}
	return nil
}
