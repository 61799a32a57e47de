package controllers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// cachedPod is all the operator keeps of a pod: the engine's view of it,
// converted once when the pod arrives, and the few fields of metadata its
// informer and event handlers need. It is a client.Object so that
// controller-runtime's sources and predicates can carry it, but it is never
// sent to the API server. Holding it rather than a cut-down *corev1.Pod
// (whose struct alone is 1.2 KB) keeps the pod cache near a third of the
// size, and a reconcile reads pods without converting or copying them.
type cachedPod struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	// Pod is the engine's view; its Labels map is ObjectMeta.Labels.
	Pod translate.Pod
}

var _ client.Object = (*cachedPod)(nil)

// DeepCopyObject copies what cachedPod holds. The store never changes a
// cachedPod in place (a new state of the pod is a new cachedPod), so
// readers share them without copying.
func (p *cachedPod) DeepCopyObject() runtime.Object {
	out := &cachedPod{TypeMeta: p.TypeMeta, Pod: p.Pod}
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Pod.Labels = out.Labels
	out.Pod.Ports = slices.Clone(p.Pod.Ports)
	return out
}

// interned returns the one copy of s shared by every pod: label keys and
// values, ServiceAccount and port names repeat across the replicas of a
// workload, so each pod holding its own copy would waste memory.
func interned(s string) string { return unique.Make(s).Value() }

// toCachedPod is the pod informer's transform: it turns a *corev1.Pod into
// a *cachedPod. Anything else (a tombstone) passes through.
func toCachedPod(in any) (any, error) {
	p, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	labels := make(map[string]string, len(p.Labels))
	for k, v := range p.Labels {
		labels[interned(k)] = interned(v)
	}
	ep := translate.PodOf(p)
	ep.Namespace, ep.Name = interned(p.Namespace), p.Name
	ep.Labels = labels
	ep.ServiceAccount = interned(ep.ServiceAccount)
	for i := range ep.Ports {
		ep.Ports[i].Name = interned(ep.Ports[i].Name)
	}
	return &cachedPod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              p.Name,
			Namespace:         ep.Namespace,
			UID:               p.UID,
			ResourceVersion:   p.ResourceVersion,
			DeletionTimestamp: p.DeletionTimestamp,
			Labels:            labels,
		},
		Pod: ep,
	}, nil
}

// Indexes of the pod store.
const (
	podsByNamespace      = toolscache.NamespaceIndex
	podsByServiceAccount = "serviceaccount"
)

func serviceAccountKey(namespace, serviceAccount string) string {
	return namespace + "/" + cmp.Or(serviceAccount, "default")
}

// podStore is the operator's pod cache: a shared informer of its own whose
// transform keeps a cachedPod per pod, indexed by namespace and by
// ServiceAccount. It starts with the manager, on every replica (a standby
// replica that takes over has its cache warm), before the controllers.
type podStore struct {
	informer toolscache.SharedIndexInformer
}

// newPodStore makes the pod store on the API server of cfg. Pods are read
// as protobuf, the cheapest encoding to decode.
func newPodStore(cfg *rest.Config) (*podStore, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("making the pod store's client: %w", err)
	}
	lw := toolscache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "pods", corev1.NamespaceAll, fields.Everything())
	return newPodStoreFrom(lw), nil
}

func newPodStoreFrom(lw toolscache.ListerWatcher) *podStore {
	inf := toolscache.NewSharedIndexInformerWithOptions(lw, &corev1.Pod{}, toolscache.SharedIndexInformerOptions{
		Indexers: toolscache.Indexers{
			podsByNamespace: toolscache.MetaNamespaceIndexFunc,
			podsByServiceAccount: func(obj any) ([]string, error) {
				p, ok := obj.(*cachedPod)
				if !ok {
					return nil, nil
				}
				return []string{serviceAccountKey(p.Namespace, p.Pod.ServiceAccount)}, nil
			},
		},
	})
	if err := inf.SetTransform(toCachedPod); err != nil {
		panic(err) // only fails once the informer runs
	}
	return &podStore{informer: inf}
}

// Start runs the informer until ctx is done (a manager.Runnable).
func (s *podStore) Start(ctx context.Context) error {
	s.informer.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection is false: every replica keeps its pod cache warm.
func (s *podStore) NeedLeaderElection() bool { return false }

// byIndex returns the pods of one index key; a cachedPod is never changed
// in place, so they are shared, not copied.
func (s *podStore) byIndex(index, key string) ([]*cachedPod, error) {
	objs, err := s.informer.GetIndexer().ByIndex(index, key)
	if err != nil {
		return nil, err
	}
	out := make([]*cachedPod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*cachedPod); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// inNamespace returns the engine's view of the pods of namespace ns.
func (s *podStore) inNamespace(ns string) ([]translate.Pod, error) {
	return s.engineView(podsByNamespace, ns)
}

// ofServiceAccount returns the pods of a namespace's ServiceAccount.
func (s *podStore) ofServiceAccount(ns, serviceAccount string) ([]translate.Pod, error) {
	return s.engineView(podsByServiceAccount, serviceAccountKey(ns, serviceAccount))
}

// engineView returns the engine's view of the pods of one index key.
func (s *podStore) engineView(index, key string) ([]translate.Pod, error) {
	pods, err := s.byIndex(index, key)
	if err != nil {
		return nil, err
	}
	out := make([]translate.Pod, len(pods))
	for i, p := range pods {
		out[i] = p.Pod
	}
	return out, nil
}

// podSource is the controller's watch of the pod store: a
// controller-runtime informer source that the controller also waits for
// before it starts its workers, so no reconcile sees a partial list of pods
// (fewer principals would deny traffic the NetworkPolicies allow).
type podSource struct {
	*source.Informer
	store *podStore
}

// WaitForSync waits until the store has listed every pod.
func (s podSource) WaitForSync(ctx context.Context) error {
	if !toolscache.WaitForCacheSync(ctx.Done(), s.store.informer.HasSynced) {
		return fmt.Errorf("the pod store did not sync: %w", ctx.Err())
	}
	return nil
}

// source is the watch of the store through h, filtered by predicates.
func (s *podStore) source(h handler.EventHandler, predicates ...predicate.Predicate) source.SyncingSource {
	return podSource{Informer: &source.Informer{Informer: s.informer, Handler: h, Predicates: predicates}, store: s}
}

// cachedPodDiffers says whether two states of a pod differ in anything the
// engine reads.
func cachedPodDiffers(a, b *cachedPod) bool {
	x, y := a.Pod, b.Pod
	return !maps.Equal(x.Labels, y.Labels) || x.ServiceAccount != y.ServiceAccount || x.Phase != y.Phase ||
		x.IP != y.IP || x.HostNetwork != y.HostNetwork || x.Sidecar != y.Sidecar || !slices.Equal(x.Ports, y.Ports)
}
