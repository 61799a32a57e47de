package controllers_test

import (
	"fmt"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

// newNamespace creates a namespace of its own for one spec.
func newNamespace(prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func() { _ = k8s.Delete(ctx, ns) })
	return ns.Name
}

var _ = Describe("The test control plane", func() {
	It("serves the NetworkPolicyTranslation CRD and Istio's AuthorizationPolicy", func() {
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())

		npt, err := dc.ServerResourcesForGroupVersion("policy.netpol2authz.io/v1alpha1")
		Expect(err).NotTo(HaveOccurred())
		Expect(npt.APIResources).To(ContainElement(And(
			HaveField("Name", "networkpolicytranslations"),
			HaveField("Namespaced", true),
			HaveField("ShortNames", ConsistOf("npt")),
		)))

		ap, err := dc.ServerResourcesForGroupVersion("security.istio.io/v1")
		Expect(err).NotTo(HaveOccurred())
		Expect(ap.APIResources).To(ContainElement(HaveField("Name", "authorizationpolicies")))
	})

	It("stores an AuthorizationPolicy with principals and ports as written", func() {
		ns := newNamespace("authz")
		in := &securityv1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
			Spec: securityapi.AuthorizationPolicy{
				Selector: &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "db"}},
				Action:   securityapi.AuthorizationPolicy_ALLOW,
				Rules: []*securityapi.Rule{{
					From: []*securityapi.Rule_From{{Source: &securityapi.Source{Principals: []string{"cluster.local/ns/" + ns + "/sa/admin"}}}},
					To:   []*securityapi.Rule_To{{Operation: &securityapi.Operation{Ports: []string{"5432"}}}},
				}},
			},
		}
		Expect(k8s.Create(ctx, in)).To(Succeed())

		out := &securityv1.AuthorizationPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(in), out)).To(Succeed())
		Expect(out.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "db"}))
		Expect(out.Spec.Rules).To(HaveLen(1))
		Expect(out.Spec.Rules[0].From[0].Source.Principals).To(Equal([]string{"cluster.local/ns/" + ns + "/sa/admin"}))
		Expect(out.Spec.Rules[0].To[0].Operation.Ports).To(Equal([]string{"5432"}))
	})
})

var _ = Describe("NetworkPolicyTranslation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace("npt") })

	validStatus := func() policyv1alpha1.NetworkPolicyTranslationStatus {
		return policyv1alpha1.NetworkPolicyTranslationStatus{
			ObservedGeneration:    3,
			Mode:                  "dry-run",
			Fidelity:              "permissive",
			AuthorizationPolicies: []string{"netpol-db"},
			Principals:            2,
			Rules:                 1,
			FindingsCount:         1,
			Findings: []policyv1alpha1.Finding{{
				Type:     "SharedIdentity",
				Severity: "Warning",
				Message:  "principal cluster.local/ns/shop/sa/default also covers pod web-1",
				Objects: []policyv1alpha1.ObjectReference{
					{Kind: "ServiceAccount", Namespace: "shop", Name: "default"},
					{Kind: "Pod", Namespace: "shop", Name: "web-1"},
				},
			}},
			Conditions: []metav1.Condition{
				{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Applied", Message: "1 policy applied", LastTransitionTime: metav1.Now().Rfc3339Copy(), ObservedGeneration: 3},
				{Type: "Exact", Status: metav1.ConditionFalse, Reason: "SharedIdentity", Message: "1 finding", LastTransitionTime: metav1.Now().Rfc3339Copy(), ObservedGeneration: 3},
			},
		}
	}

	// create makes a NetworkPolicyTranslation and writes the status through
	// the status subresource, returning the error of the status write.
	create := func(name string, status policyv1alpha1.NetworkPolicyTranslationStatus) error {
		npt := &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		Expect(k8s.Create(ctx, npt)).To(Succeed())
		npt.Status = status
		return k8s.Status().Update(ctx, npt)
	}

	It("round-trips its status through the status subresource", func() {
		want := validStatus()
		// Every kind of source a pending identity can have: a pod or a
		// namespace a peer selects, and the Service (or pod, or
		// namespace) whose use-waypoint label brings a waypoint.
		want.Pending = 1
		want.PendingIdentities = []policyv1alpha1.PendingIdentity{{
			Identity: "serviceaccount/" + ns + "/waypoint",
			Sources: []policyv1alpha1.IdentitySource{
				{Kind: "Pod", Namespace: ns, Name: "web-1"},
				{Kind: "Namespace", Name: ns},
				{Kind: "Service", Namespace: ns, Name: "web"},
			},
		}}
		Expect(create("db", want)).To(Succeed())

		got := &policyv1alpha1.NetworkPolicyTranslation{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, got)).To(Succeed())
		Expect(apiequality.Semantic.DeepEqual(got.Status, want)).To(BeTrue(), "status changed on the way through the API:\n%s", cmp.Diff(want, got.Status))
	})

	It("ignores status in a plain update, as a status subresource must", func() {
		npt := &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns}}
		Expect(k8s.Create(ctx, npt)).To(Succeed())
		npt.Status = validStatus()
		Expect(k8s.Update(ctx, npt)).To(Succeed())
		got := &policyv1alpha1.NetworkPolicyTranslation{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(npt), got)).To(Succeed())
		Expect(got.Status.Mode).To(BeEmpty())
	})

	DescribeTable("rejects invalid status",
		func(field string, mutate func(*policyv1alpha1.NetworkPolicyTranslationStatus)) {
			st := validStatus()
			mutate(&st)
			err := create(fmt.Sprintf("bad-%d", GinkgoParallelProcess()*1000+int(CurrentSpecReport().LeafNodeLocation.LineNumber)), st)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring(field))
		},
		Entry("unknown mode", "status.mode", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) { s.Mode = "audit" }),
		Entry("unknown fidelity", "status.fidelity", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) { s.Fidelity = "loose" }),
		Entry("negative count", "status.principals", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) { s.Principals = -1 }),
		Entry("unknown severity", "status.findings[0].severity", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) { s.Findings[0].Severity = "Fatal" }),
		Entry("finding type not a name", "status.findings[0].type", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) { s.Findings[0].Type = "shared identity" }),
		Entry("empty message", "status.findings[0].message", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) { s.Findings[0].Message = "" }),
		Entry("too many findings", "status.findings", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) {
			f := s.Findings[0]
			s.Findings = nil
			for i := 0; i <= policyv1alpha1.MaxFindings; i++ {
				f.Message = fmt.Sprintf("finding %d", i)
				s.Findings = append(s.Findings, f)
			}
		}),
		Entry("too many objects in a finding", "status.findings[0].objects", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) {
			var objs []policyv1alpha1.ObjectReference
			for i := 0; i <= policyv1alpha1.MaxFindingObjects; i++ {
				objs = append(objs, policyv1alpha1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: fmt.Sprintf("p%d", i)})
			}
			s.Findings[0].Objects = objs
		}),
		Entry("duplicate condition type", "status.conditions", func(s *policyv1alpha1.NetworkPolicyTranslationStatus) {
			s.Conditions[1].Type = "Ready"
		}),
	)
})
