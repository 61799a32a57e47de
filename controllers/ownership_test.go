package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

var _ = Describe("Owning the generated policies", func() {
	var ns string
	BeforeEach(func() {
		ns = optedInNamespace("owner", "enforce")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "api-0", map[string]string{"app": "api"}, "api")
	})

	It("restores a generated policy edited by hand", func() {
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))

		ap, err := authzPolicy(ns, "netpol-db")()
		Expect(err).NotTo(HaveOccurred())
		ap.Spec.Rules[0].From[0].Source.Principals = []string{"cluster.local/ns/evil/sa/intruder"}
		ap.Annotations["istio.io/dry-run"] = "true"
		ap.Annotations["team.example/owner"] = "db-team"
		Expect(k8s.Update(ctx, ap)).To(Succeed())

		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(And(
			HaveField("Annotations", Not(HaveKey("istio.io/dry-run"))),
			HaveField("Annotations", HaveKeyWithValue("team.example/owner", "db-team")), // others' metadata stays
		))
	})

	It("restores a generated policy deleted by hand", func() {
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeTrue())
		ap, _ := authzPolicy(ns, "netpol-db")()
		uid := ap.UID

		Expect(k8s.Delete(ctx, ap)).To(Succeed())
		Eventually(authzPolicy(ns, "netpol-db"), timeout, interval).Should(HaveField("UID", Not(Equal(uid))))
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{principal(ns, "api")}))
	})

	It("restores a status object deleted by hand", func() {
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))

		Expect(k8s.Delete(ctx, nptKey(ns, "db"))).To(Succeed())
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
	})

	It("restores a status edited by hand, also where the cache keeps only a digest of it", func() {
		newPod(ns, "batch-0", map[string]string{"app": "batch"}, "api") // a finding: SharedIdentity
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
			haveFindingTypes("SharedIdentity"),
		))
		want, err := translationStatus(ns, "db")()
		Expect(err).NotTo(HaveOccurred())

		By("a finding's message rewritten: only the digest the cache keeps can tell")
		npt := &policyv1alpha1.NetworkPolicyTranslation{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, npt)).To(Succeed())
		npt.Status.Findings[0].Message = "nothing to see here"
		npt.Status.Principals = 99
		Expect(k8s.Status().Update(ctx, npt)).To(Succeed())
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			HaveField("Findings", Equal(want.Findings)),
			HaveField("Principals", Equal(want.Principals)),
		))
	})

	It("leaves a same-named policy it does not own alone, reports Conflict, and takes the name once it is free", func() {
		theirs := &securityv1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "netpol-db", Namespace: ns, Labels: map[string]string{"team": "db"}},
			Spec: securityapi.AuthorizationPolicy{Rules: []*securityapi.Rule{{
				From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{"cluster.local/ns/" + ns + "/sa/admin"}}}},
			}}},
		}
		Expect(k8s.Create(ctx, theirs)).To(Succeed())
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))

		Eventually(translationStatus(ns, "db"), timeout, interval).Should(And(
			haveCondition("Ready", metav1.ConditionFalse, "Conflict"),
			haveCondition("Exact", metav1.ConditionFalse, "Conflict"),
			haveFindingTypes("Conflict"),
			HaveField("AuthorizationPolicies", BeEmpty()),
		))
		Eventually(eventReasons(ns, "NetworkPolicy", "db"), timeout, interval).Should(ContainElement("Warning/Conflict"))
		Consistently(authzPolicy(ns, "netpol-db"), consistentlyFor, interval).Should(And(
			HaveField("ResourceVersion", theirs.ResourceVersion),
			HaveField("Labels", Equal(map[string]string{"team": "db"})),
			HaveField("OwnerReferences", BeEmpty()),
		))

		Expect(k8s.Delete(ctx, theirs)).To(Succeed())
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{principal(ns, "api")}))
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
		Eventually(eventReasons(ns, "NetworkPolicy", "db"), timeout, interval).Should(ContainElement("Normal/ConflictCleared"))
	})

	It("never deletes an unowned policy when its NetworkPolicy goes", func() {
		np := newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "api"}))
		theirs := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{
			Name: "netpol-db-extra", Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "netpol2authz", "netpol2authz.io/networkpolicy": "db"},
		}}
		Expect(k8s.Create(ctx, theirs)).To(Succeed())
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeTrue())

		Expect(k8s.Delete(ctx, np)).To(Succeed())
		Eventually(exists(apKey(ns, "netpol-db")), timeout, interval).Should(BeFalse())
		Consistently(exists(theirs), consistentlyFor, interval).Should(BeTrue(), "labels alone do not make a policy ours")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(theirs), theirs)).To(Succeed())
	})
})
