package controllers_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// Fixtures for the user stories: pods, NetworkPolicies, namespaces.

var lastIP atomic.Int32

// nextIP hands every pod of the suite its own address.
func nextIP() string {
	n := lastIP.Add(1)
	return fmt.Sprintf("10.%d.%d.%d", n/65536%256, n/256%256, n%256)
}

type podOption func(*corev1.Pod)

// withoutSidecar makes a pod outside the mesh.
func withoutSidecar(p *corev1.Pod) { p.Spec.Containers = p.Spec.Containers[:1] }

// newPod creates a running pod with an istio-proxy sidecar, as envtest
// never runs one: phase and IP are written through the status subresource.
// translatedDB makes an enforced namespace in identity mode follow with
// pods db-0, api-0 and batch-0, each of its own ServiceAccount, and the
// NetworkPolicy db letting app=api reach app=db on 5432, and waits until it
// is translated. It returns the namespace and batch-0, whose relabel to
// app=api changes the translation at once.
func translatedDB(prefix string) (string, *corev1.Pod) {
	ns := optedInNamespace(prefix, "enforce")
	setIdentity(ns, "follow")
	newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
	newPod(ns, "api-0", map[string]string{"app": "api"}, "api")
	batch := newPod(ns, "batch-0", map[string]string{"app": "batch"}, "batch")
	newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
	Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
	return ns, batch
}

func newPod(ns, name string, labels map[string]string, sa string, opts ...podOption) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
				{Name: "istio-proxy", Image: "istio/proxyv2:1.29.0"},
			},
		},
	}
	for _, o := range opts {
		o(p)
	}
	Expect(k8s.Create(ctx, p)).To(Succeed())
	ip := nextIP()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	Expect(k8s.Status().Update(ctx, p)).To(Succeed())
	return p
}

// relabel replaces the labels of a pod or namespace.
func relabel(obj client.Object, labels map[string]string) {
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	obj.SetLabels(labels)
	Expect(k8s.Update(ctx, obj)).To(Succeed())
}

// annotateNamespace sets (value non-nil) or removes (nil) annotations.
func annotateNamespace(name string, annotations map[string]*string) {
	ns := &corev1.Namespace{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
	if ns.Annotations == nil {
		ns.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		if v == nil {
			delete(ns.Annotations, k)
		} else {
			ns.Annotations[k] = *v
		}
	}
	Expect(k8s.Update(ctx, ns)).To(Succeed())
}

const (
	modeKey     = "netpol2authz.io/mode"
	fidelityKey = "netpol2authz.io/fidelity"
)

// optIn sets the namespace's mode annotation.
func optIn(ns, mode string) { annotateNamespace(ns, map[string]*string{modeKey: &mode}) }

// identityKey chooses review (the default) or follow.
const identityKey = "netpol2authz.io/identity"

// setIdentity sets the namespace's identity mode.
func setIdentity(ns, mode string) { annotateNamespace(ns, map[string]*string{identityKey: &mode}) }

// optedInNamespace is a spec's own namespace, opted in with mode.
func optedInNamespace(prefix, mode string) string {
	ns := newNamespace(prefix)
	optIn(ns, mode)
	return ns
}

// peerPods is a peer selecting pods of the policy's namespace by labels.
func peerPods(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

// peerPodsIn is a peer selecting pods by labels in the namespaces
// matching nsLabels.
func peerPodsIn(nsLabels, labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
		PodSelector:       &metav1.LabelSelector{MatchLabels: labels},
	}
}

// newAllowPolicy creates an ingress NetworkPolicy: pods with target labels
// accept TCP port from the peers.
func newAllowPolicy(ns, name string, target map[string]string, port int32, peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	p := intstr.FromInt32(port)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: target},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  peers,
				Ports: []networkingv1.NetworkPolicyPort{{Port: &p}},
			}},
		},
	}
	Expect(k8s.Create(ctx, np)).To(Succeed())
	return np
}

// principal is the identity of a ServiceAccount in the default trust domain.
func principal(ns, sa string) string { return "cluster.local/ns/" + ns + "/sa/" + sa }

// authzPolicy returns a function reading an AuthorizationPolicy, for
// Eventually.
func authzPolicy(ns, name string) func() (*securityv1.AuthorizationPolicy, error) {
	return func() (*securityv1.AuthorizationPolicy, error) {
		ap := &securityv1.AuthorizationPolicy{}
		return ap, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ap)
	}
}

// principalsOf returns a function reading the sorted principals of an
// AuthorizationPolicy.
func principalsOf(ns, name string) func() ([]string, error) {
	return func() ([]string, error) {
		ap, err := authzPolicy(ns, name)()
		if err != nil {
			return nil, err
		}
		return principals(ap), nil
	}
}

// portsOf returns a function reading the ports of an AuthorizationPolicy's
// rules, in order.
func portsOf(ns, name string) func() ([]string, error) {
	return func() ([]string, error) {
		ap, err := authzPolicy(ns, name)()
		if err != nil {
			return nil, err
		}
		var ports []string
		for _, r := range ap.Spec.Rules {
			for _, to := range r.To {
				ports = append(ports, to.Operation.Ports...)
			}
		}
		return ports, nil
	}
}

func principals(ap *securityv1.AuthorizationPolicy) []string {
	out := []string{}
	for _, r := range ap.Spec.Rules {
		for _, f := range r.From {
			out = append(out, f.Source.Principals...)
		}
	}
	slices.Sort(out)
	return out
}

// translationStatus returns a function reading the status of a
// NetworkPolicyTranslation.
func translationStatus(ns, name string) func() (policyv1alpha1.NetworkPolicyTranslationStatus, error) {
	return func() (policyv1alpha1.NetworkPolicyTranslationStatus, error) {
		npt := &policyv1alpha1.NetworkPolicyTranslation{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, npt)
		return npt.Status, err
	}
}

// exists returns a function reporting whether obj exists, for Eventually
// and Consistently.
func exists(obj client.Object) func() bool {
	return func() bool {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		return err == nil
	}
}

func apKey(ns, name string) client.Object {
	return &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func nptKey(ns, name string) client.Object {
	return &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// haveCondition matches a status holding a condition of that type, status
// and reason.
func haveCondition(t string, status metav1.ConditionStatus, reason string) types.GomegaMatcher {
	return HaveField("Conditions", ContainElement(And(
		HaveField("Type", t), HaveField("Status", status), HaveField("Reason", reason))))
}

// findingTypes matches a status whose findings have exactly these types
// (each listed once, whatever their count).
func haveFindingTypes(want ...string) types.GomegaMatcher {
	return WithTransform(func(st policyv1alpha1.NetworkPolicyTranslationStatus) []string {
		var out []string
		for _, f := range st.Findings {
			if !slices.Contains(out, f.Type) {
				out = append(out, f.Type)
			}
		}
		return out
	}, ConsistOf(want))
}

// eventReasons returns a function listing the reasons of the events about
// an object: kind and name, in eventNS (the object's namespace, or
// "default" for a namespace).
func eventReasons(eventNS, kind, name string) func() ([]string, error) {
	return func() ([]string, error) {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(eventNS)); err != nil {
			return nil, err
		}
		out := []string{}
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name {
				out = append(out, e.Type+"/"+e.Reason)
			}
		}
		slices.Sort(out)
		return out, nil
	}
}

// installCRDs makes the API server serve the CRDs crds lists (from the
// repository root) until uninstallCRDs, or the spec's end; probe is a list
// of one of their kinds.
func installCRDs(crds func(root string) ([]string, error), probe client.ObjectList) envtest.CRDInstallOptions {
	root, err := testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	paths, err := crds(root)
	Expect(err).NotTo(HaveOccurred())
	// envtest waits 10 s by default for the CRDs to be served: too short on a
	// loaded machine running the other suites too.
	opts := envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true, MaxTime: timeout}
	_, err = envtest.InstallCRDs(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { uninstallCRDs(opts, probe) })
	return opts
}

// uninstallCRDs deletes the CRDs and waits until every one of them is gone
// and the API server no longer serves probe's kind. A CRD being deleted
// stays while the API server deletes its objects, and one installed again
// in that window is deleted with it.
func uninstallCRDs(opts envtest.CRDInstallOptions, probe client.ObjectList) {
	read := opts
	Expect(envtest.ReadCRDFiles(&read)).To(Succeed())
	// The API server lists a deleted CRD's objects from its watch cache
	// before it lets the CRD go, and retries with a growing backoff while
	// that cache is (re)initializing: wait until each kind lists.
	for _, crd := range read.CRDs {
		i := slices.IndexFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return v.Storage })
		Expect(i).NotTo(Equal(-1), "CRD %s has a storage version", crd.Name)
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: crd.Spec.Group, Version: crd.Spec.Versions[i].Name, Kind: crd.Spec.Names.ListKind})
		Eventually(func() error {
			if err := k8s.List(ctx, list); err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
				return err
			}
			return nil // listed, or not served (then gone, or never established)
		}, timeout, interval).Should(Succeed(), "the objects of CRD %s list before it is deleted", crd.Name)
	}
	Expect(envtest.UninstallCRDs(cfg, opts)).To(Succeed())
	for _, crd := range read.CRDs {
		Eventually(func() error {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			if err := k8s.Get(ctx, client.ObjectKey{Name: crd.Name}, u); err != nil {
				return err
			}
			conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			return fmt.Errorf("still there: finalizers %v, conditions %v", u.GetFinalizers(), conditions)
		}, crdCleanupTimeout, interval).Should(Satisfy(apierrors.IsNotFound), "CRD %s is gone", crd.Name)
	}
	Eventually(func() bool {
		err := k8s.List(ctx, probe.DeepCopyObject().(client.ObjectList))
		return err != nil && !apierrors.IsTooManyRequests(err)
	}, timeout, interval).Should(BeTrue(), "the CRDs are no longer served")
}

// crdCleanupTimeout bounds the API server's cleanup of a deleted CRD,
// which backs off when its objects' storage is not ready.
const crdCleanupTimeout = 2 * time.Minute
