package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var _ = Describe("Keeping policies in sync with the workloads", func() {
	var ns string
	BeforeEach(func() {
		// follow: every identity selection resolves is written at once,
		// as before identity review (see identity_test.go for review).
		ns = optedInNamespace("sync", "enforce")
		setIdentity(ns, "follow")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "api")
	})

	It("follows a pod relabelled into and out of a peer selector", func() {
		batch := newPod(ns, "batch-0", map[string]string{"app": "batch"}, "batch")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))

		relabel(batch, map[string]string{"app": "api"})
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api"), principal(ns, "batch")}))

		relabel(batch, map[string]string{"app": "batch"})
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
	})

	It("adds a new pod's new ServiceAccount, and drops it with the pod", func() {
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))

		canary := newPod(ns, "api-canary", map[string]string{"app": "api"}, "api-canary")
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api"), principal(ns, "api-canary")}))

		Expect(k8s.Delete(ctx, canary)).To(Succeed())
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
	})

	It("drops a pod that has finished", func() {
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		job := newPod(ns, "api-migrate", map[string]string{"app": "api"}, "migrate")
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(ContainElement(principal(ns, "migrate")))

		job.Status.Phase = corev1.PodSucceeded
		Expect(k8s.Status().Update(ctx, job)).To(Succeed())
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
	})

	It("follows the IP of a source outside the mesh", func() {
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "legacy"}))
		legacy := newPod(ns, "legacy-0", map[string]string{"app": "legacy"}, "legacy", withoutSidecar)
		ipBlocks := func() ([]string, error) {
			ap, err := authzPolicy(ns, "netpol-db")()
			if err != nil || len(ap.Spec.Rules) == 0 {
				return nil, err
			}
			var out []string
			for _, f := range ap.Spec.Rules[0].From {
				out = append(out, f.Source.IpBlocks...)
			}
			return out, nil
		}
		Eventually(ipBlocks, timeout, interval).Should(Equal([]string{legacy.Status.PodIP + "/32"}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveFindingTypes("SourceNotInMesh"))

		legacy.Status.PodIP = nextIP()
		legacy.Status.PodIPs = []corev1.PodIP{{IP: legacy.Status.PodIP}}
		Expect(k8s.Status().Update(ctx, legacy)).To(Succeed())
		Eventually(ipBlocks, timeout, interval).Should(Equal([]string{legacy.Status.PodIP + "/32"}))
	})

	It("admits a namespace as soon as it is labelled into a namespaceSelector", func() {
		peerLabel := map[string]string{"netpol2authz-test/peer-of": ns}
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPodsIn(peerLabel, map[string]string{"app": "client"}))
		other := newNamespace("sync-client")
		newPod(other, "client-0", map[string]string{"app": "client"}, "client")
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeTrue())
		Expect(principalsOf(ns, "netpol-db")()).To(BeEmpty())

		otherNS := &corev1.Namespace{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: other}, otherNS)).To(Succeed())
		relabel(otherNS, peerLabel)
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(other, "client")}))

		relabel(otherNS, nil)
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(BeEmpty())
	})

	It("follows changes of the NetworkPolicy, and cleans up when it is deleted", func() {
		np := newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(
			HaveField("Spec.Rules", HaveExactElements(HaveField("To", HaveExactElements(HaveField("Operation.Ports", Equal([]string{"5432"})))))))

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(np), np)).To(Succeed())
		port := intstr.FromInt32(6432)
		np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &port}}
		Expect(k8s.Update(ctx, np)).To(Succeed())
		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(
			HaveField("Spec.Rules", HaveExactElements(HaveField("To", HaveExactElements(HaveField("Operation.Ports", Equal([]string{"6432"})))))))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(HaveField("ObservedGeneration", BeEquivalentTo(2)))

		// envtest runs no garbage collector: the operator must delete.
		Expect(k8s.Delete(ctx, np)).To(Succeed())
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeFalse())
		Eventually(exists(nptKey(ns, "db")), timeout, interval).Should(BeFalse())
	})
})
