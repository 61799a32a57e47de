package verify

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// gen grows a random cluster from bytes. Its vocabularies are small so that
// selectors match pods, ServiceAccounts are shared, pod addresses collide
// and fall into ipBlocks, and named ports differ between pods: the places
// where a translation can be inexact.
type gen struct {
	b []byte
	i int
}

func (g *gen) more() bool { return g.i < len(g.b) }

func (g *gen) next() int {
	if g.i >= len(g.b) {
		return 0
	}
	v := int(g.b[g.i])
	g.i++
	return v
}

func (g *gen) pick(options ...string) string { return options[g.next()%len(options)] }
func (g *gen) pickInt(options ...int) int    { return options[g.next()%len(options)] }
func (g *gen) bit() bool                     { return g.next()%2 == 1 }

var (
	genNamespaces = []string{"a", "a", "b", "b", "c", "istio-system"}
	genKeys       = []string{"app", "app", "role", "istio.io/dataplane-mode"}
	genValues     = []string{"web", "db", "api", "web", "none"}
)

func (g *gen) labels(limit int) map[string]string {
	n := g.next() % (limit + 1)
	if n == 0 {
		return nil
	}
	m := map[string]string{}
	for range n {
		m[g.pick(genKeys...)] = g.pick(genValues...)
	}
	return m
}

func (g *gen) selector(exprs bool) *metav1.LabelSelector {
	ls := &metav1.LabelSelector{}
	for range g.next() % 3 {
		if ls.MatchLabels == nil {
			ls.MatchLabels = map[string]string{}
		}
		ls.MatchLabels[g.pick(genKeys...)] = g.pick(genValues...)
	}
	if !exprs {
		return ls
	}
	for range g.next() % 2 {
		op := []metav1.LabelSelectorOperator{metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn,
			metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist}[g.next()%4]
		e := metav1.LabelSelectorRequirement{Key: g.pick(genKeys...), Operator: op}
		if op == metav1.LabelSelectorOpIn || op == metav1.LabelSelectorOpNotIn {
			e.Values = []string{g.pick(genValues...)}
		}
		ls.MatchExpressions = append(ls.MatchExpressions, e)
	}
	return ls
}

func (g *gen) namespace() translate.Namespace {
	ns := translate.Namespace{Name: g.pick(genNamespaces...), Labels: map[string]string{"team": g.pick("x", "y")}}
	if g.next()%4 == 0 {
		ns.Labels["istio.io/dataplane-mode"] = "ambient"
	}
	ns.Annotations = map[string]string{}
	switch g.next() % 4 {
	case 1:
		ns.Annotations[translate.AnnotationFidelity] = "strict"
	case 2:
		ns.Annotations[translate.AnnotationFidelity] = "permissive"
	}
	if g.next()%3 == 0 {
		ns.Annotations[translate.AnnotationMode] = g.pick("dry-run", "enforce")
	}
	ns.Partial = g.next()%8 == 0
	return ns
}

func (g *gen) pod(n int) translate.Pod {
	p := translate.Pod{
		Namespace:      g.pick(genNamespaces...),
		Name:           fmt.Sprintf("p%d", n),
		Labels:         g.labels(2),
		ServiceAccount: g.pick("", "a", "b"),
		Phase:          corev1.PodPhase(g.pick("Running", "Running", "Pending", "Succeeded")),
		HostNetwork:    g.next()%16 == 0,
		Sidecar:        g.next()%4 != 0,
	}
	if g.next()%4 != 0 {
		n := byte(1 + g.next()%8)
		p.IP = netip.AddrFrom4([4]byte{10, 0, 0, n})
		if g.next()%6 == 0 {
			p.IP = netip.AddrFrom16([16]byte{0: 0xfd, 15: n})
		}
	}
	for range g.next() % 3 {
		p.Ports = append(p.Ports, translate.ContainerPort{
			Name:     g.pick("http", "metrics"),
			Port:     int32(g.pickInt(80, 8080, 9090)),
			Protocol: corev1.Protocol(g.pick("", "TCP", "UDP")),
		})
	}
	if g.next()%16 == 0 {
		p.Template = "Deployment/" + p.Namespace + "/" + p.Name
		p.IP, p.Phase = netip.Addr{}, ""
	}
	return p
}

func (g *gen) peer() networkingv1.NetworkPolicyPeer {
	var p networkingv1.NetworkPolicyPeer
	switch g.next() % 6 {
	case 0:
		// Over pod addresses (10.0.0.1-8, fd00::1-8), which some CIDRs
		// hold whole, and outside them.
		switch g.next() % 3 {
		case 0:
			p.IPBlock = &networkingv1.IPBlock{CIDR: g.pick("10.0.0.0/29", "0.0.0.0/0", "10.0.0.4/30")}
			if p.IPBlock.CIDR != "10.0.0.4/30" && g.bit() {
				p.IPBlock.Except = []string{"10.0.0.4/30"}
			}
		case 1:
			p.IPBlock = &networkingv1.IPBlock{CIDR: g.pick("fd00::/125", "::/0", "fd00::/8")}
			if g.bit() {
				p.IPBlock.Except = []string{g.pick("fd00::4/126", "fd00::/120")}
			}
		default:
			p.IPBlock = &networkingv1.IPBlock{CIDR: g.pick("192.0.2.0/24", "0.0.0.0/1", "10.0.0.0/8", "10.0.0.1/32", "192.0.2.7/32")}
			if strings.HasSuffix(p.IPBlock.CIDR, "/32") {
				break
			}
			if g.bit() {
				p.IPBlock.Except = []string{g.pick("10.0.0.0/24", "192.0.2.128/25")}
			}
		}
	case 1, 2:
		p.PodSelector = g.selector(true)
	case 3:
		p.NamespaceSelector = g.selector(false)
		if g.bit() {
			p.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": g.pick("x", "y")}}
		}
	case 4:
		p.PodSelector = g.selector(true)
		p.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": g.pick(genNamespaces...)}}
	default:
		p.PodSelector = &metav1.LabelSelector{}
		if g.bit() {
			p.NamespaceSelector = &metav1.LabelSelector{}
		}
	}
	return p
}

func (g *gen) port() networkingv1.NetworkPolicyPort {
	var p networkingv1.NetworkPolicyPort
	if g.next()%4 == 0 {
		p.Protocol = new(corev1.Protocol(g.pick("TCP", "UDP")))
	}
	switch g.next() % 5 {
	case 0:
	case 1:
		p.Port = new(intstr.FromString(g.pick("http", "metrics")))
	case 2:
		p.Port = new(intstr.FromInt32(int32(g.pickInt(80, 8080, 9090))))
	default:
		first := int32(g.pickInt(79, 8000, 9000))
		p.Port = new(intstr.FromInt32(first))
		p.EndPort = new(first + int32(g.pickInt(1, 100, 30000)))
	}
	return p
}

func (g *gen) networkPolicy(n int) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{}
	np.Namespace = g.pick(genNamespaces...)
	np.Name = fmt.Sprintf("np%d", n)
	np.Spec.PodSelector = *g.selector(true)
	switch g.next() % 5 {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	for range g.next() % 3 {
		var r networkingv1.NetworkPolicyIngressRule
		for range g.next() % 3 {
			r.From = append(r.From, g.peer())
		}
		for range g.next() % 3 {
			r.Ports = append(r.Ports, g.port())
		}
		np.Spec.Ingress = append(np.Spec.Ingress, r)
	}
	if g.next()%3 == 0 {
		var r networkingv1.NetworkPolicyEgressRule
		for range g.next() % 2 {
			r.To = append(r.To, g.peer())
		}
		for range g.next() % 2 {
			r.Ports = append(r.Ports, g.port())
		}
		np.Spec.Egress = append(np.Spec.Egress, r)
	}
	return np
}

// grow adds what the bytes say to c.
func (g *gen) grow(c *testCluster) {
	for g.more() {
		switch g.next() % 8 {
		case 0, 1, 2:
			c.Pods = append(c.Pods, g.pod(len(c.Pods)))
		case 3:
			c.Namespaces = append(c.Namespaces, g.namespace())
		case 4, 5:
			c.NetworkPolicies = append(c.NetworkPolicies, g.networkPolicy(len(c.NetworkPolicies)))
		case 6:
			c.Options.DefaultFidelity = translate.Fidelity(g.pick("", "strict", "permissive"))
			c.Options.DefaultMode = translate.Mode(g.pick("", "dry-run", "enforce"))
			c.Options.MaxPortRange = g.pickInt(0, 50, 1024)
		default:
			if g.next()%3 != 0 {
				c.Mesh.TrustDomain = g.pick("", "example.org")
				break
			}
			c.admin = append(c.admin, g.adminPolicy(c))
		}
	}
}

// waypoints adds to c what puts waypoints in the paths: ambient
// namespaces naming one, pods without sidecar (some naming one
// themselves), Services over the pods' labels with numbered and named
// target ports, Gateways of every traffic type (some without addresses,
// some admitting other namespaces, one of another class) and their pods.
func (g *gen) waypoints(c *testCluster) {
	for _, name := range []string{"a", "b", "c"} {
		ns := translate.Namespace{Name: name, Labels: map[string]string{"team": g.pick("x", "y")}}
		if g.next()%4 != 0 {
			ns.Labels["istio.io/dataplane-mode"] = "ambient"
		}
		if v := g.pick("wp", "wl", "all", "none", ""); v != "" {
			ns.Labels[labelUseWaypoint] = v
		}
		ns.Annotations = map[string]string{translate.AnnotationFidelity: g.pick("strict", "permissive")}
		c.Namespaces = append(c.Namespaces, ns)
	}
	for i := range c.Pods {
		p := &c.Pods[i]
		if g.next()%4 != 0 {
			p.Sidecar = false
		}
		if g.next()%6 == 0 {
			p.Labels = maps.Clone(p.Labels)
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels[labelUseWaypoint] = g.pick("wp", "wl", "all", "none")
		}
	}
	for i := range 1 + g.next()%4 {
		s := translate.Service{Namespace: g.pick("a", "b", "c"), Name: fmt.Sprintf("s%d", i),
			Selector: map[string]string{g.pick("app", "role"): g.pick(genValues...)}}
		if g.next()%3 == 0 {
			s.Labels = map[string]string{labelUseWaypoint: g.pick("wp", "wl", "all", "none")}
			if g.next()%4 == 0 {
				s.Labels[labelUseWaypointNS] = g.pick("a", "b")
			}
		}
		for range 1 + g.next()%2 {
			sp := translate.ServicePort{Port: int32(g.pickInt(80, 8080, 9090, 8000)), Protocol: corev1.Protocol(g.pick("", "", "TCP", "UDP"))}
			switch g.next() % 3 {
			case 1:
				sp.TargetPort = intstr.FromInt32(int32(g.pickInt(80, 8080, 9090)))
			case 2:
				sp.TargetPort = intstr.FromString(g.pick("http", "metrics"))
			}
			s.Ports = append(s.Ports, sp)
		}
		c.Services = append(c.Services, s)
	}
	for i := range 1 + g.next()%3 {
		gw := translate.Gateway{Namespace: g.pick("a", "b"), Name: g.pick("wp", "wl", "all"),
			ClassName: g.pick("istio-waypoint", "istio-waypoint", "istio-waypoint", "other"),
			Addressed: g.next()%4 != 0, AttachFrom: g.pick("", "", "All")}
		if v := g.pick("", "service", "workload", "all", "none"); v != "" {
			gw.Labels = map[string]string{labelWaypointFor: v}
		}
		c.Gateways = append(c.Gateways, gw)
		for k := range g.next() % 2 {
			c.Pods = append(c.Pods, translate.Pod{Namespace: gw.Namespace, Name: fmt.Sprintf("%s-%d-%d", gw.Name, i, k),
				Labels:         map[string]string{labelGatewayName: gw.Name, "istio.io/dataplane-mode": "none"},
				ServiceAccount: g.pick(gw.Name, gw.Name, "a"), Phase: corev1.PodRunning,
				IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(9 + g.next()%3)})})
		}
	}
}

// admins adds one or two admin network policies to c: with waypoints(),
// their rules then pass the waypoints too. Half are any admin policy, half
// an AdminNetworkPolicy over a namespace with waypoints whose rules
// Allow or Deny pods by the labels the NetworkPolicies and Services use.
func (g *gen) admins(c *testCluster) {
	for range 1 + g.next()%2 {
		if g.bit() {
			c.admin = append(c.admin, g.adminPolicy(c))
			continue
		}
		in := &v1alpha1.AdminNetworkPolicy{}
		in.Name = fmt.Sprintf("anpw%d", len(c.admin))
		in.Spec.Priority = int32(g.pickInt(1, 2, 3))
		in.Spec.Subject.Namespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": g.pick("a", "b")}}
		for range 1 + g.next()%2 {
			r := v1alpha1.AdminNetworkPolicyIngressRule{Action: v1alpha1.AdminNetworkPolicyRuleAction(g.pick("Allow", "Deny")), From: []v1alpha1.AdminNetworkPolicyIngressPeer{{
				Pods: &v1alpha1.NamespacedPod{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{g.pick("app", "role"): g.pick(genValues...)}}},
			}}}
			switch g.next() % 3 {
			case 1:
				r.Ports = &[]v1alpha1.AdminNetworkPolicyPort{{PortNumber: &v1alpha1.Port{Protocol: "TCP", Port: int32(g.pickInt(80, 8080, 9090))}}}
			case 2:
				r.Ports = &[]v1alpha1.AdminNetworkPolicyPort{{NamedPort: new(g.pick("http", "metrics"))}}
			}
			in.Spec.Ingress = append(in.Spec.Ingress, r)
		}
		c.admin = append(c.admin, adminpolicy.FromAdminNetworkPolicy(in))
	}
}

// adminPolicy is a random admin network policy: mostly an
// AdminNetworkPolicy of a few priorities (so that some tie), sometimes the
// BaselineAdminNetworkPolicy `default` (once), sometimes a
// ClusterNetworkPolicy of either tier, whose priorities tie with the
// others too. Their rules Allow (Accept), Deny and Pass, from pods and
// namespaces peers, on every port or numbered, named and ranged ports;
// some have egress rules, to pods, namespaces and networks.
func (g *gen) adminPolicy(c *testCluster) adminpolicy.Policy {
	kind := g.next() % 8
	if kind >= 5 && kind <= 6 && slices.ContainsFunc(c.admin, func(p adminpolicy.Policy) bool { return p.Kind == adminpolicy.KindBaselineAdminNetworkPolicy }) {
		kind = 0
	}
	switch kind {
	case 5, 6:
		in := &v1alpha1.BaselineAdminNetworkPolicy{}
		in.Name = "default"
		in.Spec.Subject.Namespaces, in.Spec.Subject.Pods = g.adminSubject()
		for range g.next() % 3 {
			r := v1alpha1.BaselineAdminNetworkPolicyIngressRule{Action: v1alpha1.BaselineAdminNetworkPolicyRuleAction(g.pick("Allow", "Deny", "Deny")), Ports: g.adminPorts()}
			for range 1 + g.next()%2 {
				var p v1alpha1.AdminNetworkPolicyIngressPeer
				p.Namespaces, p.Pods = g.adminSubject()
				r.From = append(r.From, p)
			}
			in.Spec.Ingress = append(in.Spec.Ingress, r)
		}
		if g.next()%4 == 0 {
			r := v1alpha1.BaselineAdminNetworkPolicyEgressRule{Action: v1alpha1.BaselineAdminNetworkPolicyRuleAction(g.pick("Allow", "Deny")), Ports: g.adminPorts()}
			p := v1alpha1.BaselineAdminNetworkPolicyEgressPeer{}
			if g.next()%3 == 0 {
				p.Networks = []v1alpha1.CIDR{v1alpha1.CIDR(g.pick(genNetworks...))}
			} else {
				p.Namespaces, p.Pods = g.adminSubject()
			}
			r.To = append(r.To, p)
			in.Spec.Egress = append(in.Spec.Egress, r)
		}
		return adminpolicy.FromBaselineAdminNetworkPolicy(in)
	case 7:
		in := &v1beta1.ClusterNetworkPolicy{}
		in.Name = fmt.Sprintf("cnp%d", len(c.admin))
		in.Spec.Tier = v1beta1.Tier(g.pick("Admin", "Admin", "Baseline"))
		in.Spec.Priority = int32(g.pickInt(1, 2, 10))
		nsSel, pods := g.adminSubject()
		in.Spec.Subject.Namespaces, in.Spec.Subject.Pods = nsSel, toV1beta1(pods)
		for range g.next() % 3 {
			r := v1beta1.ClusterNetworkPolicyIngressRule{Action: v1beta1.ClusterNetworkPolicyRuleAction(g.pick("Accept", "Deny", "Pass"))}
			for range 1 + g.next()%2 {
				var p v1beta1.ClusterNetworkPolicyIngressPeer
				nsSel, pods := g.adminSubject()
				p.Namespaces, p.Pods = nsSel, toV1beta1(pods)
				r.From = append(r.From, p)
			}
			for range g.next() % 3 {
				var pr v1beta1.ClusterNetworkPolicyProtocol
				switch g.next() % 5 {
				case 0:
					pr.DestinationNamedPort = g.pick("http", "metrics")
				case 1:
					pr.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: int32(g.pickInt(80, 8080))}}
				case 2:
					first := int32(g.pickInt(79, 8000, 9000))
					pr.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Range: &v1beta1.PortRange{Start: first, End: first + int32(g.pickInt(1, 100, 30000))}}}
				default:
					pr.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: int32(g.pickInt(80, 8080, 9090))}}
				}
				r.Protocols = append(r.Protocols, pr)
			}
			in.Spec.Ingress = append(in.Spec.Ingress, r)
		}
		return adminpolicy.FromClusterNetworkPolicy(in)
	default:
		in := &v1alpha1.AdminNetworkPolicy{}
		in.Name = fmt.Sprintf("anp%d", len(c.admin))
		in.Spec.Priority = int32(g.pickInt(1, 2, 2, 3, 10))
		in.Spec.Subject.Namespaces, in.Spec.Subject.Pods = g.adminSubject()
		for range g.next() % 4 {
			r := v1alpha1.AdminNetworkPolicyIngressRule{Name: g.pick("", "r"), Action: v1alpha1.AdminNetworkPolicyRuleAction(g.pick("Allow", "Deny", "Pass")), Ports: g.adminPorts()}
			for range 1 + g.next()%2 {
				var p v1alpha1.AdminNetworkPolicyIngressPeer
				p.Namespaces, p.Pods = g.adminSubject()
				r.From = append(r.From, p)
			}
			in.Spec.Ingress = append(in.Spec.Ingress, r)
		}
		if g.next()%4 == 0 {
			r := v1alpha1.AdminNetworkPolicyEgressRule{Action: v1alpha1.AdminNetworkPolicyRuleAction(g.pick("Allow", "Deny", "Pass")), Ports: g.adminPorts()}
			p := v1alpha1.AdminNetworkPolicyEgressPeer{}
			if g.next()%3 == 0 {
				p.Networks = []v1alpha1.CIDR{v1alpha1.CIDR(g.pick(genNetworks...))}
			} else {
				p.Namespaces, p.Pods = g.adminSubject()
			}
			r.To = append(r.To, p)
			in.Spec.Egress = append(in.Spec.Egress, r)
		}
		return adminpolicy.FromAdminNetworkPolicy(in)
	}
}

// genNetworks are the CIDRs of admin egress peers, over pod addresses and
// outside them.
var genNetworks = []string{"10.0.0.0/29", "10.0.0.4/30", "192.0.2.0/24", "fd00::/125", "0.0.0.0/0"}

// adminSubject is a subject or a peer: namespaces by label or name (or
// all), or pods in them.
func (g *gen) adminSubject() (*metav1.LabelSelector, *v1alpha1.NamespacedPod) {
	ns := &metav1.LabelSelector{}
	switch g.next() % 4 {
	case 1:
		ns.MatchLabels = map[string]string{"team": g.pick("x", "y")}
	case 2:
		ns.MatchLabels = map[string]string{"kubernetes.io/metadata.name": g.pick(genNamespaces...)}
	case 3:
		ns.MatchLabels = map[string]string{"istio.io/dataplane-mode": "ambient"}
	}
	if g.bit() {
		return ns, nil
	}
	return nil, &v1alpha1.NamespacedPod{NamespaceSelector: *ns, PodSelector: *g.selector(true)}
}

func toV1beta1(p *v1alpha1.NamespacedPod) *v1beta1.NamespacedPod {
	if p == nil {
		return nil
	}
	return &v1beta1.NamespacedPod{NamespaceSelector: p.NamespaceSelector, PodSelector: p.PodSelector}
}

// adminPorts are a rule's ports: none (every port), or numbers, names and
// ranges, some of them UDP.
func (g *gen) adminPorts() *[]v1alpha1.AdminNetworkPolicyPort {
	if g.next()%3 == 0 {
		return nil
	}
	var out []v1alpha1.AdminNetworkPolicyPort
	for range 1 + g.next()%2 {
		var p v1alpha1.AdminNetworkPolicyPort
		proto := corev1.Protocol(g.pick("TCP", "TCP", "TCP", "UDP"))
		switch g.next() % 3 {
		case 0:
			p.PortNumber = &v1alpha1.Port{Protocol: proto, Port: int32(g.pickInt(80, 8080, 9090))}
		case 1:
			p.NamedPort = new(g.pick("http", "metrics"))
		default:
			first := int32(g.pickInt(79, 8000, 9000))
			p.PortRange = &v1alpha1.PortRange{Protocol: proto, Start: first, End: first + int32(g.pickInt(1, 100, 30000))}
		}
		out = append(out, p)
	}
	return &out
}
