package translate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// compiledPolicy is a NetworkPolicy validated and with its selectors parsed,
// so that nothing below re-parses per pod.
type compiledPolicy struct {
	np      *networkingv1.NetworkPolicy
	ingress bool
	egress  bool
	target  *selector
	rules   []compiledRule
}

type compiledRule struct {
	path  string // spec.ingress[i]
	peers []compiledPeer
	ports []compiledPort
}

type peerKind int

const (
	// peerIPBlock: ipBlock.
	peerIPBlock peerKind = iota
	// peerNamespaces: namespaceSelector, with no or an empty podSelector.
	peerNamespaces
	// peerOwnNamespace: an empty podSelector alone.
	peerOwnNamespace
	// peerPods: a non-empty podSelector, with or without namespaceSelector.
	peerPods
)

type compiledPeer struct {
	path   string // spec.ingress[i].from[j]
	kind   peerKind
	cidr   string
	except []string // sorted
	nsSel  *selector
	podSel *selector
}

type compiledPort struct {
	path     string // spec.ingress[i].ports[k]
	protocol corev1.Protocol
	// any: no port given, every port of the protocol.
	any bool
	// name of a named port; empty for numbers.
	name        string
	first, last int32
}

func (p compiledPort) String() string {
	switch {
	case p.any:
		return fmt.Sprintf("%s, all ports", p.protocol)
	case p.name != "":
		return fmt.Sprintf("%s %s", p.protocol, p.name)
	case p.first != p.last:
		return fmt.Sprintf("%s %d-%d", p.protocol, p.first, p.last)
	default:
		return fmt.Sprintf("%s %d", p.protocol, p.first)
	}
}

// compileErrors collects "field.path: problem" messages.
type compileErrors []string

func (e *compileErrors) addf(path, format string, args ...any) {
	*e = append(*e, path+": "+fmt.Sprintf(format, args...))
}

// compile validates what the translation reads of np. The checks mirror
// the API server's, because offline input has not been through it.
func compile(np *networkingv1.NetworkPolicy) (*compiledPolicy, compileErrors) {
	var errs compileErrors
	if np.Name == "" {
		errs.addf("metadata.name", "must not be empty")
	} else if msgs := validation.IsDNS1123Subdomain(np.Name); len(msgs) > 0 {
		errs.addf("metadata.name", "%s", strings.Join(msgs, "; "))
	}
	if np.Namespace == "" {
		errs.addf("metadata.namespace", "must not be empty")
	} else if msgs := validation.IsDNS1123Label(np.Namespace); len(msgs) > 0 {
		errs.addf("metadata.namespace", "%s", strings.Join(msgs, "; "))
	}

	cp := &compiledPolicy{np: np}
	if len(np.Spec.PolicyTypes) == 0 {
		cp.ingress = true
		cp.egress = len(np.Spec.Egress) > 0
	}
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			cp.ingress = true
		case networkingv1.PolicyTypeEgress:
			cp.egress = true
		default:
			errs.addf(fmt.Sprintf("spec.policyTypes[%d]", i), "unsupported value %q: supported values are \"Ingress\", \"Egress\"", t)
		}
	}
	if !cp.ingress {
		return cp, errs
	}

	cp.target = compileSelectorAt(&np.Spec.PodSelector, "spec.podSelector", &errs)
	for i := range np.Spec.Ingress {
		r := &np.Spec.Ingress[i]
		cr := compiledRule{path: fmt.Sprintf("spec.ingress[%d]", i)}
		for j := range r.From {
			cr.peers = append(cr.peers, compilePeer(&r.From[j], fmt.Sprintf("%s.from[%d]", cr.path, j), &errs))
		}
		for k := range r.Ports {
			cr.ports = append(cr.ports, compilePort(&r.Ports[k], fmt.Sprintf("%s.ports[%d]", cr.path, k), &errs))
		}
		cp.rules = append(cp.rules, cr)
	}
	return cp, errs
}

func compileSelectorAt(ls *metav1.LabelSelector, path string, errs *compileErrors) *selector {
	s, sub, err := compileSelector(ls)
	if err != nil {
		errs.addf(path+sub, "%v", err)
		return nil
	}
	return s
}

func compilePeer(p *networkingv1.NetworkPolicyPeer, path string, errs *compileErrors) compiledPeer {
	cp := compiledPeer{path: path}
	switch {
	case p.IPBlock != nil && (p.PodSelector != nil || p.NamespaceSelector != nil):
		errs.addf(path, "may not specify both ipBlock and another peer")
		return cp
	case p.IPBlock == nil && p.PodSelector == nil && p.NamespaceSelector == nil:
		errs.addf(path, "must specify a peer")
		return cp
	case p.IPBlock != nil:
		cp.kind = peerIPBlock
		cp.cidr = p.IPBlock.CIDR
		cidr, err := netip.ParsePrefix(p.IPBlock.CIDR)
		if err != nil {
			errs.addf(path+".ipBlock.cidr", "invalid CIDR %q: %v", p.IPBlock.CIDR, err)
		}
		for k, e := range p.IPBlock.Except {
			ex, err := netip.ParsePrefix(e)
			switch {
			case err != nil:
				errs.addf(fmt.Sprintf("%s.ipBlock.except[%d]", path, k), "invalid CIDR %q: %v", e, err)
			case cidr.IsValid() && (ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Masked().Contains(ex.Addr())):
				errs.addf(fmt.Sprintf("%s.ipBlock.except[%d]", path, k), "%q must be a strict subset of cidr %q", e, p.IPBlock.CIDR)
			}
		}
		cp.except = slices.Clone(p.IPBlock.Except)
		slices.Sort(cp.except)
		cp.except = slices.Compact(cp.except)
		return cp
	}
	if p.NamespaceSelector != nil {
		cp.nsSel = compileSelectorAt(p.NamespaceSelector, path+".namespaceSelector", errs)
	}
	if p.PodSelector != nil {
		cp.podSel = compileSelectorAt(p.PodSelector, path+".podSelector", errs)
	}
	switch {
	case p.PodSelector != nil && (len(p.PodSelector.MatchLabels) > 0 || len(p.PodSelector.MatchExpressions) > 0):
		cp.kind = peerPods
	case p.NamespaceSelector != nil:
		cp.kind = peerNamespaces
	default:
		cp.kind = peerOwnNamespace
	}
	return cp
}

func compilePort(p *networkingv1.NetworkPolicyPort, path string, errs *compileErrors) compiledPort {
	cp := compiledPort{path: path, protocol: corev1.ProtocolTCP}
	if p.Protocol != nil {
		switch *p.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			cp.protocol = *p.Protocol
		default:
			errs.addf(path+".protocol", "unsupported value %q: supported values are \"TCP\", \"UDP\", \"SCTP\"", *p.Protocol)
		}
	}
	if p.Port == nil {
		cp.any = true
		if p.EndPort != nil {
			errs.addf(path+".endPort", "may only be set with a numeric port")
		}
		return cp
	}
	switch p.Port.Type {
	case intstr.Int:
		cp.first, cp.last = p.Port.IntVal, p.Port.IntVal
		if msgs := validation.IsValidPortNum(int(p.Port.IntVal)); len(msgs) > 0 {
			errs.addf(path+".port", "%s", strings.Join(msgs, "; "))
		}
		if p.EndPort != nil {
			cp.last = *p.EndPort
			if msgs := validation.IsValidPortNum(int(*p.EndPort)); len(msgs) > 0 {
				errs.addf(path+".endPort", "%s", strings.Join(msgs, "; "))
			} else if *p.EndPort < p.Port.IntVal {
				errs.addf(path+".endPort", "must be greater than or equal to port %d", p.Port.IntVal)
			}
		}
	case intstr.String:
		cp.name = p.Port.StrVal
		if msgs := validation.IsValidPortName(p.Port.StrVal); len(msgs) > 0 {
			errs.addf(path+".port", "invalid port name %q: %s", p.Port.StrVal, strings.Join(msgs, "; "))
		}
		if p.EndPort != nil {
			errs.addf(path+".endPort", "may only be set with a numeric port")
		}
	default:
		errs.addf(path+".port", "must be a number or a name")
	}
	return cp
}
