package controllers

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

func fullPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1", Namespace: "shop", UID: "u1", ResourceVersion: "7",
			Labels:        map[string]string{"app": "web"},
			Annotations:   map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"],"volumes":["istio-envoy"]}`, "kubectl.kubernetes.io/restartedAt": "now"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			NodeName:           "node-1",
			InitContainers:     []corev1.Container{{Name: "istio-init", Image: "proxyv2", Args: []string{"-p", "15001"}}},
			Containers: []corev1.Container{
				{Name: "app", Image: "app:1", Env: []corev1.EnvVar{{Name: "X", Value: "y"}}, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
				{Name: "istio-proxy", Image: "proxyv2"},
			},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7", PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func cached(t *testing.T, p *corev1.Pod) *cachedPod {
	t.Helper()
	out, err := TransformPod(p)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*cachedPod)
}

// The pod cache keeps the engine's view of a pod, exactly as translate.PodOf
// (which the offline loader uses too) reads the full pod, and the metadata
// the informer and handlers need; nothing else (managedFields, other
// annotations, the spec and status beyond what the engine reads).
func TestTransformPodKeepsWhatTheEngineReads(t *testing.T) {
	in := fullPod()
	got := cached(t, in)
	want := &cachedPod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1", Namespace: "shop", UID: "u1", ResourceVersion: "7",
			Labels: map[string]string{"app": "web"},
		},
		Pod: translate.Pod{
			Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"}, ServiceAccount: "web",
			Phase: corev1.PodRunning, IP: netip.MustParseAddr("10.0.0.7"), Sidecar: true,
			Ports: []translate.ContainerPort{{Name: "http", Port: 8080}},
		},
	}
	addr := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	if diff := cmp.Diff(want, got, addr); diff != "" {
		t.Errorf("cached pod (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(translate.PodOf(in), got.Pod, addr); diff != "" {
		t.Errorf("the engine sees a different pod in the cache (-full,+cached):\n%s", diff)
	}
	if got.Pod.Labels == nil || reflect.ValueOf(got.Labels).UnsafePointer() != reflect.ValueOf(got.Pod.Labels).UnsafePointer() {
		t.Error("the cached pod's labels are not its metadata's (one map for both)")
	}
	// A sidecar known only by its container counts, and none is invented.
	in = fullPod()
	delete(in.Annotations, "sidecar.istio.io/status")
	if !cached(t, in).Pod.Sidecar {
		t.Error("the transform lost a sidecar known by its istio-proxy container")
	}
	in.Spec.Containers = in.Spec.Containers[:1]
	if cached(t, in).Pod.Sidecar {
		t.Error("the transform invented a sidecar")
	}
	// A copy does not share what a later change could touch.
	c := got.DeepCopyObject().(*cachedPod)
	c.Labels["app"] = "changed"
	if got.Labels["app"] != "web" || c.Pod.Labels["app"] != "changed" {
		t.Errorf("DeepCopyObject: original labels %v, copy's engine labels %v", got.Labels, c.Pod.Labels)
	}
	// Anything else passes through.
	if out, _ := TransformPod("tombstone"); out != "tombstone" {
		t.Errorf("TransformPod(tombstone) = %v", out)
	}
}

func TestPodChanged(t *testing.T) {
	tests := map[string]struct {
		change func(*corev1.Pod)
		want   bool
	}{
		"status heartbeat":     {func(p *corev1.Pod) { p.Status.Conditions[0].LastProbeTime = metav1.Now() }, false},
		"unrelated annotation": {func(p *corev1.Pod) { p.Annotations["kubectl.kubernetes.io/restartedAt"] = "later" }, false},
		"resourceVersion only": {func(p *corev1.Pod) { p.ResourceVersion = "8" }, false},
		"labels":               {func(p *corev1.Pod) { p.Labels["app"] = "api" }, true},
		"phase":                {func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }, true},
		"pod IP":               {func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.8" }, true},
		"hostNetwork":          {func(p *corev1.Pod) { p.Spec.HostNetwork = true }, true},
		"sidecar annotation gone": {func(p *corev1.Pod) {
			delete(p.Annotations, "sidecar.istio.io/status")
			p.Spec.Containers = p.Spec.Containers[:1]
		}, true},
		"container port": {func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 8081 }, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			oldPod, newPod := fullPod(), fullPod()
			tc.change(newPod)
			if got := podChanged().Update(event.UpdateEvent{ObjectOld: cached(t, oldPod), ObjectNew: cached(t, newPod)}); got != tc.want {
				t.Errorf("PodChanged = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPodOfInitContainerPorts: the operator resolves named ports on the
// same containers as the offline loader (translate.ContainerPortsOf): its
// containers and native sidecars, not init containers that have exited,
// also in the pod cache.
func TestPodOfInitContainerPorts(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "migrate", Ports: []corev1.ContainerPort{{Name: "setup", ContainerPort: 9000}}},
			{Name: "proxy", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15001}}},
		},
		Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
	}}
	want := []translate.ContainerPort{{Name: "http", Port: 8080}, {Name: "proxy", Port: 15001}}
	if diff := cmp.Diff(want, cached(t, p).Pod.Ports); diff != "" {
		t.Errorf("cached ports (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(translate.ContainerPortsOf(&p.Spec), translate.PodOf(p).Ports); diff != "" {
		t.Errorf("the operator and the offline loader disagree (-loader,+operator):\n%s", diff)
	}
}
