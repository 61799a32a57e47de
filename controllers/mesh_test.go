package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// setMeshConfig writes Istio's mesh config for one spec and removes it
// after.
func setMeshConfig(mesh string) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: istioNamespace}}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	cm.Data = map[string]string{"mesh": mesh}
	if err == nil {
		Expect(k8s.Update(ctx, cm)).To(Succeed())
	} else {
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		Expect(k8s.Create(ctx, cm)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, cm))).To(Succeed()) })
	}
}

var _ = Describe("Following the mesh settings", func() {
	var ns string
	BeforeEach(func() {
		ns = optedInNamespace("mesh", "enforce")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "api")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
	})

	It("uses the mesh's trust domain", func() {
		setMeshConfig("trustDomain: corp.example\n")
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{"corp.example/ns/" + ns + "/sa/api"}))
	})

	It("never acts in the root namespace, and cleans up what was there", func() {
		setMeshConfig("rootNamespace: " + ns + "\ntrustDomain: cluster.local\n")
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeFalse())
		Eventually(exists(nptKey(ns, "db")), timeout, interval).Should(BeFalse())

		newAllowPolicy(ns, "web", map[string]string{"app": "web"}, 8080, peerPods(map[string]string{"app": "api"}))
		Consistently(exists(apKey(ns, "netpol-web")), consistentlyFor, interval).Should(BeFalse())
		Expect(exists(nptKey(ns, "web"))()).To(BeFalse())

		setMeshConfig("trustDomain: cluster.local\n")
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeTrue())
		Eventually(exists(apKey(ns, "netpol-web")), timeout, interval).Should(BeTrue())
	})
})
