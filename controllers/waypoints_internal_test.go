package controllers

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// gatewaysWith is a gateway watcher that holds gateways, as its informers
// would have read them.
func gatewaysWith(gws ...translate.Gateway) *gatewayWatcher {
	w := &gatewayWatcher{}
	w.items.Store(&gws)
	return w
}

func requestNames(reqs []reconcile.Request) []string {
	out := sets.New[string]()
	for _, r := range reqs {
		out.Insert(r.String())
	}
	return sets.List(out)
}

func service(namespace, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: corev1.ServiceSpec{Selector: selector,
		Ports: []corev1.ServicePort{{Name: "pg", Port: 5432, TargetPort: intstr.FromString("pg"), Protocol: corev1.ProtocolTCP}}}}
}

// A Service maps to the NetworkPolicies of its namespace, opted in only.
func TestServiceRequests(t *testing.T) {
	m := mapper{Client: fakeCache(t, mappingCluster()...), Pods: podStoreOf(t, mappingCluster()...)}
	for name, tc := range map[string]struct {
		svc  *corev1.Service
		want []string
	}{
		"in an opted-in namespace": {service("shop", "db", map[string]string{"app": "db"}), keys("shop/db", "shop/web", "shop/metrics")},
		"without selector":         {service("other", "ext", nil), keys("other/cache", "other/lonely")},
		"not opted in":             {service("off", "db", nil), []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			got := requestNames(m.ServiceRequests(context.Background(), tc.svc))
			if diff := cmp.Diff(tc.want, append([]string{}, got...)); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}

// While a Gateway exists, a NetworkPolicy created, deleted or whose
// isolation changes maps to the other translated NetworkPolicies of its
// namespace; without one, to none.
func TestSiblingRequests(t *testing.T) {
	c := fakeCache(t, mappingCluster()...)
	changed := policy("shop", "new", metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}})
	m := mapper{Client: c, Pods: podStoreOf(t, mappingCluster()...)}
	if got := m.SiblingRequests(context.Background(), changed); len(got) != 0 {
		t.Errorf("without a Gateway: %v, want none", got)
	}
	m.Gateways = gatewaysWith(translate.Gateway{Namespace: "mesh", Name: "waypoint", ClassName: translate.WaypointClass})
	if diff := cmp.Diff(keys("shop/db", "shop/web", "shop/metrics"), requestNames(m.SiblingRequests(context.Background(), changed))); diff != "" {
		t.Errorf("with a Gateway (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(keys("shop/web", "shop/metrics"), requestNames(m.SiblingRequests(context.Background(), policy("shop", "db", metav1.LabelSelector{})))); diff != "" {
		t.Errorf("itself left out (-want,+got):\n%s", diff)
	}
	if got := m.SiblingRequests(context.Background(), policy("off", "x", metav1.LabelSelector{})); len(got) != 0 {
		t.Errorf("a namespace not opted in: %v, want none", got)
	}
}

// A pod of a Gateway's namespace (the waypoint's) matters to every
// translated NetworkPolicy, and every pod of a NetworkPolicy's own
// namespace does.
func TestPodPoliciesWithGateways(t *testing.T) {
	c, pods := fakeCache(t, mappingCluster()...), podStoreOf(t, mappingCluster()...)
	m := mapper{Client: c, Pods: pods}
	waypointPod := cached(t, pod("off", "waypoint-0", "waypoint", map[string]string{translate.LabelGatewayName: "waypoint"}))
	unrelated := cached(t, pod("shop", "tools-0", "tools", map[string]string{"app": "tools"}))
	if got := names(m.podPolicies(context.Background(), waypointPod)); len(got) != 0 {
		t.Errorf("without a Gateway, a pod of off matters to %v", got)
	}
	before := names(m.podPolicies(context.Background(), unrelated))
	m.Gateways = gatewaysWith(translate.Gateway{Namespace: "off", Name: "waypoint", ClassName: translate.WaypointClass})
	if diff := cmp.Diff(keys("shop/db", "shop/web", "shop/metrics", "other/cache", "other/lonely"), names(m.podPolicies(context.Background(), waypointPod))); diff != "" {
		t.Errorf("a waypoint's pod (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(keys("shop/db", "shop/web", "shop/metrics"), names(m.podPolicies(context.Background(), unrelated))); diff != "" {
		t.Errorf("a pod of the policies' namespace, before %v (-want,+got):\n%s", before, diff)
	}
}

// The Service cache keeps what the engine reads, and the predicate passes
// only changes of it.
func TestTransformService(t *testing.T) {
	svc := service("shop", "db", map[string]string{"app": "db"})
	svc.Labels = map[string]string{translate.LabelUseWaypoint: "waypoint"}
	svc.Annotations = map[string]string{"big": "annotation"}
	svc.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	svc.Spec.ClusterIP, svc.Spec.Ports[0].NodePort = "10.0.0.7", 30000
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}
	out, err := transformService(svc.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Service)
	if diff := cmp.Diff(translate.ServiceOf(svc), translate.ServiceOf(got)); diff != "" {
		t.Errorf("what the engine reads changed (-want,+got):\n%s", diff)
	}
	if got.Annotations != nil || got.ManagedFields != nil || got.Spec.ClusterIP != "" || got.Spec.Ports[0].NodePort != 0 || len(got.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("kept more than the engine reads: %+v", got)
	}
	again, _ := transformService(got)
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("not idempotent (-once,+twice):\n%s", diff)
	}

	p := serviceChanged()
	other := got.DeepCopy()
	other.ResourceVersion = "2"
	if p.Update(event.UpdateEvent{ObjectOld: got, ObjectNew: other}) {
		t.Error("an update that changes nothing the engine reads passes")
	}
	other.Labels = nil
	if !p.Update(event.UpdateEvent{ObjectOld: got, ObjectNew: other}) {
		t.Error("the use-waypoint label removed does not pass")
	}
	other = got.DeepCopy()
	other.Spec.Ports[0].TargetPort = intstr.FromInt32(5433)
	if !p.Update(event.UpdateEvent{ObjectOld: got, ObjectNew: other}) {
		t.Error("a target port changed does not pass")
	}
}

// What a sibling NetworkPolicy changes for a translation: its podSelector
// and policyTypes (whom it isolates), and its ingress rules (where it lets
// a waypoint in), not its egress rules.
func TestIsolationChanged(t *testing.T) {
	p := isolationChanged()
	a := policy("shop", "db", metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}})
	b := a.DeepCopy()
	b.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	if p.Update(event.UpdateEvent{ObjectOld: a, ObjectNew: b}) {
		t.Error("a change of the egress rules passes")
	}
	b.Spec.Ingress = nil
	if !p.Update(event.UpdateEvent{ObjectOld: a, ObjectNew: b}) {
		t.Error("a change of the ingress rules does not pass (their ports say where the waypoint is let in)")
	}
	b = a.DeepCopy()
	b.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	if !p.Update(event.UpdateEvent{ObjectOld: a, ObjectNew: b}) {
		t.Error("a change of policyTypes does not pass")
	}
	b = a.DeepCopy()
	b.Spec.PodSelector.MatchLabels["app"] = "cache"
	if !p.Update(event.UpdateEvent{ObjectOld: a, ObjectNew: b}) {
		t.Error("a change of the podSelector does not pass")
	}
}

// Gathering reads the Services of the policy's namespace, the Gateways,
// and, with Gateways, the other NetworkPolicies of the namespace.
func TestGatherWaypoints(t *testing.T) {
	objs := append(mappingCluster(), service("shop", "db", map[string]string{"app": "db"}), service("other", "cache", nil))
	c := fakeCache(t, objs...)
	np := &networkingv1.NetworkPolicy{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "db"}, np); err != nil {
		t.Fatal(err)
	}
	in := &input{}
	if err := gatherWaypoints(context.Background(), c, np, nil, in); err != nil {
		t.Fatal(err)
	}
	if len(in.Snapshot.Services) != 1 || in.Snapshot.Services[0].Name != "db" || len(in.Snapshot.OtherPolicies) != 0 {
		t.Errorf("without Gateways: services %v, other policies %d", in.Snapshot.Services, len(in.Snapshot.OtherPolicies))
	}
	gws := []translate.Gateway{{Namespace: "mesh", Name: "waypoint"}}
	in = &input{}
	if err := gatherWaypoints(context.Background(), c, np, gws, in); err != nil {
		t.Fatal(err)
	}
	var others []string
	for _, o := range in.Snapshot.OtherPolicies {
		others = append(others, o.Namespace+"/"+o.Name)
	}
	if diff := cmp.Diff([]string{"shop/metrics", "shop/web"}, others); diff != "" {
		t.Errorf("other policies (-want,+got):\n%s", diff)
	}
	if len(in.Snapshot.Gateways) != 1 {
		t.Errorf("gateways %v", in.Snapshot.Gateways)
	}
	deps := dependentNamespaces(np, watched{Gateways: gws}, []corev1.Namespace{*ns("shop", nil), *ns("mesh", nil), *ns("off", nil)})
	if diff := cmp.Diff([]string{"mesh", "shop"}, sets.List(deps)); diff != "" {
		t.Errorf("namespaces whose pods are read (-want,+got):\n%s", diff)
	}
}
