package istio_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

// statusNamespace creates a namespace opted in with mode, ambient or with
// sidecars, holding a database pod and a client, and a NetworkPolicy
// letting the client reach the database.
func statusNamespace(mode string, ambient bool) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "istio-status-", Annotations: map[string]string{"netpol2authz.io/mode": mode}}}
	if ambient {
		ns.Labels = map[string]string{"istio.io/dataplane-mode": "ambient"}
	}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	for i, p := range []struct{ name, app, sa string }{{"db-0", "db", "db"}, {"api-0", "api", "api"}} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns.Name, Labels: map[string]string{"app": p.app}},
			Spec:       corev1.PodSpec{ServiceAccountName: p.sa, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
		if ambient {
			pod.Annotations = map[string]string{"ambient.istio.io/redirection": "enabled"}
		} else {
			pod.Annotations = map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"]}`}
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.29.0"})
		}
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		ip := "10.77." + string(rune('0'+len(ns.Name)%10)) + "." + string(rune('1'+i))
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		Expect(k8s.Status().Update(ctx, pod)).To(Succeed())
	}
	port := intstr.FromInt32(5432)
	Expect(k8s.Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns.Name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
			}},
		},
	})).To(Succeed())
	return ns.Name
}

func translationStatus(ns, name string) func() (policyv1alpha1.NetworkPolicyTranslationStatus, error) {
	return func() (policyv1alpha1.NetworkPolicyTranslationStatus, error) {
		npt := &policyv1alpha1.NetworkPolicyTranslation{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, npt)
		return npt.Status, err
	}
}

func haveCondition(t string, status metav1.ConditionStatus, reason string) types.GomegaMatcher {
	return HaveField("Conditions", ContainElement(And(HaveField("Type", t), HaveField("Status", status), HaveField("Reason", reason))))
}

var _ = Describe("What istiod says, in the NetworkPolicyTranslation", func() {
	It("is Accepted when istiod attached every policy to ztunnel", func() {
		ns := statusNamespace("enforce", true)
		Eventually(translationStatus(ns, "db"), compiledWithin, interval).Should(And(
			haveCondition("IstioAccepted", metav1.ConditionTrue, "Accepted"),
			HaveField("Conditions", ContainElement(HaveField("Message", ContainSubstring("ZtunnelAccepted")))),
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
		))
		By("istiod's status writes make the operator write nothing more")
		npt := &policyv1alpha1.NetworkPolicyTranslation{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, npt)).To(Succeed())
		Consistently(func() (string, error) {
			got := &policyv1alpha1.NetworkPolicyTranslation{}
			err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, got)
			return got.ResourceVersion, err
		}, "3s", interval).Should(Equal(npt.ResourceVersion))
	})

	It("is not Ready when istiod does not accept a dry-run policy in ambient", func() {
		ns := statusNamespace("dry-run", true)
		Eventually(translationStatus(ns, "db"), compiledWithin, interval).Should(And(
			haveCondition("IstioAccepted", metav1.ConditionFalse, "UnsupportedValue"),
			haveCondition("Ready", metav1.ConditionFalse, "IstioNotAccepted"),
			HaveField("Findings", ContainElement(HaveField("Type", "DryRunNotEvaluated"))),
		))
	})

	It("takes istiod's verdict in a sidecar namespace, but not ztunnel's refusal of dry-run", func() {
		// istiod (with ambient on) writes ZtunnelAccepted on every policy:
		// True says it took the policy in; False for a dry-run one speaks
		// of ztunnel, not of sidecars, which evaluate it as shadow rules.
		ns := statusNamespace("enforce", false)
		Eventually(translationStatus(ns, "db"), compiledWithin, interval).Should(And(
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
			haveCondition("IstioAccepted", metav1.ConditionTrue, "Accepted"),
		))
		ns = statusNamespace("dry-run", false)
		Eventually(translationStatus(ns, "db"), compiledWithin, interval).Should(And(
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
			haveCondition("IstioAccepted", metav1.ConditionUnknown, "NoStatus"),
			HaveField("Conditions", ContainElement(HaveField("Message", ContainSubstring("speaks of ztunnel only")))),
		))
	})
})
