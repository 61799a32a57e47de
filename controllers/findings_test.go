package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("Reporting where a translation is not exact", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace("findings")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "shared")
	})

	It("reports a shared ServiceAccount, with an event when it appears and when it clears", func() {
		optIn(ns, "enforce")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Exact", metav1.ConditionTrue, "Exact"))

		batch := newPod(ns, "batch-0", map[string]string{"app": "batch"}, "shared")
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveFindingTypes("SharedIdentity"),
			HaveField("Findings", ContainElement(HaveField("Objects", ContainElement(And(HaveField("Kind", "Pod"), HaveField("Name", "batch-0")))))),
			haveCondition("Exact", metav1.ConditionFalse, "SharedIdentity"),
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
		))
		// permissive keeps the shared principal: api-0 must not lose access.
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{principal(ns, "shared")}))
		Eventually(eventReasons(ns, "NetworkPolicy", "db"), timeout, interval).Should(Equal([]string{"Warning/SharedIdentity"}))

		Expect(k8s.Delete(ctx, batch)).To(Succeed())
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveFindingTypes(),
			haveCondition("Exact", metav1.ConditionTrue, "Exact"),
		))
		Eventually(eventReasons(ns, "NetworkPolicy", "db"), timeout, interval).Should(Equal([]string{"Normal/SharedIdentityCleared", "Warning/SharedIdentity"}))
	})

	It("drops a shared principal in strict fidelity", func() {
		strict := "strict"
		annotateNamespace(ns, map[string]*string{fidelityKey: &strict})
		optIn(ns, "enforce")
		newPod(ns, "batch-0", map[string]string{"app": "batch"}, "shared")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))

		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveFindingTypes("SharedIdentity"),
			HaveField("Findings", ContainElement(HaveField("Message", ContainSubstring("strict")))),
			haveCondition("Exact", metav1.ConditionFalse, "SharedIdentity"),
		))
		Expect(principalsOf(ns, "netpol-db")()).To(BeEmpty())
	})
})
