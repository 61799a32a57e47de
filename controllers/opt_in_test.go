package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityapi "istio.io/api/security/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

var _ = Describe("A team opting its namespace in", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace("optin")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "api")
		newPod(ns, "web-0", map[string]string{"app": "web"}, "web")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
	})

	It("gets nothing until it opts in, then the policy with the right principals", func() {
		Consistently(exists(apKey(ns, "netpol-db")), consistentlyFor, interval).Should(BeFalse())
		Expect(exists(nptKey(ns, "db"))()).To(BeFalse())

		optIn(ns, "enforce")

		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(And(
			HaveField("Labels", HaveKeyWithValue("app.kubernetes.io/managed-by", "netpol2authz")),
			HaveField("Labels", HaveKeyWithValue("netpol2authz.io/networkpolicy", "db")),
			HaveField("Annotations", Not(HaveKey("istio.io/dry-run"))),
			HaveField("OwnerReferences", ConsistOf(And(
				HaveField("Kind", "NetworkPolicy"), HaveField("Name", "db"), HaveField("Controller", HaveValue(BeTrue()))))),
			HaveField("Spec.Action", securityapi.AuthorizationPolicy_ALLOW),
			HaveField("Spec.Selector.MatchLabels", Equal(map[string]string{"app": "db"})),
		))
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{principal(ns, "api")}))
		ap, _ := authzPolicy(ns, "netpol-db")()
		Expect(ap.Spec.Rules[0].To[0].Operation.Ports).To(Equal([]string{"5432"}))

		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			HaveField("Mode", policyv1alpha1.Mode("enforce")),
			HaveField("Fidelity", policyv1alpha1.Fidelity("permissive")),
			HaveField("ObservedGeneration", BeEquivalentTo(1)),
			HaveField("AuthorizationPolicies", Equal([]string{"netpol-db"})),
			HaveField("Principals", BeEquivalentTo(1)),
			HaveField("Rules", BeEquivalentTo(1)),
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
			haveCondition("Exact", metav1.ConditionTrue, "Exact"),
		))
	})

	It("marks policies dry-run, and enforces them when switched to enforce", func() {
		optIn(ns, "dry-run")
		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(
			HaveField("Annotations", HaveKeyWithValue("istio.io/dry-run", "true")))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(HaveField("Mode", policyv1alpha1.Mode("dry-run")))

		optIn(ns, "enforce")
		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(
			HaveField("Annotations", Not(HaveKey("istio.io/dry-run"))))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(HaveField("Mode", policyv1alpha1.Mode("enforce")))
	})

	It("loses what was generated when it opts out", func() {
		optIn(ns, "enforce")
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeTrue())
		Eventually(exists(nptKey(ns, "db")), timeout, interval).Should(BeTrue())

		annotateNamespace(ns, map[string]*string{modeKey: nil})

		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeFalse())
		Eventually(exists(nptKey(ns, "db")), timeout, interval).Should(BeFalse())
	})

	It("gets strict translations with the strict fidelity", func() {
		strict := "strict"
		annotateNamespace(ns, map[string]*string{fidelityKey: &strict})
		optIn(ns, "enforce")
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			HaveField("Fidelity", policyv1alpha1.Fidelity("strict")),
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
		))
	})

	It("is told when its annotation is invalid, and keeps what was generated", func() {
		setIdentity(ns, "follow") // the new ServiceAccount below is written without review
		optIn(ns, "enforce")
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
		before, _ := authzPolicy(ns, "netpol-db")()

		optIn(ns, "audit")

		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveCondition("Ready", metav1.ConditionFalse, "InvalidAnnotation"),
			haveFindingTypes("InvalidAnnotation"),
			HaveField("AuthorizationPolicies", Equal([]string{"netpol-db"})), // still in force
		))
		Eventually(eventReasons("default", "Namespace", ns), timeout, interval).Should(ConsistOf("Warning/InvalidAnnotation"))
		Eventually(eventReasons(ns, "NetworkPolicy", "db"), timeout, interval).Should(ContainElement("Warning/InvalidAnnotation"))

		By("a typo must not widen enforcement: nothing is deleted, nothing new is generated")
		newPod(ns, "api-1", map[string]string{"app": "api"}, "api-v2")
		Consistently(authzPolicy(ns, "netpol-db"), consistentlyFor, interval).Should(HaveField("ResourceVersion", before.ResourceVersion))

		optIn(ns, "enforce")
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api"), principal(ns, "api-v2")}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
		Eventually(eventReasons(ns, "NetworkPolicy", "db"), timeout, interval).Should(ContainElement("Normal/InvalidAnnotationCleared"))
		Expect(eventReasons("default", "Namespace", ns)()).To(HaveLen(1), "the namespace is warned once")
	})
})

var _ = Describe("A namespace with a mistyped annotation and no NetworkPolicy yet", func() {
	It("is warned at once, once, and not again when unrelated things change", func() {
		ns := newNamespace("typo")
		optIn(ns, "enforced")

		Eventually(eventReasons("default", "Namespace", ns), timeout, interval).Should(ConsistOf("Warning/InvalidAnnotation"))

		By("a label change is not an annotation change: no second warning")
		relabel(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, map[string]string{"team": "shop", "kubernetes.io/metadata.name": ns})
		Consistently(eventReasons("default", "Namespace", ns), consistentlyFor, interval).Should(HaveLen(1))

		By("a fixed annotation warns no more")
		optIn(ns, "enforce")
		Consistently(eventReasons("default", "Namespace", ns), consistentlyFor, interval).Should(HaveLen(1))
	})
})
