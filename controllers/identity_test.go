package controllers_test

import (
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/cli"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// attackerClient is a client of a user with only rules (in namespace ns;
// cluster-wide when ns is empty): what someone who can edit pods, or a
// kubelet, can do.
func attackerClient(name, ns string, rules ...rbacv1.PolicyRule) client.Client {
	user, err := env.AddUser(envtest.User{Name: name}, nil)
	Expect(err).NotTo(HaveOccurred())
	subject := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
	if ns == "" {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}, Rules: rules}
		Expect(k8s.Create(ctx, role)).To(Succeed())
		Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}, Subjects: []rbacv1.Subject{subject}})).To(Succeed())
	} else {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns}, Rules: rules}
		Expect(k8s.Create(ctx, role)).To(Succeed())
		Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}, Subjects: []rbacv1.Subject{subject}})).To(Succeed())
	}
	c, err := client.New(rest.CopyConfig(user.Config()), client.Options{Scheme: testSch})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// shippedRules reads the rules of a ClusterRole the project ships.
func shippedRules(path string) []rbacv1.PolicyRule {
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.UnmarshalStrict(data, role)).To(Succeed())
	Expect(role.Rules).NotTo(BeEmpty())
	return role.Rules
}

// podEditorRules: patch pods and pods/status, and nothing else.
var podEditorRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}, Verbs: []string{"get", "list", "watch", "patch", "update"}},
}

// relabelAs merges labels into obj's, written by c as fieldManager;
// through the status subresource when status is set (what a kubelet, or
// anyone allowed to patch pods/status, can do).
func relabelAs(c client.Client, obj client.Object, labels map[string]string, fieldManager string, status bool) {
	Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	for k, v := range labels {
		l[k] = v
	}
	obj.SetLabels(l)
	if status {
		Expect(c.Status().Patch(ctx, obj, patch, &client.SubResourcePatchOptions{PatchOptions: client.PatchOptions{FieldManager: fieldManager}})).To(Succeed())
	} else {
		Expect(c.Patch(ctx, obj, patch, client.FieldOwner(fieldManager))).To(Succeed())
	}
}

// eventNotes returns a function listing the notes of the events of a reason
// about an object.
func eventNotes(eventNS, kind, name, reason string) func() ([]string, error) {
	return func() ([]string, error) {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(eventNS)); err != nil {
			return nil, err
		}
		out := []string{}
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason {
				out = append(out, e.Note)
			}
		}
		return out, nil
	}
}

// approvedIdentities returns a function reading the IdentityApproval of a
// NetworkPolicy.
func approvedIdentities(ns, name string) func() ([]string, error) {
	return func() ([]string, error) {
		a := &policyv1alpha1.IdentityApproval{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, a)
		return a.Spec.Identities, err
	}
}

// pendingIdentities matches a status whose pending identities are exactly ids.
func havePending(ids ...string) OmegaMatcher {
	return And(
		HaveField("Pending", BeEquivalentTo(len(ids))),
		WithTransform(func(st policyv1alpha1.NetworkPolicyTranslationStatus) []string {
			out := []string{}
			for _, p := range st.PendingIdentities {
				out = append(out, p.Identity)
			}
			return out
		}, ConsistOf(ids)),
	)
}

// waitSettled waits until the operator has made no write for steadyFor.
func waitSettled() {
	last, since := op.Writes(), time.Now()
	Eventually(func() bool {
		if n := op.Writes(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= steadyFor
	}, timeout, interval).Should(BeTrue(), "the operator settles")
}

var _ = Describe("Identity review: a label alone never grants access", func() {
	var ns string
	admins := map[string]string{"role": "admin"}
	BeforeEach(func() {
		ns = optedInNamespace("review", "enforce")
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db")
		newPod(ns, "ops-console-0", admins, "ops-console")
		newPod(ns, "reporting-0", map[string]string{"app": "reporting"}, "reporting")
		newAllowPolicy(ns, "db-admins-only", map[string]string{"app": "db"}, 5432, peerPods(admins))
		Eventually(principalsOf(ns, "netpol-db-admins-only"), timeout, interval).Should(Equal([]string{principal(ns, "ops-console")}))
		Eventually(approvedIdentities(ns, "db-admins-only"), timeout, interval).Should(Equal([]string{"serviceaccount/" + ns + "/ops-console"}),
			"the first translation records what it approved")
	})

	It("keeps a pod relabelled through pods/status out, says who did it, and does not let the pod editor approve", func() {
		attacker := attackerClient("pod-editor-"+ns, ns, podEditorRules...)
		reporting := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reporting-0"}}
		relabelAs(attacker, reporting, admins, "evil-kubelet", true)

		pendingSA := "serviceaccount/" + ns + "/reporting"
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(And(
			havePending(pendingSA),
			HaveField("PendingIdentities", ContainElement(HaveField("Sources", ContainElement(And(
				HaveField("Kind", "Pod"), HaveField("Name", "reporting-0"),
				HaveField("Labels", Equal(admins)),
				HaveField("FieldManagers", ContainElement("evil-kubelet (status)")),
			))))),
			HaveField("Findings", ContainElement(And(HaveField("Type", "IdentityPending"), HaveField("Severity", policyv1alpha1.Severity("Warning"))))),
			haveCondition("Exact", metav1.ConditionFalse, "IdentityPending"),
			haveCondition("Ready", metav1.ConditionTrue, "Applied"),
		))
		Eventually(eventNotes(ns, "NetworkPolicy", "db-admins-only", "IdentityPending"), timeout, interval).Should(ConsistOf(And(
			ContainSubstring("reporting-0"), ContainSubstring(pendingSA), ContainSubstring("role=admin"), ContainSubstring("evil-kubelet (status)"),
		)))
		Expect(gauge("netpol2authz_pending_identities", map[string]string{"namespace": ns})).To(Equal(1.0))

		By("the principal never reaches the AuthorizationPolicy")
		Consistently(principalsOf(ns, "netpol-db-admins-only"), consistentlyFor, interval).Should(Equal([]string{principal(ns, "ops-console")}))

		By("the pod editor cannot approve: identityapprovals are outside its RBAC")
		_, err := cli.Approve(ctx, attacker, client.ObjectKey{Namespace: ns, Name: "db-admins-only"}, []translate.Identity{translate.Identity(pendingSA)}, false)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "approve as the pod editor: %v", err)
		Expect(attacker.Delete(ctx, &policyv1alpha1.IdentityApproval{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-admins-only"}})).To(Satisfy(apierrors.IsForbidden))
		Expect(attacker.Delete(ctx, nptKey(ns, "db-admins-only"))).To(Satisfy(apierrors.IsForbidden))

		By("approved by a reviewer bound to the shipped approver role: written at once")
		key := client.ObjectKey{Namespace: ns, Name: "db-admins-only"}
		reviewer := attackerClient("reviewer-"+ns, ns, shippedRules("../config/rbac/identityapproval_approver_role.yaml")...)
		Expect(cli.Approve(ctx, reviewer, key, nil, true)).To(ConsistOf(translate.Identity(pendingSA)))
		Eventually(principalsOf(ns, "netpol-db-admins-only"), timeout, interval).Should(Equal([]string{principal(ns, "ops-console"), principal(ns, "reporting")}))
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(havePending())
		Eventually(func() float64 { return gauge("netpol2authz_pending_identities", map[string]string{"namespace": ns}) }, timeout, interval).Should(BeZero())

		By("revoked: removed at once, and pending again")
		Expect(cli.Revoke(ctx, k8s, key, []translate.Identity{translate.Identity(pendingSA)})).To(HaveLen(1))
		Eventually(principalsOf(ns, "netpol-db-admins-only"), timeout, interval).Should(Equal([]string{principal(ns, "ops-console")}))
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(havePending(pendingSA))

		By("approved, then relabelled out: removed at once, the approval stays")
		Expect(cli.Approve(ctx, k8s, key, []translate.Identity{translate.Identity(pendingSA)}, false)).To(HaveLen(1))
		Eventually(principalsOf(ns, "netpol-db-admins-only"), timeout, interval).Should(HaveLen(2))
		relabel(reporting, map[string]string{"app": "reporting"})
		Eventually(principalsOf(ns, "netpol-db-admins-only"), timeout, interval).Should(Equal([]string{principal(ns, "ops-console")}))
		Expect(approvedIdentities(ns, "db-admins-only")()).To(ContainElement(pendingSA))
		Expect(translationStatus(ns, "db-admins-only")()).To(havePending())
	})

	It("warns once per identity that becomes pending, however many at a time", func() {
		// events.k8s.io merges the Events of one object with the same
		// reason into one series whatever their notes, unless their
		// related objects differ: each identity must keep its own Event.
		newPod(ns, "batch-0", map[string]string{"app": "batch"}, "batch")
		relabel(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reporting-0"}}, admins)
		relabel(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "batch-0"}}, admins)
		reporting, batch := "serviceaccount/"+ns+"/reporting", "serviceaccount/"+ns+"/batch"
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(havePending(batch, reporting))
		Eventually(eventNotes(ns, "NetworkPolicy", "db-admins-only", "IdentityPending"), timeout, interval).Should(ConsistOf(
			And(ContainSubstring(reporting), ContainSubstring("reporting-0")),
			And(ContainSubstring(batch), ContainSubstring("batch-0")),
		))
	})

	It("keeps a namespace relabelled into a namespaceSelector out", func() {
		peerLabel := map[string]string{"netpol2authz-test/ops-of": ns}
		newAllowPolicy(ns, "metrics", map[string]string{"app": "db"}, 9187, peerPodsIn(peerLabel, map[string]string{"app": "scraper"}))
		newAllowPolicy(ns, "ops-namespaces", map[string]string{"app": "db"}, 9090,
			peerNamespaces(peerLabel))
		Eventually(approvedIdentities(ns, "ops-namespaces"), timeout, interval).Should(BeEmpty())
		Eventually(approvedIdentities(ns, "metrics"), timeout, interval).Should(BeEmpty())

		other := newNamespace("review-other")
		newPod(other, "scraper-0", map[string]string{"app": "scraper"}, "scraper")
		nsEditor := attackerClient("ns-editor-"+ns, "", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "patch"}})
		relabelAs(nsEditor, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}, peerLabel, "namespace-labeller", false)

		Eventually(translationStatus(ns, "ops-namespaces"), timeout, interval).Should(And(
			havePending("namespace/"+other),
			HaveField("PendingIdentities", ContainElement(HaveField("Sources", ContainElement(And(
				HaveField("Kind", "Namespace"), HaveField("Name", other),
				HaveField("FieldManagers", ContainElement("namespace-labeller")))))))))
		Eventually(translationStatus(ns, "metrics"), timeout, interval).Should(havePending("serviceaccount/" + other + "/scraper"))
		Consistently(func() ([]string, error) {
			var out []string
			for _, name := range []string{"netpol-ops-namespaces", "netpol-metrics"} {
				ap, err := authzPolicy(ns, name)()
				if err != nil {
					return nil, err
				}
				for _, r := range ap.Spec.Rules {
					for _, f := range r.From {
						out = append(out, f.Source.Namespaces...)
						out = append(out, f.Source.Principals...)
					}
				}
			}
			return out, nil
		}, consistentlyFor, interval).Should(BeEmpty())
		_, err := cli.Approve(ctx, nsEditor, client.ObjectKey{Namespace: ns, Name: "ops-namespaces"}, []translate.Identity{translate.NamespaceIdentity(other)}, false)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "approve as the namespace labeller: %v", err)

		Expect(cli.Approve(ctx, k8s, client.ObjectKey{Namespace: ns, Name: "ops-namespaces"}, nil, true)).To(HaveLen(1))
		Eventually(func() ([]string, error) {
			ap, err := authzPolicy(ns, "netpol-ops-namespaces")()
			if err != nil || len(ap.Spec.Rules) == 0 {
				return nil, err
			}
			return ap.Spec.Rules[0].From[0].Source.Namespaces, nil
		}, timeout, interval).Should(Equal([]string{other}))
	})

	It("stays silent when an approved ServiceAccount scales out", func() {
		waitSettled()
		before := op.WritesIn(ns)
		Expect(before).To(BeNumerically(">", 0), "the writes of the first translation were counted")
		newPod(ns, "ops-console-1", admins, "ops-console")
		newPod(ns, "ops-console-2", admins, "ops-console")
		Consistently(func() int64 { return op.WritesIn(ns) }, steadyFor, interval).Should(Equal(before), "no write for a new pod of an approved identity")
		Expect(translationStatus(ns, "db-admins-only")()).To(havePending())
	})

	It("does not approve on a restart, nor when the generated objects are deleted", func() {
		relabel(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reporting-0"}}, admins)
		pendingSA := "serviceaccount/" + ns + "/reporting"
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(havePending(pendingSA))

		By("the operator restarts")
		op.Stop()
		op = startOperator()
		waitSettled()
		Expect(principalsOf(ns, "netpol-db-admins-only")()).To(Equal([]string{principal(ns, "ops-console")}))
		Expect(translationStatus(ns, "db-admins-only")()).To(havePending(pendingSA))

		By("someone deletes the AuthorizationPolicy and the NetworkPolicyTranslation")
		ap, err := authzPolicy(ns, "netpol-db-admins-only")()
		Expect(err).NotTo(HaveOccurred())
		npt := nptKey(ns, "db-admins-only")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(npt), npt)).To(Succeed())
		Expect(k8s.Delete(ctx, ap)).To(Succeed())
		Expect(k8s.Delete(ctx, npt)).To(Succeed())
		Eventually(func() (string, error) {
			got, err := authzPolicy(ns, "netpol-db-admins-only")()
			return string(got.UID), err
		}, timeout, interval).ShouldNot(Equal(string(ap.UID)))
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(havePending(pendingSA))
		Consistently(principalsOf(ns, "netpol-db-admins-only"), consistentlyFor, interval).Should(Equal([]string{principal(ns, "ops-console")}))
	})

	It("leaves a pending identity out of dry-run policies too", func() {
		optIn(ns, "dry-run")
		Eventually(authzPolicy(ns, "netpol-db-admins-only"), timeout, interval).Should(HaveField("Annotations", HaveKeyWithValue("istio.io/dry-run", "true")))
		relabel(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reporting-0"}}, admins)
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(havePending("serviceaccount/" + ns + "/reporting"))
		Consistently(principalsOf(ns, "netpol-db-admins-only"), consistentlyFor, interval).Should(Equal([]string{principal(ns, "ops-console")}))
	})

	It("follows every relabel at once in follow mode", func() {
		setIdentity(ns, "follow")
		relabel(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reporting-0"}}, admins)
		Eventually(principalsOf(ns, "netpol-db-admins-only"), timeout, interval).Should(Equal([]string{principal(ns, "ops-console"), principal(ns, "reporting")}))
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(And(havePending(), HaveField("Identity", policyv1alpha1.IdentityMode("follow"))))
	})

	It("warns about an invalid identity annotation and keeps what was generated", func() {
		before, err := authzPolicy(ns, "netpol-db-admins-only")()
		Expect(err).NotTo(HaveOccurred())
		setIdentity(ns, "folow")
		Eventually(translationStatus(ns, "db-admins-only"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionFalse, "InvalidAnnotation"))
		Eventually(eventNotes("default", "Namespace", ns, "InvalidAnnotation"), timeout, interval).Should(ContainElement(ContainSubstring("netpol2authz.io/identity")))
		relabel(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reporting-0"}}, admins)
		Consistently(authzPolicy(ns, "netpol-db-admins-only"), consistentlyFor, interval).Should(HaveField("ResourceVersion", before.ResourceVersion))
	})
})

// peerNamespaces is a peer selecting every pod of the namespaces
// matching nsLabels.
func peerNamespaces(nsLabels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels}}
}
