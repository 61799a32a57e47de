package controllers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/netpol2authz/netpol2authz/controllers"
	"github.com/netpol2authz/netpol2authz/internal/cli"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// newService creates a Service selecting pods by labels, each port
// targeting the same container port.
func newService(ns, name string, selector map[string]string, ports ...int32) *corev1.Service {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{Selector: selector}}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("tcp-%d", p), Port: p, TargetPort: intstr.FromInt32(p)})
	}
	Expect(k8s.Create(ctx, svc)).To(Succeed())
	return svc
}

// newWaypoint creates an Istio waypoint Gateway (class istio-waypoint,
// an HBONE listener on 15008) without status: istiod has not given it
// addresses yet.
func newWaypoint(ns, name string) *gatewayv1.Gateway {
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "istio-waypoint",
			Listeners:        []gatewayv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}},
		},
	}
	// The CRD is established; its resource may take a moment to serve.
	Eventually(func() error { return k8s.Create(ctx, gw) }, timeout, interval).Should(Succeed())
	return gw
}

// addressWaypoint writes status.addresses as istiod does once the
// waypoint's pod is ready: from then on it is a waypoint.
func addressWaypoint(gw *gatewayv1.Gateway) {
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(gw), gw)).To(Succeed())
	gw.Status.Addresses = []gatewayv1.GatewayStatusAddress{{Type: new(gatewayv1.HostnameAddressType), Value: gw.Name + "." + gw.Namespace + ".svc.cluster.local"}}
	Expect(k8s.Status().Update(ctx, gw)).To(Succeed())
}

// setNamespaceLabel sets (value non-nil) or removes (nil) a namespace label.
func setNamespaceLabel(name, key string, value *string) {
	ns := &corev1.Namespace{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
	if value == nil {
		delete(ns.Labels, key)
	} else {
		ns.Labels[key] = *value
	}
	Expect(k8s.Update(ctx, ns)).To(Succeed())
}

// generatedPolicies returns a function listing the names of the
// AuthorizationPolicies generated in namespace ns, sorted.
func generatedPolicies(ns string) func() ([]string, error) {
	return func() ([]string, error) {
		var list securityv1.AuthorizationPolicyList
		if err := k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/managed-by": "netpol2authz"}); err != nil {
			return nil, err
		}
		out := []string{}
		for _, ap := range list.Items {
			out = append(out, ap.Name)
		}
		slices.Sort(out)
		return out, nil
	}
}

// boundTo matches an AuthorizationPolicy bound to Service svc (targetRefs,
// no selector) whose rules' sources and ports are these.
func boundTo(svc string, from []string, ports ...string) OmegaMatcher {
	return WithTransform(func(ap *securityv1.AuthorizationPolicy) []any {
		var refs []string
		for _, r := range ap.Spec.TargetRefs {
			refs = append(refs, r.Kind+"/"+r.Name)
		}
		got := []string{}
		for _, r := range ap.Spec.Rules {
			for _, to := range r.To {
				got = append(got, to.Operation.Ports...)
			}
		}
		slices.Sort(got)
		return []any{refs, ap.Spec.Selector == nil, principals(ap), got}
	}, Equal([]any{[]string{"Service/" + svc}, true, from, append([]string{}, ports...)}))
}

// verifyKubeconfig is a kubeconfig of a user who may read everything, for
// `netpol2authz verify --cluster`.
func verifyKubeconfig() string {
	user, err := env.AddUser(envtest.User{Name: "waypoint-verifier", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	data, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	return path
}

// deniedByIstio runs `netpol2authz verify --cluster --existing -n ns` on
// the cluster and returns its differences where Istio denies connections
// the NetworkPolicies allow: the AuthorizationPolicies in place, through
// every path verify models (pod IPs, Service addresses, waypoints).
func deniedByIstio(kubeconfig, ns string) []string {
	var out, errOut bytes.Buffer
	code := cli.RunVerify([]string{"--cluster", "--kubeconfig", kubeconfig, "--existing", "-n", ns, "-o", "json"}, nil, &out, &errOut)
	Expect(code).To(BeElementOf(cli.ExitOK, cli.ExitUnexplained), errOut.String())
	var rep cli.VerifyReport
	Expect(json.Unmarshal(out.Bytes(), &rep)).To(Succeed())
	Expect(rep.Summary.AuthorizationPolicies).To(BeNumerically(">", 0), "verify checked the policies in place")
	denied := []string{}
	for _, d := range rep.Differences {
		if d.Direction == "IstioDeniesMore" {
			b, err := json.Marshal(d)
			Expect(err).NotTo(HaveOccurred())
			denied = append(denied, string(b))
		}
	}
	return denied
}

var _ = Describe("Waypoints (ambient)", func() {
	It("follow the waypoints of a namespace: Service policies and the waypoint's principal while one is named, none without, and the operator carries on without the Gateway API", func() {
		op.Stop()
		op = startOperatorWithInstalledRBAC("waypoint-operator", controllers.Settings{IstioNamespace: istioNamespace, AdminPolicyDiscoveryPeriod: adminDiscoveryPeriod})
		DeferCleanup(func() { op.Stop(); op = startOperator() })
		kubeconfig := verifyKubeconfig()

		ns := optedInNamespace("waypoint", "enforce")
		setIdentity(ns, "follow")
		setNamespaceLabel(ns, "istio.io/dataplane-mode", new("ambient"))
		newPod(ns, "db-0", map[string]string{"app": "db", "tier": "backend"}, "db", withoutSidecar)
		newPod(ns, "cache-0", map[string]string{"app": "cache", "tier": "backend"}, "cache", withoutSidecar)
		newPod(ns, "web-0", map[string]string{"app": "web"}, "web", withoutSidecar)
		newService(ns, "db", map[string]string{"app": "db"}, 5432)
		newService(ns, "backend", map[string]string{"tier": "backend"}, 5432, 6379)
		np := newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "web"}))
		web := principal(ns, "web")

		By("without the Gateway API's CRDs, the operator translates as before")
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(haveCondition("Ready", metav1.ConditionTrue, "Applied"))
		Expect(generatedPolicies(ns)()).To(Equal([]string{"netpol-db"}))
		Expect(principalsOf(ns, "netpol-db")()).To(Equal([]string{web}))
		Expect(deniedByIstio(kubeconfig, ns)).To(BeEmpty())

		By("the CRDs are installed and the namespace names a waypoint that has no address yet: the Service policies are written ahead")
		crds := installCRDs(testenv.GatewayAPICRDs, &gatewayv1.GatewayList{})
		gw := newWaypoint(ns, "waypoint")
		setNamespaceLabel(ns, "istio.io/use-waypoint", new("waypoint"))
		Eventually(authzPolicy(ns, "netpol-db-svc-db"), timeout, interval).Should(boundTo("db", []string{web}, "5432"))
		// backend also fronts cache-0, which no NetworkPolicy isolates:
		// permissive lets any source through the Service (WaypointInPath).
		Eventually(authzPolicy(ns, "netpol-db-svc-backend"), timeout, interval).Should(WithTransform(func(ap *securityv1.AuthorizationPolicy) int {
			return len(ap.Spec.Rules)
		}, Equal(1)))
		Expect(authzPolicy(ns, "netpol-db-svc-backend")()).To(boundTo("backend", []string{}))
		Eventually(findingTypeList(ns, "db"), timeout, interval).Should(ContainElements("WaypointApplies", "WaypointInPath"))

		By("istiod gives the waypoint addresses: ztunnel admits its principal, and verify finds nothing the NetworkPolicy allows denied")
		addressWaypoint(gw)
		waypoint := principal(ns, "waypoint")
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{waypoint, web}))
		waitSettled()
		Expect(deniedByIstio(kubeconfig, ns)).To(BeEmpty())
		Expect(translationStatus(ns, "db")()).To(haveCondition("Ready", metav1.ConditionTrue, "Applied"))

		By("another NetworkPolicy isolates cache-0: the backend Service's policy carries the NetworkPolicy's rules")
		newAllowPolicy(ns, "cache", map[string]string{"app": "cache"}, 6379, peerPods(map[string]string{"app": "web"}))
		Eventually(authzPolicy(ns, "netpol-db-svc-backend"), timeout, interval).Should(boundTo("backend", []string{web}, "5432"))
		Eventually(authzPolicy(ns, "netpol-cache-svc-backend"), timeout, interval).Should(boundTo("backend", []string{web}, "6379"))
		waitSettled()
		Expect(deniedByIstio(kubeconfig, ns)).To(BeEmpty())

		By("the Service's port changes: its policy follows")
		svc := &corev1.Service{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, svc)).To(Succeed())
		svc.Spec.Ports = []corev1.ServicePort{{Name: "pg", Port: 15432, TargetPort: intstr.FromInt32(5432)}}
		Expect(k8s.Update(ctx, svc)).To(Succeed())
		Eventually(authzPolicy(ns, "netpol-db-svc-db"), timeout, interval).Should(boundTo("db", []string{web}, "15432"))

		By("the namespace no longer names the waypoint: the policies change back")
		setNamespaceLabel(ns, "istio.io/use-waypoint", nil)
		Eventually(generatedPolicies(ns), timeout, interval).Should(Equal([]string{"netpol-cache", "netpol-db"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{web}))
		waitSettled()
		Expect(deniedByIstio(kubeconfig, ns)).To(BeEmpty())

		By("named again, then the Gateway is deleted: the policies change back")
		setNamespaceLabel(ns, "istio.io/use-waypoint", new("waypoint"))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{waypoint, web}))
		Eventually(generatedPolicies(ns), timeout, interval).Should(ContainElement("netpol-db-svc-db"))
		Expect(k8s.Delete(ctx, gw)).To(Succeed())
		Eventually(generatedPolicies(ns), timeout, interval).Should(Equal([]string{"netpol-cache", "netpol-db"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{web}))

		By("a waypoint again, then the CRDs are deleted (the Gateway with them): what it brought goes, and the operator carries on")
		addressWaypoint(newWaypoint(ns, "waypoint"))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{waypoint, web}))
		uninstallCRDs(crds, &gatewayv1.GatewayList{})
		Eventually(generatedPolicies(ns), timeout, interval).Should(Equal([]string{"netpol-cache", "netpol-db"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{web}))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(np), np)).To(Succeed())
		port := intstr.FromInt32(5433)
		np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &port}}
		Expect(k8s.Update(ctx, np)).To(Succeed())
		Eventually(portsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{"5433"}))
		Expect(op.done).NotTo(BeClosed(), "the operator is still running")
	})
})

var _ = Describe("Waypoints under identity review", func() {
	It("hold back a waypoint that someone who can only edit Services routes traffic through, and name the Service and its editor", func() {
		op.Stop()
		op = startOperatorWithInstalledRBAC("waypoint-review-operator", controllers.Settings{IstioNamespace: istioNamespace, AdminPolicyDiscoveryPeriod: adminDiscoveryPeriod})
		DeferCleanup(func() { op.Stop(); op = startOperator() })
		installCRDs(testenv.GatewayAPICRDs, &gatewayv1.GatewayList{})

		ns := optedInNamespace("waypoint-review", "enforce")
		setNamespaceLabel(ns, "istio.io/dataplane-mode", new("ambient"))
		newPod(ns, "db-0", map[string]string{"app": "db"}, "db", withoutSidecar)
		newPod(ns, "web-0", map[string]string{"app": "web"}, "web", withoutSidecar)
		svc := newService(ns, "db", map[string]string{"app": "db"}, 5432)
		addressWaypoint(newWaypoint(ns, "waypoint"))
		web, waypoint := principal(ns, "web"), principal(ns, "waypoint")

		By("the first translation, with no use-waypoint label, approves web only")
		newAllowPolicy(ns, "db", map[string]string{"app": "db"}, 5432, peerPods(map[string]string{"app": "web"}))
		Eventually(principalsOf(ns, "netpol-db"), timeout, interval).Should(Equal([]string{web}))
		Eventually(approvedIdentities(ns, "db"), timeout, interval).Should(ConsistOf("serviceaccount/" + ns + "/web"))

		By("a user who may only patch Services names the waypoint on the Service")
		attacker := attackerClient("svc-editor-"+ns, ns, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "patch"}})
		relabelAs(attacker, svc, map[string]string{"istio.io/use-waypoint": "waypoint"}, "svc-editor", false)

		By("the waypoint's identity is pending: ztunnel does not admit it, and the status names the Service and who labelled it")
		Eventually(translationStatus(ns, "db"), timeout, interval).Should(havePending("serviceaccount/" + ns + "/waypoint"))
		st, err := translationStatus(ns, "db")()
		Expect(err).NotTo(HaveOccurred())
		Expect(st.PendingIdentities[0].Sources).To(ContainElement(And(
			HaveField("Kind", "Service"), HaveField("Namespace", ns), HaveField("Name", "db"),
			HaveField("FieldManagers", ContainElement("svc-editor")))))
		waitSettled()
		Expect(principalsOf(ns, "netpol-db")()).NotTo(ContainElement(waypoint))
		Expect(approvedIdentities(ns, "db")()).NotTo(ContainElement("serviceaccount/" + ns + "/waypoint"))
	})
})
