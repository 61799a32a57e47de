package istio_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/demo"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

var _ = Describe("ztunnel (ambient)", func() {
	It("carries exactly the rules the operator generates for the samples", func() {
		objs, namespaces, err := ambientSamples(freshRenamer("a"))
		Expect(err).NotTo(HaveOccurred())
		Expect(demo.ApplySamples(ctx, k8s, objs)).To(Succeed())
		Eventually(appliedFor(ctx, k8s, demo.NetworkPolicies(objs))).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		policies, pods := generatedIn(namespaces)
		Expect(len(policies)).To(BeNumerically(">=", 5), "the samples generate policies")
		Expect(rowsOf(policies)).To(And(HaveKey("principals"), HaveKey("ipBlocks"), HaveKey("deny-all (no rules)"), HaveKey("dry-run")),
			"the samples' rows: principals, legacy-batch's IP (out of the mesh), the shop's deny-all, payments in dry-run")
		want, err := expectZtunnel(namespaces, policies, pods, false)
		Expect(err).NotTo(HaveOccurred())
		Eventually(acceptedAs(ctx, k8s, policies)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed(),
			"istiod has seen every policy: a dry-run one is not sent to ztunnel, and its status says so")
		Eventually(compiledAs(istiod.HTTPAddr, want)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
	})

	cases, err := loadGoldenCases()
	if err != nil {
		It("loads the golden cases", func() { Expect(err).NotTo(HaveOccurred()) })
		return
	}
	var entries []TableEntry
	for _, c := range cases {
		entries = append(entries, Entry(c.Name, c))
	}
	DescribeTable("carries exactly the rules generated for each golden case", func(c goldenCase) {
		namespaces, policies, pods := createGoldenCase(c)
		want, err := expectZtunnel(namespaces, policies, pods, false)
		Expect(err).NotTo(HaveOccurred())
		Eventually(acceptedAs(ctx, k8s, policies)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
		Eventually(compiledAs(istiod.HTTPAddr, want)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())
	}, entries)

	It("finds a compiled policy that differs from the generated one", func() {
		ns := freshRenamer("a")("wrong")
		Expect(createAmbientNamespace(ctx, k8s, ns)).To(Succeed())
		pod := dbPod(ns)
		Expect(createAmbientPod(ctx, k8s, pod)).To(Succeed())
		created := allowFromPort(ns, "db", "5432")
		Expect(k8s.Create(ctx, created)).To(Succeed())
		right, err := expectZtunnel([]string{ns}, []*securityv1.AuthorizationPolicy{created}, []*corev1.Pod{pod}, false)
		Expect(err).NotTo(HaveOccurred())
		Eventually(compiledAs(istiod.HTTPAddr, right)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed())

		wrong, err := expectZtunnel([]string{ns}, []*securityv1.AuthorizationPolicy{allowFromPort(ns, "db", "5432", "8080")}, []*corev1.Pod{pod}, false)
		Expect(err).NotTo(HaveOccurred())
		Consistently(compiledAs(istiod.HTTPAddr, wrong)).WithTimeout(stillWrongFor).WithPolling(interval).Should(
			MatchError(ContainSubstring(`"8080"`)), "a port the compiled rule lacks")
	})

	It("sends a dry-run policy marked dryRun when istiod enables ambient dry-run", func() {
		// A second istiod that only watches, in a control-plane namespace of
		// its own so that its leases never hold back the suite's istiod
		// (a cold CI run once saw no status written for a minute).
		dry, err := testenv.StartIstiod(ctx, env, k8s, testenv.IstiodOptions{
			Namespace: "istio-watching", Watching: true,
			Env: []string{"AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY=true"},
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(dry.Stop)
		ns := freshRenamer("a")("dry")
		Expect(createAmbientNamespace(ctx, k8s, ns)).To(Succeed())
		pod := dbPod(ns)
		Expect(createAmbientPod(ctx, k8s, pod)).To(Succeed())
		ap := allowFromPort(ns, "db", "5432")
		ap.Annotations = map[string]string{annotationDryRun: "true"}
		Expect(k8s.Create(ctx, ap)).To(Succeed())
		policies, pods := []*securityv1.AuthorizationPolicy{ap}, []*corev1.Pod{pod}

		sent, err := expectZtunnel([]string{ns}, policies, pods, true)
		Expect(err).NotTo(HaveOccurred())
		Expect(sent.Policies).To(HaveLen(1))
		Expect(sent.Policies[0].DryRun).To(BeTrue())
		Eventually(compiledAs(dry.HTTPAddr, sent)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed(),
			"with AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY istiod sends it, dryRun: true")

		Eventually(acceptedAs(ctx, k8s, policies)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed(),
			"the suite's istiod, the only one writing status, refuses it for ztunnel")
		withheld, err := expectZtunnel([]string{ns}, policies, pods, false)
		Expect(err).NotTo(HaveOccurred())
		Eventually(compiledAs(istiod.HTTPAddr, withheld)).WithTimeout(compiledWithin).WithPolling(interval).Should(Succeed(),
			"and does not send it")
	})
})

// generatedIn reads the AuthorizationPolicies and pods of namespaces.
func generatedIn(namespaces []string) ([]*securityv1.AuthorizationPolicy, []*corev1.Pod) {
	var policies []*securityv1.AuthorizationPolicy
	var pods []*corev1.Pod
	for _, ns := range namespaces {
		var aps securityv1.AuthorizationPolicyList
		Expect(k8s.List(ctx, &aps, client.InNamespace(ns))).To(Succeed())
		policies = append(policies, aps.Items...)
		var ps corev1.PodList
		Expect(k8s.List(ctx, &ps, client.InNamespace(ns))).To(Succeed())
		for i := range ps.Items {
			pods = append(pods, &ps.Items[i])
		}
	}
	return policies, pods
}

// createGoldenCase creates the case in fresh ambient namespaces: its
// namespaces, its live pods and the policies the engine generates for it,
// without owner references (the NetworkPolicies are not created: the
// operator would clean up what they own). It returns what it created.
func createGoldenCase(c goldenCase) ([]string, []*securityv1.AuthorizationPolicy, []*corev1.Pod) {
	rename := freshRenamer("a")
	var namespaces []string
	for _, ns := range c.Namespaces() {
		namespaces = append(namespaces, rename(ns))
		Expect(createAmbientNamespace(ctx, k8s, rename(ns))).To(Succeed())
	}
	pods := c.LivePods(rename)
	for _, p := range pods {
		Expect(createAmbientPod(ctx, k8s, p)).To(Succeed())
	}
	var policies []*securityv1.AuthorizationPolicy
	for _, ap := range c.Policies() {
		ap = renamePolicy(ap, rename)
		ap.OwnerReferences = nil
		Expect(k8s.Create(ctx, ap)).To(Succeed())
		policies = append(policies, ap)
	}
	return namespaces, policies, pods
}

// dbPod is the pod db-0 (app=db, ServiceAccount db) of ns.
func dbPod(ns string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: ns, Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{ServiceAccountName: "db", Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}
}

// allowFromPort is a policy allowing cluster.local/ns/<ns>/sa/api to the
// pods app=<app> on ports.
func allowFromPort(ns, app string, ports ...string) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "allow-" + app, Namespace: ns}}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": app}}
	ap.Spec.Rules = []*secv1beta1.Rule{{
		From: []*secv1beta1.Rule_From{{Source: &secv1beta1.Source{Principals: []string{"cluster.local/ns/" + ns + "/sa/api"}}}},
		To:   []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{Ports: ports}}},
	}}
	return ap
}
