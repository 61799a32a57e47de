package crash_test

import (
	"fmt"
	"os"
	"slices"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// The churn of the other kinds the operator reads: Services (their
// selectors, ports and use-waypoint labels), the admin network policies
// (cluster-scoped: AdminNetworkPolicies and ClusterNetworkPolicies named
// after the round, their subjects and peers scoped to the round's
// namespaces by the round label, so that rounds do not change each
// other's translations), and, the Gateway API's CRDs installed, waypoint
// Gateways: created, deleted, given and taken addresses through the status
// subresource, what they serve (istio.io/waypoint-for), and the namespace
// labels that put pods in ambient mode and behind a waypoint.

// labelRound marks the namespaces and admin policies of a round.
const labelRound = "crash.netpol2authz.io/round"

// serviceWaypointLabels: the churn's Services carry istio.io/use-waypoint
// labels of their own, unless CRASH_SERVICE_WAYPOINT=0. (They found that
// the status refused a pending waypoint identity whose source is a
// Service; IdentitySource's kind now allows Service.)
var serviceWaypointLabels = os.Getenv("CRASH_SERVICE_WAYPOINT") != "0"

// waypointName is the name of the waypoint Gateway of a namespace, which
// the use-waypoint labels name.
const waypointName = "waypoint"

func (c *churn) roundSelector() map[string]string { return map[string]string{labelRound: c.prefix} }

// servicePorts are the ports a Service draws from: targetPorts by number,
// by name (the pods' port http, whose number varies), and none (the
// port itself).
var servicePorts = []corev1.ServicePort{
	{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
	{Name: "alt", Port: 8080, TargetPort: intstr.FromInt32(8080)},
	{Name: "pg", Port: 5432},
	{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
	{Name: "web", Port: 8000, TargetPort: intstr.FromInt32(8005)},
}

// service is a random Service. It is headless: the engine reads no
// cluster IP, and envtest's Service range (a /24) would run out over many
// rounds. Single-stack: a headless Service without selector defaults to
// dual-stack, which envtest's API server refuses once a selector is
// added.
func (c *churn) service(ns, name string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, IPFamilyPolicy: new(corev1.IPFamilyPolicySingleStack)},
	}
	switch c.r.IntN(10) {
	case 0:
		// no selector: endpoints by hand
	case 1, 2:
		svc.Spec.Selector = map[string]string{"role": "admin"}
	default:
		svc.Spec.Selector = map[string]string{"app": pick(c.r, apps)}
	}
	for _, i := range c.r.Perm(len(servicePorts))[:1+c.r.IntN(2)] {
		svc.Spec.Ports = append(svc.Spec.Ports, servicePorts[i])
	}
	if w := pick(c.r, []string{"", "", waypointName, "none"}); w != "" && serviceWaypointLabels {
		svc.Labels = map[string]string{translate.LabelUseWaypoint: w}
	}
	return svc
}

func (c *churn) addService(ns string) {
	c.counter++
	svc := c.service(ns, fmt.Sprintf("svc-%d", c.counter))
	c.create(svc)
	c.logf("add service %s/%s selector=%v ports=%v labels=%v", ns, svc.Name, svc.Spec.Selector, portNames(svc), svc.Labels)
}

func portNames(svc *corev1.Service) []string {
	var out []string
	for _, p := range svc.Spec.Ports {
		out = append(out, fmt.Sprintf("%d->%s", p.Port, p.TargetPort.String()))
	}
	return out
}

func (c *churn) services() (string, []corev1.Service) {
	ns := pick(c.r, c.ns)
	var list corev1.ServiceList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	slices.SortFunc(list.Items, func(a, b corev1.Service) int { return compare(a.Name, b.Name) })
	return ns, list.Items
}

// changeService gives a Service another selector, ports and waypoint
// label.
func (c *churn) changeService() bool {
	ns, svcs := c.services()
	if len(svcs) == 0 {
		return false
	}
	svc := &svcs[c.r.IntN(len(svcs))]
	next := c.service(ns, svc.Name)
	c.logf("change service %s/%s selector=%v ports=%v labels=%v", ns, svc.Name, next.Spec.Selector, portNames(next), next.Labels)
	return c.update(svc, func() {
		svc.Spec.Selector, svc.Spec.Ports, svc.Labels = next.Spec.Selector, next.Spec.Ports, next.Labels
	})
}

func (c *churn) deleteService() bool {
	ns, svcs := c.services()
	if len(svcs) == 0 {
		return false
	}
	svc := &svcs[c.r.IntN(len(svcs))]
	c.logf("delete service %s/%s", ns, svc.Name)
	c.delete(svc)
	return true
}

// followed waits until the operator m has caught up (its queues empty),
// then changes a Service of each namespace: events that only the Service
// watch delivers, with no restart nor change of another kind after them
// to re-translate what they change (the churn's pod, admin policy and
// Gateway changes, and every restart, mask a missed Service event).
func (c *churn) followed(m *manager) {
	Eventually(m.Idle, settleWithin, interval).Should(BeTrue(), "%s catches up", m.name)
	for _, ns := range c.ns {
		var list corev1.ServiceList
		Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		if len(list.Items) == 0 {
			c.addService(ns)
			continue
		}
		slices.SortFunc(list.Items, func(a, b corev1.Service) int { return compare(a.Name, b.Name) })
		svc := &list.Items[c.r.IntN(len(list.Items))]
		next := c.service(ns, svc.Name)
		c.logf("change service %s/%s selector=%v ports=%v labels=%v (followed)", ns, svc.Name, next.Spec.Selector, portNames(next), next.Labels)
		c.update(svc, func() {
			svc.Spec.Selector, svc.Spec.Ports = next.Spec.Selector, next.Spec.Ports
			if serviceWaypointLabels {
				svc.Labels = next.Labels
			}
		})
	}
}

// Admin network policies.

// adminPriorities are few, so that two policies sometimes share one
// (AdminPolicyConflict).
var adminPriorities = []int32{10, 20, 20, 30}

// adminSubject draws the pods an admin policy applies to: namespaces or
// pods of the round.
func (c *churn) adminSubject() (namespaces *metav1.LabelSelector, pods *metav1.LabelSelector) {
	nsSel := &metav1.LabelSelector{MatchLabels: c.roundSelector()}
	switch c.r.IntN(4) {
	case 0:
		return nsSel, nil
	case 1:
		nsSel.MatchLabels["team"] = pick(c.r, teams[:2])
		return nsSel, nil
	default:
		return nsSel, &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(c.r, apps)}}
	}
}

// adminPeer draws a source: namespaces of the round (by team, or all),
// every namespace, or pods of the round.
func (c *churn) adminPeer() (namespaces *metav1.LabelSelector, pods *metav1.LabelSelector) {
	switch c.r.IntN(6) {
	case 0:
		return &metav1.LabelSelector{}, nil
	case 1:
		return &metav1.LabelSelector{MatchLabels: map[string]string{labelRound: c.prefix, "team": pick(c.r, teams[:2])}}, nil
	case 2:
		return &metav1.LabelSelector{MatchLabels: c.roundSelector()}, &metav1.LabelSelector{MatchLabels: map[string]string{"role": "admin"}}
	default:
		return &metav1.LabelSelector{MatchLabels: c.roundSelector()}, &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(c.r, apps)}}
	}
}

// adminAction draws Allow (mostly), Deny or Pass.
func (c *churn) adminAction() string {
	return pick(c.r, []string{"Allow", "Allow", "Allow", "Deny", "Deny", "Pass"})
}

// anpSpec is a random AdminNetworkPolicy spec.
func (c *churn) anpSpec() netpolv1alpha1.AdminNetworkPolicySpec {
	spec := netpolv1alpha1.AdminNetworkPolicySpec{Priority: pick(c.r, adminPriorities)}
	if ns, pods := c.adminSubject(); pods == nil {
		spec.Subject.Namespaces = ns
	} else {
		spec.Subject.Pods = &netpolv1alpha1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *pods}
	}
	for range 1 + c.r.IntN(2) {
		rule := netpolv1alpha1.AdminNetworkPolicyIngressRule{Action: netpolv1alpha1.AdminNetworkPolicyRuleAction(c.adminAction())}
		if ns, pods := c.adminPeer(); pods == nil {
			rule.From = []netpolv1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: ns}}
		} else {
			rule.From = []netpolv1alpha1.AdminNetworkPolicyIngressPeer{{Pods: &netpolv1alpha1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *pods}}}
		}
		switch c.r.IntN(5) {
		case 0:
			rule.Ports = &[]netpolv1alpha1.AdminNetworkPolicyPort{{PortNumber: &netpolv1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 8080}}}
		case 1:
			rule.Ports = &[]netpolv1alpha1.AdminNetworkPolicyPort{{NamedPort: new("http")}}
		case 2:
			rule.Ports = &[]netpolv1alpha1.AdminNetworkPolicyPort{{PortRange: &netpolv1alpha1.PortRange{Protocol: corev1.ProtocolTCP, Start: 8000, End: 8010}}}
		}
		rule.Name = fmt.Sprintf("rule-%d", len(spec.Ingress))
		spec.Ingress = append(spec.Ingress, rule)
	}
	return spec
}

// cnpSpec is a random ClusterNetworkPolicy spec, of either tier.
func (c *churn) cnpSpec() netpolv1beta1.ClusterNetworkPolicySpec {
	spec := netpolv1beta1.ClusterNetworkPolicySpec{
		Tier: pick(c.r, []netpolv1beta1.Tier{netpolv1beta1.AdminTier, netpolv1beta1.AdminTier, netpolv1beta1.BaselineTier}), Priority: pick(c.r, adminPriorities),
	}
	if ns, pods := c.adminSubject(); pods == nil {
		spec.Subject.Namespaces = ns
	} else {
		spec.Subject.Pods = &netpolv1beta1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *pods}
	}
	for range 1 + c.r.IntN(2) {
		action := map[string]netpolv1beta1.ClusterNetworkPolicyRuleAction{
			"Allow": netpolv1beta1.ClusterNetworkPolicyRuleActionAccept, "Deny": netpolv1beta1.ClusterNetworkPolicyRuleActionDeny, "Pass": netpolv1beta1.ClusterNetworkPolicyRuleActionPass,
		}[c.adminAction()]
		if spec.Tier == netpolv1beta1.BaselineTier && action == netpolv1beta1.ClusterNetworkPolicyRuleActionPass {
			action = netpolv1beta1.ClusterNetworkPolicyRuleActionDeny // no Pass in the baseline tier
		}
		rule := netpolv1beta1.ClusterNetworkPolicyIngressRule{Name: fmt.Sprintf("rule-%d", len(spec.Ingress)), Action: action}
		if ns, pods := c.adminPeer(); pods == nil {
			rule.From = []netpolv1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: ns}}
		} else {
			rule.From = []netpolv1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &netpolv1beta1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *pods}}}
		}
		switch c.r.IntN(4) {
		case 0:
			rule.Protocols = []netpolv1beta1.ClusterNetworkPolicyProtocol{{TCP: &netpolv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &netpolv1beta1.Port{Number: 8080}}}}
		case 1:
			// (the standard channel's CRD has no destinationNamedPort)
			rule.Protocols = []netpolv1beta1.ClusterNetworkPolicyProtocol{{TCP: &netpolv1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &netpolv1beta1.Port{Range: &netpolv1beta1.PortRange{Start: 8000, End: 8010}}}}}
		}
		spec.Ingress = append(spec.Ingress, rule)
	}
	return spec
}

// addAdminPolicy creates an AdminNetworkPolicy or a ClusterNetworkPolicy,
// named after the round.
func (c *churn) addAdminPolicy() {
	c.counter++
	meta := metav1.ObjectMeta{Name: fmt.Sprintf("%s-admin-%d", c.prefix, c.counter), Labels: c.roundSelector()}
	if c.r.IntN(2) == 0 {
		p := &netpolv1alpha1.AdminNetworkPolicy{ObjectMeta: meta, Spec: c.anpSpec()}
		c.create(p)
		c.logf("add adminnetworkpolicy %s %+v", p.Name, p.Spec)
		return
	}
	p := &netpolv1beta1.ClusterNetworkPolicy{ObjectMeta: meta, Spec: c.cnpSpec()}
	c.create(p)
	c.logf("add clusternetworkpolicy %s %+v", p.Name, p.Spec)
}

// adminPolicies lists the round's admin policies, sorted by name.
func (c *churn) adminPolicies() []client.Object {
	var out []client.Object
	var anps netpolv1alpha1.AdminNetworkPolicyList
	Expect(k8s.List(ctx, &anps, client.MatchingLabels(c.roundSelector()))).To(Succeed())
	for i := range anps.Items {
		out = append(out, &anps.Items[i])
	}
	var cnps netpolv1beta1.ClusterNetworkPolicyList
	Expect(k8s.List(ctx, &cnps, client.MatchingLabels(c.roundSelector()))).To(Succeed())
	for i := range cnps.Items {
		out = append(out, &cnps.Items[i])
	}
	slices.SortFunc(out, func(a, b client.Object) int { return compare(a.GetName(), b.GetName()) })
	return out
}

// changeAdminPolicy gives an admin policy of the round another spec.
func (c *churn) changeAdminPolicy() bool {
	ps := c.adminPolicies()
	if len(ps) == 0 {
		return false
	}
	switch p := ps[c.r.IntN(len(ps))].(type) {
	case *netpolv1alpha1.AdminNetworkPolicy:
		spec := c.anpSpec()
		c.logf("change adminnetworkpolicy %s %+v", p.Name, spec)
		return c.update(p, func() { p.Spec = spec })
	case *netpolv1beta1.ClusterNetworkPolicy:
		spec := c.cnpSpec()
		c.logf("change clusternetworkpolicy %s %+v", p.Name, spec)
		return c.update(p, func() { p.Spec = spec })
	}
	return false
}

// replaceAdminPolicy deletes an admin policy of the round (when it has
// two or more) or adds one (when it has fewer than three).
func (c *churn) replaceAdminPolicy() bool {
	ps := c.adminPolicies()
	if len(ps) >= 2 && (len(ps) >= 3 || c.r.IntN(2) == 0) {
		p := ps[c.r.IntN(len(ps))]
		c.logf("delete %T %s", p, p.GetName())
		c.delete(p)
		return true
	}
	c.addAdminPolicy()
	return true
}

// Waypoints.

// newGateway is an Istio waypoint Gateway (class istio-waypoint, an HBONE
// listener on 15008), without addresses until addressWaypoint.
func newGateway(ns string) *gatewayv1.Gateway {
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: waypointName, Namespace: ns},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: translate.WaypointClass,
			Listeners:        []gatewayv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}},
		},
	}
}

// addWaypoint creates the waypoint Gateway of ns and a pod of it (its
// gateway-name label, its ServiceAccount, no sidecar), addressed or not.
func (c *churn) addWaypoint(ns string, addressed bool) {
	gw := newGateway(ns)
	c.create(gw)
	if addressed {
		c.setAddresses(gw, true)
	}
	c.counter++
	p := c.newPod(ns, fmt.Sprintf("waypoint-%d", c.counter), map[string]string{translate.LabelGatewayName: waypointName}, waypointName)
	p.Spec.Containers = p.Spec.Containers[:1]
	c.createPod(p)
	c.logf("add waypoint %s/%s addressed=%v, pod %s", ns, gw.Name, addressed, p.Name)
}

// setAddresses writes status.addresses (or clears them) as istiod does
// once the waypoint's pod is ready (or gone).
func (c *churn) setAddresses(gw *gatewayv1.Gateway, addressed bool) bool {
	err := k8s.Get(ctx, client.ObjectKeyFromObject(gw), gw)
	if apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).NotTo(HaveOccurred())
	gw.Status.Addresses = nil
	if addressed {
		gw.Status.Addresses = []gatewayv1.GatewayStatusAddress{{Type: new(gatewayv1.HostnameAddressType), Value: gw.Name + "." + gw.Namespace + ".svc.cluster.local"}}
	}
	err = k8s.Status().Update(ctx, gw)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).NotTo(HaveOccurred(), "updating the status of %s", trackKey(gw))
	c.track(gw)
	return true
}

// toggleWaypoint creates the waypoint of a namespace of the round, or
// deletes it (its pod stays, an ordinary pod then).
func (c *churn) toggleWaypoint() bool {
	if !gatewaysServed {
		return false
	}
	ns := pick(c.r, c.ns)
	gw := newGateway(ns)
	err := k8s.Get(ctx, client.ObjectKeyFromObject(gw), gw)
	if apierrors.IsNotFound(err) {
		c.addWaypoint(ns, c.r.IntN(2) == 0)
		return true
	}
	Expect(err).NotTo(HaveOccurred())
	c.logf("delete waypoint %s/%s", ns, gw.Name)
	c.delete(gw)
	return true
}

// gateway returns the waypoint of a random namespace of the round, or
// nil.
func (c *churn) gateway() *gatewayv1.Gateway {
	if !gatewaysServed {
		return nil
	}
	gw := newGateway(pick(c.r, c.ns))
	err := k8s.Get(ctx, client.ObjectKeyFromObject(gw), gw)
	if apierrors.IsNotFound(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	return gw
}

// addressWaypoint gives a waypoint addresses, or takes them.
func (c *churn) addressWaypoint() bool {
	gw := c.gateway()
	if gw == nil {
		return false
	}
	addressed := len(gw.Status.Addresses) == 0
	c.logf("waypoint %s/%s addressed=%v", gw.Namespace, gw.Name, addressed)
	return c.setAddresses(gw, addressed)
}

// waypointFor changes what a waypoint serves.
func (c *churn) waypointFor() bool {
	gw := c.gateway()
	if gw == nil {
		return false
	}
	what := pick(c.r, []string{"service", "workload", "all", "none", ""})
	c.logf("waypoint %s/%s waypoint-for=%q", gw.Namespace, gw.Name, what)
	return c.update(gw, func() {
		if what == "" {
			delete(gw.Labels, translate.LabelWaypointFor)
			return
		}
		if gw.Labels == nil {
			gw.Labels = map[string]string{}
		}
		gw.Labels[translate.LabelWaypointFor] = what
	})
}

// labelMesh sets or removes a namespace's istio.io/dataplane-mode (ambient
// or not) or istio.io/use-waypoint.
func (c *churn) labelMesh() bool {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pick(c.r, c.ns)}}
	name, value := "istio.io/dataplane-mode", pick(c.r, []string{"ambient", "ambient", ""})
	if c.r.IntN(2) == 0 {
		name, value = translate.LabelUseWaypoint, pick(c.r, []string{waypointName, waypointName, "none", ""})
	}
	c.logf("label namespace %s %s=%q", ns.Name, name, value)
	return c.update(ns, func() {
		if value == "" {
			delete(ns.Labels, name)
		} else {
			ns.Labels[name] = value
		}
	})
}
