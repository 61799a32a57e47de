package istio_test

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/demo"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

var _ = Describe("istiod's validating webhook", Ordered, func() {
	It("admits every policy the operator generates for the samples", func() {
		root, err := testenv.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		objs, err := demo.ReadSamples(filepath.Join(root, "config", "samples"))
		Expect(err).NotTo(HaveOccurred())
		Expect(demo.ApplySamples(ctx, k8s, objs)).To(Succeed())
		Expect(demo.WaitTranslated(ctx, k8s, demo.NetworkPolicies(objs), timeout)).To(Succeed(),
			"every NetworkPolicyTranslation Ready: a policy istiod refused would leave it ApplyFailed")

		var list policyv1alpha1.NetworkPolicyTranslationList
		Expect(k8s.List(ctx, &list)).To(Succeed())
		n := 0
		for _, npt := range list.Items {
			for _, name := range npt.Status.AuthorizationPolicies {
				Expect(k8s.Get(ctx, client.ObjectKey{Namespace: npt.Namespace, Name: name}, &securityv1.AuthorizationPolicy{})).To(Succeed())
				n++
			}
		}
		Expect(n).To(BeNumerically(">=", 5), "the samples generate policies")
	})

	It("refuses what Istio cannot enforce: a port range, an empty source", func() {
		for name, rule := range map[string]*secv1beta1.Rule{
			"port-range":   {To: []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{Ports: []string{"80-90"}}}}},
			"empty-source": {From: []*secv1beta1.Rule_From{{Source: &secv1beta1.Source{}}}},
		} {
			ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
			ap.Spec.Rules = []*secv1beta1.Rule{rule}
			err := k8s.Create(ctx, ap)
			Expect(err).To(MatchError(ContainSubstring(`admission webhook "rev.validation.istio.io" denied the request`)), name)
		}
	})
})
