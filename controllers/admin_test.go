package controllers_test

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/proto"
	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// adminDiscoveryPeriod is how often the spec's operator asks which admin
// kinds are served: short, so that a CRD installed is seen at once.
const adminDiscoveryPeriod = 500 * time.Millisecond

// startOperatorWithInstalledRBAC starts an operator whose requests carry
// the identity of a user bound to nothing but the manager ClusterRole
// make manifests writes (config/rbac/role.yaml, as installed).
func startOperatorWithInstalledRBAC(name string, settings controllers.Settings) *operatorRun {
	user, err := env.AddUser(envtest.User{Name: name}, nil)
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}, Rules: shippedRules("../config/rbac/role.yaml")}
	Expect(k8s.Create(ctx, role)).To(Succeed())
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}}
	Expect(k8s.Create(ctx, binding)).To(Succeed())
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, binding))).To(Succeed())
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, role))).To(Succeed())
	})
	// startOperatorWith runs on a copy of cfg, taken at once.
	admin := cfg
	cfg = rest.CopyConfig(user.Config())
	defer func() { cfg = admin }()
	return startOperatorWith(settings)
}

// adminGenerated returns a function listing the AuthorizationPolicies of
// namespace ns generated for the admin policy of that name.
func adminGenerated(ns, name string) func() ([]*securityv1.AuthorizationPolicy, error) {
	return func() ([]*securityv1.AuthorizationPolicy, error) {
		var list securityv1.AuthorizationPolicyList
		err := k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"netpol2authz.io/admin-policy": name})
		return list.Items, err
	}
}

// generatedByAdmin returns a function listing the AuthorizationPolicies of
// namespace ns that any admin policy brought.
func generatedByAdmin(ns string) func() ([]*securityv1.AuthorizationPolicy, error) {
	return func() ([]*securityv1.AuthorizationPolicy, error) {
		var list securityv1.AuthorizationPolicyList
		err := k8s.List(ctx, &list, client.InNamespace(ns), client.HasLabels{"netpol2authz.io/admin-policy"})
		return list.Items, err
	}
}

// haveActionAndPrincipals matches an AuthorizationPolicy of that action and principals.
func haveActionAndPrincipals(action secv1beta1.AuthorizationPolicy_Action, want ...string) OmegaMatcher {
	return WithTransform(func(ap *securityv1.AuthorizationPolicy) []any {
		return []any{ap.Spec.Action, principals(ap)}
	}, Equal([]any{action, want}))
}

// findingTypeList returns a function listing the types of the findings of
// a NetworkPolicyTranslation's status.
func findingTypeList(ns, name string) func() ([]string, error) {
	return func() ([]string, error) {
		st, err := translationStatus(ns, name)()
		out := []string{}
		for _, f := range st.Findings {
			out = append(out, f.Type)
		}
		return out, err
	}
}

// anp is an AdminNetworkPolicy on the pods of namespace ns: one ingress
// rule with action from pods labelled from of ns, on port.
func anp(name, ns string, priority int32, action netpolv1alpha1.AdminNetworkPolicyRuleAction, from map[string]string, port int32) *netpolv1alpha1.AdminNetworkPolicy {
	own := metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	return &netpolv1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: netpolv1alpha1.AdminNetworkPolicySpec{
			Priority: priority,
			Subject:  netpolv1alpha1.AdminNetworkPolicySubject{Namespaces: &own},
			Ingress: []netpolv1alpha1.AdminNetworkPolicyIngressRule{{
				Name: "rule", Action: action,
				From: []netpolv1alpha1.AdminNetworkPolicyIngressPeer{{Pods: &netpolv1alpha1.NamespacedPod{
					NamespaceSelector: own, PodSelector: metav1.LabelSelector{MatchLabels: from},
				}}},
				Ports: &[]netpolv1alpha1.AdminNetworkPolicyPort{{PortNumber: &netpolv1alpha1.Port{Protocol: "TCP", Port: port}}},
			}},
		},
	}
}

var _ = Describe("Admin network policies", func() {
	It("are read while their CRDs are served, and the operator carries on when they go", func() {
		op.Stop()
		op = startOperatorWithInstalledRBAC("admin-policies-operator", controllers.Settings{IstioNamespace: istioNamespace, AdminPolicyDiscoveryPeriod: adminDiscoveryPeriod})
		DeferCleanup(func() { op.Stop(); op = startOperator() })

		ns := optedInNamespace("admin", "enforce")
		setIdentity(ns, "follow")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "web-0", map[string]string{"app": "web"}, "web")
		newPod(ns, "backup-0", map[string]string{"app": "backup"}, "backup")
		np := newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "web"}))

		By("without the CRDs, the operator translates as before")
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{principal(ns, "web")}))
		Expect(generatedByAdmin(ns)()).To(BeEmpty())

		By("the CRDs are installed and an admin Allow admits backup, which the NetworkPolicy does not")
		crds := installCRDs(testenv.AdminPolicyCRDs, &netpolv1alpha1.AdminNetworkPolicyList{})
		allow := anp("allow-backup-"+ns, ns, 10, netpolv1alpha1.AdminNetworkPolicyRuleActionAllow, map[string]string{"app": "backup"}, 5432)
		// The CRD is established; its resource may take a moment to serve.
		Eventually(func() error { return k8s.Create(ctx, allow) }, timeout, interval).Should(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, allow) })
		Eventually(adminGenerated(ns, allow.Name), timeout, interval).Should(ConsistOf(
			haveActionAndPrincipals(secv1beta1.AuthorizationPolicy_ALLOW, principal(ns, "backup"))))
		Eventually(findingTypeList(ns, "db"), timeout, interval).Should(ContainElement("AdminPolicyApplies"))
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{principal(ns, "web")}), "the NetworkPolicy's own policy is unchanged")

		By("a restart reads the admin policies before its first reconcile: nothing is written")
		waitSettled()
		op.Stop()
		op = startOperatorWithInstalledRBAC("admin-policies-operator-2", controllers.Settings{IstioNamespace: istioNamespace, AdminPolicyDiscoveryPeriod: adminDiscoveryPeriod})
		Consistently(func() int64 { return op.WritesIn(ns) }, steadyFor, interval).Should(BeZero(),
			"no translation without the admin policies, which would delete the admin policy's ALLOW and write it again")
		Expect(adminGenerated(ns, allow.Name)()).To(HaveLen(1))

		By("strict: an admin Deny of web becomes a DENY policy")
		annotateNamespace(ns, map[string]*string{fidelityKey: new("strict")})
		deny := anp("deny-web-"+ns, ns, 5, netpolv1alpha1.AdminNetworkPolicyRuleActionDeny, map[string]string{"app": "web"}, 5432)
		Expect(k8s.Create(ctx, deny)).To(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, deny) })
		Eventually(adminGenerated(ns, deny.Name), timeout, interval).Should(ConsistOf(
			haveActionAndPrincipals(secv1beta1.AuthorizationPolicy_DENY, principal(ns, "web"))))
		Eventually(findingTypeList(ns, "db"), timeout, interval).Should(ContainElement("AdminPolicyApplies"))

		By("an editor of AuthorizationPolicies empties the DENY policy, forging the digest the operator's cache keeps of the generated spec: it is restored")
		editor := attackerClient("ap-editor-"+ns, ns, rbacv1.PolicyRule{
			APIGroups: []string{"security.istio.io"}, Resources: []string{"authorizationpolicies"}, Verbs: []string{"get", "list", "update", "patch"},
		})
		generatedDeny, err := adminGenerated(ns, deny.Name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(generatedDeny).To(HaveLen(1))
		forged := &securityv1.AuthorizationPolicy{}
		Expect(editor.Get(ctx, client.ObjectKeyFromObject(generatedDeny[0]), forged)).To(Succeed())
		spec, err := proto.MarshalOptions{Deterministic: true}.Marshal(&forged.Spec)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(spec)
		forged.Annotations["netpol2authz.io/cached-spec-digest"] = hex.EncodeToString(sum[:])
		forged.Spec.Rules = nil // a DENY policy without rules denies nothing
		Expect(editor.Update(ctx, forged)).To(Succeed())
		Eventually(adminGenerated(ns, deny.Name), timeout, interval).Should(ConsistOf(And(
			haveActionAndPrincipals(secv1beta1.AuthorizationPolicy_DENY, principal(ns, "web")),
			HaveField("Annotations", Not(HaveKey("netpol2authz.io/cached-spec-digest"))),
		)))

		By("the Deny is deleted: its DENY policy goes, the Allow's stays")
		Expect(k8s.Delete(ctx, deny)).To(Succeed())
		Eventually(adminGenerated(ns, deny.Name), timeout, interval).Should(BeEmpty())
		Expect(adminGenerated(ns, allow.Name)()).To(HaveLen(1))

		By("the CRDs are deleted (the Allow with them): what the admin policies brought goes, and the operator carries on")
		uninstallCRDs(crds, &netpolv1alpha1.AdminNetworkPolicyList{})
		Eventually(generatedByAdmin(ns), timeout, interval).Should(BeEmpty())
		Eventually(findingTypeList(ns, "db"), timeout, interval).ShouldNot(ContainElement(HavePrefix("AdminPolicy")))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(np), np)).To(Succeed())
		port := intstr.FromInt32(5433)
		np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &port}}
		Expect(k8s.Update(ctx, np)).To(Succeed())
		Eventually(portsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{"5433"}))
		Expect(op.done).NotTo(BeClosed(), "the operator is still running")

		By("served again, as ClusterNetworkPolicy too: a new Accept is read")
		installCRDs(testenv.AdminPolicyCRDs, &netpolv1alpha1.AdminNetworkPolicyList{})
		cnp := &netpolv1beta1.ClusterNetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "accept-backup-" + ns},
			Spec: netpolv1beta1.ClusterNetworkPolicySpec{
				Tier: netpolv1beta1.AdminTier, Priority: 20,
				Subject: netpolv1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
				Ingress: []netpolv1beta1.ClusterNetworkPolicyIngressRule{{
					Name: "backup", Action: netpolv1beta1.ClusterNetworkPolicyRuleActionAccept,
					From: []netpolv1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &netpolv1beta1.NamespacedPod{
						NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
						PodSelector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "backup"}},
					}}},
				}},
			},
		}
		Eventually(func() error { return k8s.Create(ctx, cnp) }, timeout, interval).Should(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, cnp) })
		Eventually(adminGenerated(ns, cnp.Name), timeout, interval).Should(ConsistOf(
			haveActionAndPrincipals(secv1beta1.AuthorizationPolicy_ALLOW, principal(ns, "backup"))))
	})
})
