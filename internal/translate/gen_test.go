package translate

import (
	"fmt"
	"maps"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// gen grows a caseInput from bytes, drawing names, labels, selectors,
// peers and ports from small vocabularies so that selectors actually match
// pods, identities are shared, and invalid values turn up now and then.
// The fuzz test feeds it fuzz bytes; the determinism test random ones.
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

func (g *gen) bit() bool { return g.next()%2 == 1 }

// rare is true for about one byte value in 32: invalid input should turn
// up, but not so often that most policies are rejected.
func (g *gen) rare() bool { return g.next()%32 == 0 }

var (
	genNamespaces = []string{"shop", "shop", "ops", "ops", "ambient", "a", "istio-system"}
	genKeys       = []string{"app", "app", "role", "tier", "istio.io/dataplane-mode", "kubernetes.io/metadata.name", LabelUseWaypoint, LabelGatewayName}
	genValues     = []string{"web", "db", "client", "web", "db", "client", "none", "shop", "ops", "", "wp"}
	genOperators  = []metav1.LabelSelectorOperator{
		metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn,
		metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist,
	}
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

func (g *gen) selector() *metav1.LabelSelector {
	ls := &metav1.LabelSelector{}
	for range g.next() % 3 {
		if ls.MatchLabels == nil {
			ls.MatchLabels = map[string]string{}
		}
		v := g.pick(genValues...)
		if g.rare() {
			v = "bad value"
		}
		ls.MatchLabels[g.pick(genKeys...)] = v
	}
	for range g.next() % 3 {
		e := metav1.LabelSelectorRequirement{Key: g.pick(genKeys...), Operator: genOperators[g.next()%len(genOperators)]}
		if g.rare() {
			e.Operator = "Bogus"
		}
		if e.Operator == metav1.LabelSelectorOpIn || e.Operator == metav1.LabelSelectorOpNotIn || g.rare() {
			for range 1 + g.next()%2 {
				e.Values = append(e.Values, g.pick(genValues...))
			}
		}
		ls.MatchExpressions = append(ls.MatchExpressions, e)
	}
	return ls
}

func (g *gen) ip() netip.Addr {
	switch g.next() % 4 {
	case 0:
		return netip.Addr{}
	case 1:
		return netip.AddrFrom16([16]byte{0xfd, 15: byte(g.next())})
	default:
		return netip.AddrFrom4([4]byte{10, 0, byte(g.next() % 4), byte(g.next())})
	}
}

func (g *gen) pod(n int) Pod {
	p := Pod{
		Namespace:      g.pick(genNamespaces...),
		Name:           fmt.Sprintf("pod-%d", n%(1+g.next())),
		Labels:         g.labels(3),
		ServiceAccount: g.pick("", "a", "b", "default"),
		Phase:          corev1.PodPhase(g.pick("", "Running", "Running", "Pending", "Unknown", "Succeeded", "Failed")),
		IP:             g.ip(),
		HostNetwork:    g.next()%8 == 0,
		Sidecar:        g.bit(),
	}
	for range g.next() % 3 {
		p.Ports = append(p.Ports, ContainerPort{
			Name:     g.pick("http", "metrics", ""),
			Port:     int32(g.pick4(80, 8080, 9090, 15008)),
			Protocol: corev1.Protocol(g.pick("", "TCP", "UDP")),
		})
	}
	if g.next()%8 == 0 {
		p.Template = "Deployment/" + p.Namespace + "/" + g.pick("web", "db")
	}
	return p
}

func (g *gen) pick4(options ...int) int { return options[g.next()%len(options)] }

func (g *gen) namespace() Namespace {
	ns := Namespace{Name: g.pick(genNamespaces...), Labels: g.labels(2), Partial: g.next()%4 == 0}
	if g.bit() {
		ns.Labels = map[string]string{labelDataplaneMode: dataplaneAmbient, "team": g.pick("a", "b")}
	}
	if g.next()%3 == 0 {
		ns.Labels = maps.Clone(ns.Labels)
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[LabelUseWaypoint] = g.pick("wp", "wl", "all", "none")
	}
	switch g.next() % 4 {
	case 1:
		ns.Annotations = map[string]string{AnnotationMode: g.pick("enforce", "dry-run", "enforce", "dry-run", "enforce", "bogus")}
	case 2:
		ns.Annotations = map[string]string{AnnotationMode: g.pick("enforce", "dry-run"), AnnotationFidelity: g.pick("strict", "permissive", "strict", "permissive", "strict", "bogus")}
	}
	return ns
}

func (g *gen) peer() networkingv1.NetworkPolicyPeer {
	var p networkingv1.NetworkPolicyPeer
	switch g.next() % 6 {
	case 0:
		p.IPBlock = &networkingv1.IPBlock{CIDR: g.pick("10.0.0.0/8", "0.0.0.0/0", "fd00::/8")}
		if g.rare() {
			p.IPBlock.CIDR = "10.0.0.0/33"
		}
		if g.bit() {
			p.IPBlock.Except = []string{g.pick("10.1.0.0/16", "10.0.0.0/24")}
		}
		if g.rare() {
			p.IPBlock.Except = append(p.IPBlock.Except, "192.168.0.0/16")
		}
	case 1:
		p.PodSelector = g.selector()
	case 2:
		p.NamespaceSelector = g.selector()
	case 3:
		p.PodSelector = g.selector()
		p.NamespaceSelector = g.selector()
	case 4:
		p.PodSelector = &metav1.LabelSelector{}
	default:
		p.NamespaceSelector = &metav1.LabelSelector{}
		if g.bit() {
			p.PodSelector = &metav1.LabelSelector{}
		}
	}
	return p
}

func (g *gen) port() networkingv1.NetworkPolicyPort {
	var p networkingv1.NetworkPolicyPort
	if g.next()%3 == 0 {
		p.Protocol = new(corev1.Protocol(g.pick("TCP", "UDP", "SCTP")))
	}
	switch g.next() % 5 {
	case 0:
	case 1:
		p.Port = new(intstr.FromString(g.pick("http", "metrics", "grpc")))
	case 2:
		p.Port = new(intstr.FromInt32(int32(g.pick4(80, 8080, 15008, 9090))))
		if g.rare() {
			p.Port.IntVal = 0
		}
	default:
		first := int32(g.pick4(1, 1000, 15000, 30000))
		p.Port = new(intstr.FromInt32(first))
		p.EndPort = new(first + int32(g.pick4(0, 9, 1030, 35535)))
		if *p.EndPort > 65535 && !g.rare() {
			p.EndPort = nil
		}
	}
	return p
}

func (g *gen) networkPolicy(n int) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{}
	np.Namespace = g.pick(genNamespaces...)
	np.Name = g.pick("web", "db", "web-5f64d49b", "all") + fmt.Sprint(n%2)
	if g.next()%4 == 0 {
		np.UID = "uid-1"
	}
	np.Spec.PodSelector = *g.selector()
	switch g.next() % 5 {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	for range g.next() % 4 {
		var r networkingv1.NetworkPolicyIngressRule
		for range g.next() % 3 {
			r.From = append(r.From, g.peer())
		}
		for range g.next() % 3 {
			r.Ports = append(r.Ports, g.port())
		}
		np.Spec.Ingress = append(np.Spec.Ingress, r)
	}
	if g.next()%4 == 0 {
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
	}
	return np
}

// grow adds what the bytes say to in.
func (g *gen) grow(in *caseInput) {
	for g.more() {
		switch g.next() % 8 {
		case 0, 1, 2:
			in.Pods = append(in.Pods, g.pod(len(in.Pods)))
		case 3:
			in.Namespaces = append(in.Namespaces, g.namespace())
		case 4, 5:
			in.NetworkPolicies = append(in.NetworkPolicies, g.networkPolicy(len(in.NetworkPolicies)))
		case 6:
			in.Options.RequireOptIn = g.next()%4 == 0
			in.Options.DefaultFidelity = Fidelity(g.pick("", "strict", "permissive"))
			in.Options.DefaultMode = Mode(g.pick("", "dry-run", "enforce"))
			in.Options.MaxPortRange = g.pick4(0, 10, 1024)
		default:
			switch g.next() % 5 {
			case 0:
				in.admin = append(in.admin, g.adminPolicy(len(in.admin)))
			case 1, 2:
				in.Services = append(in.Services, g.service(len(in.Services)))
			case 3:
				in.Gateways = append(in.Gateways, g.gateway())
			default:
				in.Mesh.TrustDomain = g.pick("", "example.org")
				in.Mesh.RootNamespace = g.pick("", "ops")
			}
		}
	}
}

// adminPolicy draws an admin network policy of any kind and tier, with
// priorities that collide, every action, and peers and ports from the
// same vocabularies as the NetworkPolicies.
func (g *gen) adminPolicy(i int) adminpolicy.Policy {
	p := adminpolicy.Policy{
		Kind: adminpolicy.KindAdminNetworkPolicy, Name: fmt.Sprintf("admin-%d", i),
		Tier: adminpolicy.TierAdmin, Priority: int32(g.pick4(1, 1, 5, 1001)), SubjectSet: true,
	}
	switch g.next() % 4 {
	case 0:
		p.Kind, p.Name, p.Tier, p.Priority = adminpolicy.KindBaselineAdminNetworkPolicy, "default", adminpolicy.TierBaseline, adminpolicy.BaselinePriority
	case 1:
		p.Kind, p.Tier = adminpolicy.KindClusterNetworkPolicy, adminpolicy.Tier(g.pick("Admin", "Baseline"))
	}
	p.Subject = g.selection()
	for r := range 1 + g.next()%3 {
		rule := adminpolicy.Rule{Path: fmt.Sprintf("spec.ingress[%d]", r), Action: adminpolicy.Action(g.pick("Allow", "Deny", "Pass", "Allow"))}
		if p.Kind == adminpolicy.KindBaselineAdminNetworkPolicy && rule.Action == adminpolicy.ActionPass {
			rule.Action = adminpolicy.ActionDeny
		}
		for j := range 1 + g.next()%2 {
			peer := adminpolicy.Peer{Path: fmt.Sprintf("%s.from[%d]", rule.Path, j)}
			if !g.rare() {
				sel := g.selection()
				peer.Pods = &sel
			}
			rule.Peers = append(rule.Peers, peer)
		}
		for k := range g.next() % 3 {
			port := adminpolicy.Port{Path: fmt.Sprintf("%s.ports[%d]", rule.Path, k), Protocol: corev1.ProtocolTCP}
			switch g.next() % 4 {
			case 0:
				port.Protocol, port.Name = "", g.pick("http", "metrics")
			case 1:
				port.First = int32(g.pick4(1, 1000, 8000))
				port.Last = port.First + int32(g.pick4(1, 90, 2000))
			case 2:
				port.Protocol = corev1.ProtocolUDP
				fallthrough
			default:
				port.First = int32(g.pick4(80, 8080, 15008, 9090))
				port.Last = port.First
			}
			rule.Ports = append(rule.Ports, port)
		}
		p.Ingress = append(p.Ingress, rule)
	}
	return p
}

// selection draws a subject or peer: namespaces alone, or pods in them.
func (g *gen) selection() adminpolicy.Selection {
	s := adminpolicy.Selection{Namespaces: *g.selector()}
	if g.next()%2 == 0 {
		s.Pods = g.selector()
	}
	return s
}

// service draws a Service over the same labels as the pods, which may name
// a waypoint, with numbered and named target ports.
func (g *gen) service(n int) Service {
	s := Service{Namespace: g.pick(genNamespaces...), Name: g.pick("web", "db", "api") + fmt.Sprint(n%2)}
	if g.next()%4 != 0 {
		s.Selector = map[string]string{g.pick(genKeys[:4]...): g.pick(genValues...)}
	}
	if g.bit() {
		s.Labels = map[string]string{LabelUseWaypoint: g.pick("wp", "wl", "all", "none", "gone")}
		if g.rare() {
			s.Labels[LabelUseWaypointNamespace] = "ops"
		}
	}
	for range 1 + g.next()%2 {
		sp := ServicePort{Port: int32(g.pick4(80, 8080, 9090, 15008)), Protocol: corev1.Protocol(g.pick("", "", "TCP", "UDP"))}
		switch g.next() % 4 {
		case 1:
			sp.TargetPort = intstr.FromInt32(int32(g.pick4(8080, 9090, 80)))
		case 2:
			sp.TargetPort = intstr.FromString(g.pick("http", "metrics", "grpc"))
		}
		s.Ports = append(s.Ports, sp)
	}
	return s
}

// gateway draws a Gateway whose name the use-waypoint labels use, of any
// traffic type, class, readiness and attachment.
func (g *gen) gateway() Gateway {
	gw := Gateway{
		Namespace: g.pick(genNamespaces...), Name: g.pick("wp", "wl", "all"),
		ClassName:  g.pick(WaypointClass, WaypointClass, WaypointClass, "other"),
		Addressed:  g.next()%4 != 0,
		AttachFrom: g.pick("", "", "Same", "All", "Selector"),
	}
	if v := g.pick("", "service", "workload", "all", "none"); v != "" {
		gw.Labels = map[string]string{LabelWaypointFor: v}
	}
	if gw.AttachFrom == "Selector" {
		gw.AttachSelector = g.selector()
	}
	if g.rare() {
		gw.Annotations = map[string]string{AnnotationWaypointAccount: "a"}
	}
	return gw
}
