package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Admin network policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
// ClusterNetworkPolicy) change what the NetworkPolicies mean, so every
// translation reads them all (docs/translation.md#admin-network-policies).
// Their CRDs may be absent, come and go: the operator asks the API
// server's discovery (which every authenticated user may read, so no RBAC
// beyond get/list/watch on the kinds themselves) at start, every
// Settings.AdminPolicyDiscoveryPeriod, and at once when the watch of a
// kind reports it gone. Each served kind is watched by an informer of its
// own (a cache of its own, not the manager's: a kind that goes away is
// stopped without touching the manager's cache, whose sync and reads never
// wait for it). The informers keep one converted list of every admin
// policy, which gathering and the event mapping read; a change of it
// enqueues every translated NetworkPolicy.

// adminKind is one kind, in one version, of admin network policy.
type adminKind struct {
	gvk schema.GroupVersionKind
	// resource is its plural name, as discovery lists it.
	resource string
	newObj   func() client.Object
	convert  func(client.Object) (adminpolicy.Policy, error)
}

func (k adminKind) String() string { return k.gvk.Kind + "." + k.gvk.Version + "." + k.gvk.Group }

// adminKinds are the kinds the operator reads, each kind's versions in
// order of preference: one ClusterNetworkPolicy served in two versions is
// one object, read once, in the newest version served.
var adminKinds = []adminKind{
	{
		gvk: schema.GroupVersion(netpolv1alpha1.GroupVersion).WithKind("AdminNetworkPolicy"), resource: "adminnetworkpolicies",
		newObj: func() client.Object { return &netpolv1alpha1.AdminNetworkPolicy{} },
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1alpha1.AdminNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromAdminNetworkPolicy(p), nil
		},
	},
	{
		gvk: schema.GroupVersion(netpolv1alpha1.GroupVersion).WithKind("BaselineAdminNetworkPolicy"), resource: "baselineadminnetworkpolicies",
		newObj: func() client.Object { return &netpolv1alpha1.BaselineAdminNetworkPolicy{} },
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1alpha1.BaselineAdminNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromBaselineAdminNetworkPolicy(p), nil
		},
	},
	{
		gvk: schema.GroupVersion(netpolv1beta1.GroupVersion).WithKind("ClusterNetworkPolicy"), resource: "clusternetworkpolicies",
		newObj: func() client.Object { return &netpolv1beta1.ClusterNetworkPolicy{} },
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1beta1.ClusterNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromClusterNetworkPolicy(p), nil
		},
	},
	{
		gvk: schema.GroupVersion(netpolv1alpha2.GroupVersion).WithKind("ClusterNetworkPolicy"), resource: "clusternetworkpolicies",
		newObj: func() client.Object { return &netpolv1alpha2.ClusterNetworkPolicy{} },
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1alpha2.ClusterNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromClusterNetworkPolicyV1alpha2(p)
		},
	},
}

// DefaultAdminPolicyDiscoveryPeriod is how often the operator asks which
// admin network policy kinds are served, unless
// --admin-policy-discovery-period says otherwise.
const DefaultAdminPolicyDiscoveryPeriod = 10 * time.Second

// adminSyncLogAfter is how long an informer may take to sync before the
// operator says it waits (RBAC missing, a CRD that was deleted meanwhile).
const adminSyncLogAfter = 30 * time.Second

// adminWatcher discovers the admin network policy kinds the API server
// serves, watches them, and holds their converted policies. It is the
// NetworkPolicy controller's source of "re-translate everything" events:
// the controller starts it (only the leader watches) and waits, before
// its first reconcile, until the kinds served at start are read, so that
// no restart translates as if the admin policies were absent.
type adminWatcher struct {
	cfg        *rest.Config
	httpClient *http.Client
	scheme     *runtime.Scheme
	mapper     meta.RESTMapper
	// discover returns the preferred served version of each kind.
	discover func(context.Context) (map[string]adminKind, error)
	period   time.Duration

	// rediscover asks the discovery loop for a round now.
	rediscover chan struct{}
	// changed says the policies changed: every translated NetworkPolicy is
	// enqueued.
	changed chan struct{}

	mu sync.Mutex
	// discovered: discovery has answered at least once.
	discovered bool
	// desired is the version of each kind to watch.
	desired map[string]adminKind
	// watches are the running informers, by group, version and kind.
	watches map[schema.GroupVersionKind]*adminWatch
	// current is the synced watch whose policies count, by kind. When the
	// preferred version of a kind changes, the old one counts until the
	// new one has synced.
	current map[string]*adminWatch

	// policies is every admin policy of the current watches, sorted.
	policies atomic.Pointer[[]adminpolicy.Policy]
}

// adminWatch is one informer of one admin kind and version.
type adminWatch struct {
	kind   adminKind
	cancel context.CancelFunc
	// items are the converted policies, by name.
	items map[string]adminpolicy.Policy
	ready bool
}

func newAdminWatcher(mgr ctrl.Manager, period time.Duration) (*adminWatcher, error) {
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("admin network policies: discovery client: %w", err)
	}
	if period <= 0 {
		period = DefaultAdminPolicyDiscoveryPeriod
	}
	return &adminWatcher{
		cfg:        mgr.GetConfig(),
		httpClient: mgr.GetHTTPClient(),
		scheme:     mgr.GetScheme(),
		mapper:     mgr.GetRESTMapper(),
		discover:   func(ctx context.Context) (map[string]adminKind, error) { return discoverAdminKinds(ctx, dc) },
		period:     period,
		rediscover: make(chan struct{}, 1),
		changed:    make(chan struct{}, 1),
		watches:    map[schema.GroupVersionKind]*adminWatch{},
		current:    map[string]*adminWatch{},
	}, nil
}

// discoverAdminKinds asks the API server which admin kinds it serves, in
// which versions, and returns the preferred version of each served kind.
// A group version that is not served answers 404; any other error is
// returned (the caller keeps what it watches).
func discoverAdminKinds(ctx context.Context, dc discovery.ServerResourcesInterfaceWithContext) (map[string]adminKind, error) {
	served := map[schema.GroupVersionResource]bool{}
	seen := map[schema.GroupVersion]bool{}
	for _, k := range adminKinds {
		gv := k.gvk.GroupVersion()
		if seen[gv] {
			continue
		}
		seen[gv] = true
		list, err := dc.ServerResourcesForGroupVersionWithContext(ctx, gv.String())
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("discovering %s: %w", gv, err)
		}
		for _, r := range list.APIResources {
			served[gv.WithResource(r.Name)] = true
		}
	}
	out := map[string]adminKind{}
	for _, k := range adminKinds {
		if _, ok := out[k.gvk.Kind]; !ok && served[k.gvk.GroupVersion().WithResource(k.resource)] {
			out[k.gvk.Kind] = k
		}
	}
	return out, nil
}

// Policies returns every admin policy the operator has read, sorted; the
// caller must not change them. Nil (no watcher) has none.
func (w *adminWatcher) Policies() []adminpolicy.Policy {
	if w == nil {
		return nil
	}
	if p := w.policies.Load(); p != nil {
		return *p
	}
	return nil
}

// String names the source in the controller's logs.
func (w *adminWatcher) String() string { return "admin network policies" }

// start starts discovery and the watches; m maps a change of the policies
// to every translated NetworkPolicy, added to q. It returns at once.
func (w *adminWatcher) start(ctx context.Context, m mapper, q queue) {
	go w.run(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.changed:
				for _, req := range m.MeshConfigRequests(ctx, nil) {
					q.Add(req)
				}
			}
		}
	}()
}

// WaitForSync returns once discovery has answered and every kind it found
// served is read, or with ctx's error.
func (w *adminWatcher) WaitForSync(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if w.synced() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("admin network policies not read: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (w *adminWatcher) synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.discovered {
		return false
	}
	for kind := range w.desired {
		if w.current[kind] == nil {
			return false
		}
	}
	return true
}

// run discovers at once, then every period and whenever asked, until ctx
// ends (which stops the watches, whose contexts derive from it).
func (w *adminWatcher) run(ctx context.Context) {
	t := time.NewTicker(w.period)
	defer t.Stop()
	for {
		w.syncKinds(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.rediscover:
		}
	}
}

// syncKinds makes the watches follow what discovery says: a kind newly
// served is watched; a kind no longer served is stopped and its policies
// dropped at once; a kind whose preferred version changed keeps its old
// watch until the new one has synced. A discovery error changes nothing.
func (w *adminWatcher) syncKinds(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName("admin-policies")
	desired, err := w.discover(ctx)
	if err != nil {
		log.Error(err, "discovering the admin network policy kinds; keeping what is watched")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.desired, w.discovered = desired, true
	for _, k := range desired {
		if w.watches[k.gvk] == nil {
			if err := w.startLocked(ctx, k); err != nil {
				log.Error(err, "watching admin network policies", "kind", k.String())
			}
		}
	}
	changed := false
	for gvk, aw := range w.watches {
		want, served := desired[gvk.Kind]
		switch {
		case served && want.gvk == gvk:
			continue
		case served && w.current[gvk.Kind] == aw:
			// Another version is preferred now: this one counts until it
			// has synced (ready swaps them).
			continue
		}
		w.stopLocked(aw)
		if w.current[gvk.Kind] == aw {
			delete(w.current, gvk.Kind)
			changed = true
			log.Info("no longer served: its policies no longer count", "kind", aw.kind.String())
		}
	}
	if changed {
		w.rebuildLocked()
	}
}

// startLocked starts an informer for kind k, in a cache of its own.
func (w *adminWatcher) startLocked(ctx context.Context, k adminKind) error {
	log := ctrl.LoggerFrom(ctx).WithName("admin-policies").WithValues("kind", k.String())
	wctx, cancel := context.WithCancel(ctx)
	c, err := cache.New(w.cfg, cache.Options{
		HTTPClient:       w.httpClient,
		Scheme:           w.scheme,
		Mapper:           w.mapper,
		DefaultTransform: cache.TransformStripManagedFields(),
		// A kind that goes away fails its list with 404: look again now
		// rather than at the next period.
		DefaultWatchErrorHandler: func(ctx context.Context, r *toolscache.Reflector, err error) {
			if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
				w.askRediscover()
			}
			toolscache.DefaultWatchErrorHandler(ctx, r, err)
		},
	})
	if err != nil {
		cancel()
		return err
	}
	inf, err := c.GetInformer(wctx, k.newObj(), cache.BlockUntilSynced(false))
	if err != nil {
		cancel()
		return err
	}
	aw := &adminWatch{kind: k, cancel: cancel, items: map[string]adminpolicy.Policy{}}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.upsert(wctx, aw, obj) },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(client.Object)
			n, ok2 := newObj.(client.Object)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return // a resync: nothing changed
			}
			w.upsert(wctx, aw, newObj)
		},
		DeleteFunc: func(obj any) { w.remove(aw, obj) },
	})
	if err != nil {
		cancel()
		return err
	}
	w.watches[k.gvk] = aw
	log.Info("served: watching")
	go func() {
		if err := c.Start(wctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error(err, "admin network policy informer stopped")
		}
	}()
	go func() {
		started := time.Now()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		logged := false
		for !reg.HasSynced() {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if !logged && time.Since(started) > adminSyncLogAfter {
				logged = true
				log.Info("still waiting to read the admin network policies: may the operator list and watch them (RBAC)?", "waited", time.Since(started).Round(time.Second).String())
			}
		}
		w.ready(ctx, aw)
	}()
	return nil
}

// ready makes a synced watch count, when its version is the preferred one,
// and stops the watch of the version it replaces.
func (w *adminWatcher) ready(ctx context.Context, aw *adminWatch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	aw.ready = true
	kind := aw.kind.gvk.Kind
	if w.watches[aw.kind.gvk] != aw || w.desired[kind].gvk != aw.kind.gvk {
		return
	}
	if old := w.current[kind]; old != nil && old != aw {
		w.stopLocked(old)
	}
	w.current[kind] = aw
	ctrl.LoggerFrom(ctx).WithName("admin-policies").Info("read", "kind", aw.kind.String(), "policies", len(aw.items))
	w.rebuildLocked()
}

func (w *adminWatcher) stopLocked(aw *adminWatch) {
	aw.cancel()
	if w.watches[aw.kind.gvk] == aw {
		delete(w.watches, aw.kind.gvk)
	}
}

// upsert records an added or updated admin policy. One that does not
// convert is kept as an invalid policy, which the engine reports
// (AdminPolicyInvalid) without letting it change a translation.
func (w *adminWatcher) upsert(ctx context.Context, aw *adminWatch, obj any) {
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	pol, err := aw.kind.convert(o)
	if err != nil {
		ctrl.LoggerFrom(ctx).WithName("admin-policies").Error(err, "converting an admin network policy", "kind", aw.kind.String(), "name", o.GetName())
		pol = unreadablePolicy(aw.kind, o, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	aw.items[o.GetName()] = pol
	if w.current[aw.kind.gvk.Kind] == aw {
		w.rebuildLocked()
	}
}

// unreadablePolicy stands for an admin policy that did not convert: it
// selects nothing and fails validation (an unknown tier), so the engine
// leaves it out and reports AdminPolicyInvalid with err.
func unreadablePolicy(k adminKind, o client.Object, err error) adminpolicy.Policy {
	return adminpolicy.Policy{
		Kind: adminpolicy.Kind(k.gvk.Kind), APIVersion: k.gvk.GroupVersion().String(), Name: o.GetName(), UID: o.GetUID(),
		Tier: adminpolicy.Tier("unreadable (" + err.Error() + ")"),
	}
}

func (w *adminWatcher) remove(aw *adminWatch, obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(aw.items, o.GetName())
	if w.current[aw.kind.gvk.Kind] == aw {
		w.rebuildLocked()
	}
}

// rebuildLocked recomputes the policies of the current watches and says
// they changed.
func (w *adminWatcher) rebuildLocked() {
	var out []adminpolicy.Policy
	for _, aw := range w.current {
		for _, p := range aw.items {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b adminpolicy.Policy) int {
		return cmp.Or(adminpolicy.Compare(&a, &b), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	w.policies.Store(&out)
	select {
	case w.changed <- struct{}{}:
	default: // one pending signal covers this change too
	}
}

func (w *adminWatcher) askRediscover() {
	select {
	case w.rediscover <- struct{}{}:
	default:
	}
}

// adminSource is the adminWatcher as a source of the NetworkPolicy
// controller: a change of the admin policies enqueues every translated
// NetworkPolicy, and the controller's first reconcile waits until the
// kinds served at start are read.
type adminSource struct {
	w *adminWatcher
	m mapper
}

func (s adminSource) Start(ctx context.Context, q queue) error {
	s.w.start(ctx, s.m, q)
	return nil
}

func (s adminSource) WaitForSync(ctx context.Context) error { return s.w.WaitForSync(ctx) }

func (s adminSource) String() string { return s.w.String() }

// Hooks of the event mapping and gathering: what a NetworkPolicy depends
// on includes what the admin policies make it read.

// dependencies is what the translation of np reads, with the admin
// policies.
func (m mapper) dependencies(np *networkingv1.NetworkPolicy) translate.Dependencies {
	return translate.DependenciesOf(np).WithAdmin(m.Admin.Policies())
}

// listCrossNamespace lists the NetworkPolicies that a pod or namespace of
// another namespace can matter to: those with a namespaceSelector (the
// index), or all of them when admin policies make other namespaces'
// pods and labels matter to every NetworkPolicy.
func (m mapper) listCrossNamespace(ctx context.Context, list *networkingv1.NetworkPolicyList) error {
	if len(m.Admin.Policies()) > 0 {
		return m.Client.List(ctx, list, client.UnsafeDisableDeepCopy)
	}
	return m.Client.List(ctx, list, client.MatchingFields{indexScope: scopeAnyNamespace}, client.UnsafeDisableDeepCopy)
}
