package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kinds whose CRDs may be absent, come and go (the admin network policies,
// the Gateway API's Gateways): the operator asks the API server's
// discovery (which every authenticated user may read, so no RBAC beyond
// get/list/watch on the kinds themselves) at start, every period, and at
// once when the watch of a kind reports it gone. Each served kind is
// watched by an informer of its own (a cache of its own, not the
// manager's: a kind that goes away is stopped without touching the
// manager's cache, whose sync and reads never wait for it). The informers
// keep one converted list of every object, which gathering and the event
// mapping read; a change of it enqueues every translated NetworkPolicy.

// watchedKind is one kind, in one version, of objects a kindWatcher reads.
type watchedKind[T any] struct {
	gvk schema.GroupVersionKind
	// resource is its plural name, as discovery lists it.
	resource string
	newObj   func() client.Object
	convert  func(client.Object) (T, error)
	// strict: the objects are read as they are stored and decoded with
	// every field known, so an object of another schema revision (a field
	// this version does not know) is unreadable rather than misread. A
	// typed informer drops unknown fields silently: an AdminNetworkPolicy
	// of network-policy-api v0.1's schema, whose `namespaces` peer holds a
	// `namespaceSelector`, would read as a peer of every namespace.
	strict bool
}

// object is what the informer of kind k holds: the typed object, or for a
// strict kind the object as stored (unstructured).
func (k watchedKind[T]) object() client.Object {
	if !k.strict {
		return k.newObj()
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.gvk)
	return u
}

// read converts an object of kind k, decoding a strict kind's with every
// field known first.
func (k watchedKind[T]) read(o client.Object) (T, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return k.convert(o)
	}
	typed := k.newObj()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.UnstructuredContent(), typed, true); err != nil {
		var zero T
		return zero, fmt.Errorf("%s %s does not match the schema this version of netpol2authz reads (network-policy-api v0.3.0): %w", k.gvk.Kind, o.GetName(), err)
	}
	return k.convert(typed)
}

func (k watchedKind[T]) String() string {
	return k.gvk.Kind + "." + k.gvk.Version + "." + k.gvk.Group
}

// watchSyncLogAfter is how long an informer may take to sync before the
// operator says it waits (RBAC missing, a CRD that was deleted meanwhile).
const watchSyncLogAfter = 30 * time.Second

// kindWatcher discovers which of its kinds the API server serves, watches
// them, and holds their converted objects. It is a source of the
// NetworkPolicy controller's "re-translate everything" events: the
// controller starts it (only the leader watches) and waits, before its
// first reconcile, until the kinds served at start are read, so that no
// restart translates as if those objects were absent.
type kindWatcher[T any] struct {
	// what names the objects in logs and errors ("admin network
	// policies"); logName names the logger.
	what, logName string
	// compare orders the objects (nil: unordered).
	compare func(a, b *T) int
	// unreadable stands for an object that did not convert; nil leaves
	// it out.
	unreadable func(watchedKind[T], client.Object, error) T

	cfg        *rest.Config
	httpClient *http.Client
	scheme     *runtime.Scheme
	mapper     meta.RESTMapper
	// discover returns the preferred served version of each kind.
	discover func(context.Context) (map[string]watchedKind[T], error)
	period   time.Duration

	// rediscover asks the discovery loop for a round now.
	rediscover chan struct{}
	// changed says the objects changed: every translated NetworkPolicy is
	// enqueued.
	changed chan struct{}

	mu sync.Mutex
	// discovered: discovery has answered at least once.
	discovered bool
	// desired is the version of each kind to watch.
	desired map[string]watchedKind[T]
	// watches are the running informers, by group, version and kind.
	watches map[schema.GroupVersionKind]*kindWatch[T]
	// current is the synced watch whose objects count, by kind. When the
	// preferred version of a kind changes, the old one counts until the
	// new one has synced.
	current map[string]*kindWatch[T]

	// items is every object of the current watches, sorted.
	items atomic.Pointer[[]T]
}

// kindWatch is one informer of one kind and version.
type kindWatch[T any] struct {
	kind   watchedKind[T]
	cancel context.CancelFunc
	// items are the converted objects, by namespace/name (name for
	// cluster-scoped ones).
	items map[string]T
	ready bool
}

func newKindWatcher[T any](mgr ctrl.Manager, what, logName string, kinds []watchedKind[T], period time.Duration) (*kindWatcher[T], error) {
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, fmt.Errorf("%s: discovery client: %w", what, err)
	}
	return &kindWatcher[T]{
		what:       what,
		logName:    logName,
		cfg:        mgr.GetConfig(),
		httpClient: mgr.GetHTTPClient(),
		scheme:     mgr.GetScheme(),
		mapper:     mgr.GetRESTMapper(),
		discover:   func(ctx context.Context) (map[string]watchedKind[T], error) { return discoverKinds(ctx, dc, kinds) },
		period:     period,
		rediscover: make(chan struct{}, 1),
		changed:    make(chan struct{}, 1),
		watches:    map[schema.GroupVersionKind]*kindWatch[T]{},
		current:    map[string]*kindWatch[T]{},
	}, nil
}

// discoverKinds asks the API server which of kinds it serves, in which
// versions, and returns the preferred version of each served kind (kinds
// lists each kind's versions in order of preference). A group version
// that is not served answers 404; any other error is returned (the
// caller keeps what it watches).
func discoverKinds[T any](ctx context.Context, dc discovery.ServerResourcesInterfaceWithContext, kinds []watchedKind[T]) (map[string]watchedKind[T], error) {
	served := map[schema.GroupVersionResource]bool{}
	seen := map[schema.GroupVersion]bool{}
	for _, k := range kinds {
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
	out := map[string]watchedKind[T]{}
	for _, k := range kinds {
		if _, ok := out[k.gvk.Kind]; !ok && served[k.gvk.GroupVersion().WithResource(k.resource)] {
			out[k.gvk.Kind] = k
		}
	}
	return out, nil
}

// Items returns every object the watcher has read, sorted; the caller
// must not change them. Nil (no watcher) has none.
func (w *kindWatcher[T]) Items() []T {
	if w == nil {
		return nil
	}
	if p := w.items.Load(); p != nil {
		return *p
	}
	return nil
}

// String names the source in the controller's logs.
func (w *kindWatcher[T]) String() string { return w.what }

// start starts discovery and the watches; m maps a change of the objects
// to every translated NetworkPolicy, added to q. It returns at once.
func (w *kindWatcher[T]) start(ctx context.Context, m mapper, q queue) {
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
func (w *kindWatcher[T]) WaitForSync(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if w.synced() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not read: %w", w.what, ctx.Err())
		case <-t.C:
		}
	}
}

func (w *kindWatcher[T]) synced() bool {
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
func (w *kindWatcher[T]) run(ctx context.Context) {
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
// served is watched; a kind no longer served is stopped and its objects
// dropped at once; a kind whose preferred version changed keeps its old
// watch until the new one has synced. A discovery error changes nothing.
func (w *kindWatcher[T]) syncKinds(ctx context.Context) {
	log := ctrl.LoggerFrom(ctx).WithName(w.logName)
	desired, err := w.discover(ctx)
	if err != nil {
		log.Error(err, "discovering which kinds are served; keeping what is watched")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.desired, w.discovered = desired, true
	for _, k := range desired {
		if w.watches[k.gvk] == nil {
			if err := w.startLocked(ctx, k); err != nil {
				log.Error(err, "watching "+w.what, "kind", k.String())
			}
		}
	}
	changed := false
	for gvk, kw := range w.watches {
		want, served := desired[gvk.Kind]
		switch {
		case served && want.gvk == gvk:
			continue
		case served && w.current[gvk.Kind] == kw:
			// Another version is preferred now: this one counts until it
			// has synced (ready swaps them).
			continue
		}
		w.stopLocked(kw)
		if w.current[gvk.Kind] == kw {
			delete(w.current, gvk.Kind)
			changed = true
			log.Info("no longer served: its objects no longer count", "kind", kw.kind.String())
		}
	}
	if changed {
		w.rebuildLocked()
	}
}

// startLocked starts an informer for kind k, in a cache of its own.
func (w *kindWatcher[T]) startLocked(ctx context.Context, k watchedKind[T]) error {
	log := ctrl.LoggerFrom(ctx).WithName(w.logName).WithValues("kind", k.String())
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
	inf, err := c.GetInformer(wctx, k.object(), cache.BlockUntilSynced(false))
	if err != nil {
		cancel()
		return err
	}
	kw := &kindWatch[T]{kind: k, cancel: cancel, items: map[string]T{}}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.upsert(wctx, kw, obj) },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(client.Object)
			n, ok2 := newObj.(client.Object)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return // a resync: nothing changed
			}
			w.upsert(wctx, kw, newObj)
		},
		DeleteFunc: func(obj any) { w.remove(kw, obj) },
	})
	if err != nil {
		cancel()
		return err
	}
	w.watches[k.gvk] = kw
	log.Info("served: watching")
	go func() {
		if err := c.Start(wctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error(err, "informer stopped")
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
			if !logged && time.Since(started) > watchSyncLogAfter {
				logged = true
				log.Info("still waiting to read the "+w.what+": may the operator list and watch them (RBAC)?", "waited", time.Since(started).Round(time.Second).String())
			}
		}
		w.ready(ctx, kw)
	}()
	return nil
}

// ready makes a synced watch count, when its version is the preferred one,
// and stops the watch of the version it replaces.
func (w *kindWatcher[T]) ready(ctx context.Context, kw *kindWatch[T]) {
	w.mu.Lock()
	defer w.mu.Unlock()
	kw.ready = true
	kind := kw.kind.gvk.Kind
	if w.watches[kw.kind.gvk] != kw || w.desired[kind].gvk != kw.kind.gvk {
		return
	}
	if old := w.current[kind]; old != nil && old != kw {
		w.stopLocked(old)
	}
	w.current[kind] = kw
	ctrl.LoggerFrom(ctx).WithName(w.logName).Info("read", "kind", kw.kind.String(), "objects", len(kw.items))
	w.rebuildLocked()
}

func (w *kindWatcher[T]) stopLocked(kw *kindWatch[T]) {
	kw.cancel()
	if w.watches[kw.kind.gvk] == kw {
		delete(w.watches, kw.kind.gvk)
	}
}

// itemKey is the key of an object in a kindWatch's items.
func itemKey(o client.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// upsert records an added or updated object. One that does not convert
// is kept as w.unreadable says, or left out.
func (w *kindWatcher[T]) upsert(ctx context.Context, kw *kindWatch[T], obj any) {
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	item, err := kw.kind.read(o)
	if err != nil {
		ctrl.LoggerFrom(ctx).WithName(w.logName).Error(err, "converting", "kind", kw.kind.String(), "namespace", o.GetNamespace(), "name", o.GetName())
		if w.unreadable == nil {
			w.remove(kw, obj)
			return
		}
		item = w.unreadable(kw.kind, o, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	key := itemKey(o)
	if old, ok := kw.items[key]; ok && equality.Semantic.DeepEqual(old, item) {
		return // nothing the engine reads changed (a status heartbeat)
	}
	kw.items[key] = item
	if w.current[kw.kind.gvk.Kind] == kw {
		w.rebuildLocked()
	}
}

func (w *kindWatcher[T]) remove(kw *kindWatch[T], obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(kw.items, itemKey(o))
	if w.current[kw.kind.gvk.Kind] == kw {
		w.rebuildLocked()
	}
}

// rebuildLocked recomputes the objects of the current watches and says
// they changed.
func (w *kindWatcher[T]) rebuildLocked() {
	var out []T
	for _, kw := range w.current {
		for _, p := range kw.items {
			out = append(out, p)
		}
	}
	if w.compare != nil {
		slices.SortFunc(out, func(a, b T) int { return w.compare(&a, &b) })
	}
	w.items.Store(&out)
	select {
	case w.changed <- struct{}{}:
	default: // one pending signal covers this change too
	}
}

func (w *kindWatcher[T]) askRediscover() {
	select {
	case w.rediscover <- struct{}{}:
	default:
	}
}

// kindSource is a kindWatcher as a source of the NetworkPolicy
// controller: a change of its objects enqueues every translated
// NetworkPolicy, and the controller's first reconcile waits until the
// kinds served at start are read.
type kindSource[T any] struct {
	w *kindWatcher[T]
	m mapper
}

func (s kindSource[T]) Start(ctx context.Context, q queue) error {
	s.w.start(ctx, s.m, q)
	return nil
}

func (s kindSource[T]) WaitForSync(ctx context.Context) error { return s.w.WaitForSync(ctx) }

func (s kindSource[T]) String() string { return s.w.String() }
