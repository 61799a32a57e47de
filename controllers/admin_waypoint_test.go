package controllers_test

import (
	"bytes"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/cli"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// selectorBound matches an AuthorizationPolicy bound by selector, of that
// action and principals.
func selectorBound(action secv1beta1.AuthorizationPolicy_Action, principals ...string) OmegaMatcher {
	return And(haveActionAndPrincipals(action, principals...), HaveField("Spec.TargetRefs", BeEmpty()))
}

// serviceBound matches an AuthorizationPolicy bound to Service svc, of that
// action, principals and service ports.
func serviceBound(action secv1beta1.AuthorizationPolicy_Action, svc string, principals []string, ports ...string) OmegaMatcher {
	return And(HaveField("Spec.Action", action), boundTo(svc, principals, ports...))
}

// verifiedExactly runs `netpol2authz verify --cluster --existing -n ns` and
// expects no unexplained difference between the AuthorizationPolicies in
// place and the NetworkPolicies and admin network policies.
func verifiedExactly(kubeconfig, ns string) {
	var out, errOut bytes.Buffer
	code := cli.RunVerify([]string{"--cluster", "--kubeconfig", kubeconfig, "--existing", "-n", ns}, nil, &out, &errOut)
	ExpectWithOffset(1, code).To(Equal(cli.ExitOK), "verify:\n%s%s", out.String(), errOut.String())
}

var _ = Describe("Admin network policies behind a waypoint", func() {
	It("are bound to the Services the waypoint serves too, follow the admin policies, and verify finds Istio and the stack agree", func() {
		op.Stop()
		op = startOperatorWithInstalledRBAC("admin-waypoint-operator", controllers.Settings{IstioNamespace: istioNamespace, AdminPolicyDiscoveryPeriod: adminDiscoveryPeriod})
		DeferCleanup(func() { op.Stop(); op = startOperator() })
		installCRDs(testenv.AdminPolicyCRDs, &netpolv1alpha1.AdminNetworkPolicyList{})
		installCRDs(testenv.GatewayAPICRDs, &gatewayv1.GatewayList{})
		kubeconfig := verifyKubeconfig()

		ns := optedInNamespace("admin-waypoint", "enforce")
		setIdentity(ns, "follow")
		annotateNamespace(ns, map[string]*string{fidelityKey: new("strict")})
		setNamespaceLabel(ns, "istio.io/dataplane-mode", new("ambient"))
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db", withoutSidecar)
		newPod(ns, "web-0", map[string]string{"app": "web"}, "web", withoutSidecar)
		newPod(ns, "backup-0", map[string]string{"app": "backup"}, "backup", withoutSidecar)
		newService(ns, "db", map[string]string{"app": "db"}, 5432)
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "web"}))
		addressWaypoint(newWaypoint(ns, "waypoint"))
		setNamespaceLabel(ns, "istio.io/use-waypoint", new("waypoint"))
		web, backup, waypoint := principal(ns, "web"), principal(ns, "backup"), principal(ns, "waypoint")
		Eventually(authzPolicy(ns, "netpol-db-svc-db"), timeout, interval).Should(boundTo("db", []string{web}, "5432"))

		By("an admin Allow of backup: an ALLOW for the pods that admits the waypoint too, and one bound to Service db")
		allow := anp("allow-backup-"+ns, ns, 10, netpolv1alpha1.AdminNetworkPolicyRuleActionAllow, map[string]string{"app": "backup"}, 5432)
		Eventually(func() error { return k8s.Create(ctx, allow) }, timeout, interval).Should(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, allow) })
		Eventually(adminGenerated(ns, allow.Name), timeout, interval).Should(ConsistOf(
			selectorBound(secv1beta1.AuthorizationPolicy_ALLOW, backup, waypoint),
			serviceBound(secv1beta1.AuthorizationPolicy_ALLOW, "db", []string{backup}, "5432"),
		))

		By("strict: an admin Deny of web becomes a DENY for the pods and one bound to Service db, where the waypoint sees web")
		deny := anp("deny-web-"+ns, ns, 5, netpolv1alpha1.AdminNetworkPolicyRuleActionDeny, map[string]string{"app": "web"}, 5432)
		Expect(k8s.Create(ctx, deny)).To(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, deny) })
		Eventually(adminGenerated(ns, deny.Name), timeout, interval).Should(ConsistOf(
			selectorBound(secv1beta1.AuthorizationPolicy_DENY, web),
			serviceBound(secv1beta1.AuthorizationPolicy_DENY, "db", []string{web}, "5432"),
		))
		waitSettled()
		verifiedExactly(kubeconfig, ns)

		By("the Allow is deleted: both its policies go, the Deny's stay")
		Expect(k8s.Delete(ctx, allow)).To(Succeed())
		Eventually(adminGenerated(ns, allow.Name), timeout, interval).Should(BeEmpty())
		Expect(adminGenerated(ns, deny.Name)()).To(HaveLen(2))

		By("the namespace stops using the waypoint: the Deny is bound to no Service")
		setNamespaceLabel(ns, "istio.io/use-waypoint", nil)
		Eventually(adminGenerated(ns, deny.Name), timeout, interval).Should(ConsistOf(selectorBound(secv1beta1.AuthorizationPolicy_DENY, web)))
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "netpol-db-svc-db"}, &securityv1.AuthorizationPolicy{})
		}, timeout, interval).Should(Satisfy(apierrors.IsNotFound))
	})
})
