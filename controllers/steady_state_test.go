package controllers_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/controllers"
)

// reconciles reads controller-runtime's count of finished reconciles.
func reconciles() int {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	n := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return int(n)
}

// gauge reads the value of a gauge with these labels from
// controller-runtime's registry (0 when absent).
func gauge(name string, labels map[string]string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

var _ = Describe("The steady state", func() {
	It("makes no API write when nothing changes, also after a restart", func() {
		ns := optedInNamespace("steady", "dry-run")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "shared")
		newPod(ns, "batch-0", map[string]string{"app": "batch"}, "shared") // a finding: SharedIdentity
		for i := range 3 {
			newAllowPolicy(ns, fmt.Sprintf("db-%d", i), map[string]string{"app": "db"}, int32(5432+i), peerPods(map[string]string{"app": "api"}))
		}
		for i := range 3 {
			Eventually(translationStatus(ns, fmt.Sprintf("db-%d", i)), timeout, interval).Should(And(
				haveCondition("Ready", metav1.ConditionTrue, "Applied"),
				HaveField("Mode", policyv1alpha1.Mode("dry-run")),
				haveFindingTypes("SharedIdentity"),
			))
		}

		By("converged: the running operator writes nothing more")
		// The last status writes may trail the Ready conditions (a
		// conflict retried): wait until a whole steadyFor passes without a
		// write, then none may follow.
		waitSettled()
		settled := op.Writes()
		Consistently(op.Writes, steadyFor, interval).Should(Equal(settled))

		By("restarted: a new operator reconciles everything and writes nothing")
		op.Stop()
		before := reconciles()
		op = startOperator()
		Eventually(reconciles, timeout, interval).Should(BeNumerically(">=", before+3))
		Consistently(op.Writes, steadyFor, interval).Should(BeZero())

		By("a pod's status heartbeat and an unrelated annotation do not even reach the controller")
		Eventually(reconciles, timeout, interval).Should(BeNumerically(">=", before+3))
		settledReconciles := reconciles()
		pod := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-0"}, pod)).To(Succeed())
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastProbeTime: metav1.Now()})
		Expect(k8s.Status().Update(ctx, pod)).To(Succeed())
		pod.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "now"}
		Expect(k8s.Update(ctx, pod)).To(Succeed())
		Consistently(reconciles, consistentlyFor, interval).Should(Equal(settledReconciles))
		Expect(op.Writes()).To(BeZero())

		By("the metrics tell the same story")
		Expect(gauge("netpol2authz_findings", map[string]string{"type": "SharedIdentity", "namespace": ns})).To(Equal(3.0))
		Expect(gauge("netpol2authz_generated_policies", nil)).To(BeNumerically(">=", 3))
	})

	It("writes a changed policy and its status once each, and nothing more", func() {
		ns, batch := translatedDB("one-write")
		waitSettled()
		before := op.Writes()

		relabel(batch, map[string]string{"app": "api"})
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api"), principal(ns, "batch")}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(HaveField("Principals", BeEquivalentTo(2)))
		waitSettled()
		// The status write comes back as an event and reconciles again: that
		// reconcile must find the status it wrote (the cache holds a digest
		// of it) and write nothing.
		Expect(op.Writes()-before).To(BeEquivalentTo(2), "the AuthorizationPolicy and the status, once each")
	})

	It("reconciles everything again at each periodic resync, and writes nothing", func() {
		ns := optedInNamespace("resync", "enforce")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "api")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))

		op.Stop()
		op = startOperatorWith(controllers.Settings{IstioNamespace: istioNamespace, ResyncPeriod: 2 * time.Second})
		DeferCleanup(func() { op.Stop(); op = startOperator() })
		waitSettled()
		before := reconciles()
		Consistently(op.Writes, 3*steadyFor, interval).Should(BeZero(), "a resync of a cluster at rest writes nothing")
		Expect(reconciles()).To(BeNumerically(">", before+1), "the resyncs reconciled the NetworkPolicies again")
	})
})
