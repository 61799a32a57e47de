package adminpolicy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// FieldError is one thing the API server would reject in a policy.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Compiled is a policy with its selectors parsed, ready to match pods.
type Compiled struct {
	*Policy
	subject selection
	Ingress []CompiledRule
	Egress  []CompiledRule
}

// CompiledRule is one rule, ready to match.
type CompiledRule struct {
	*Rule
	// Index of the rule in its list.
	Index int
	peers []peer
	// anyPort: no ports, every port matches.
	anyPort bool
}

type selection struct {
	ns labels.Selector
	// pods nil: every pod.
	pods labels.Selector
	// none: selects nothing (not set).
	none bool
}

func (s *selection) matches(ns, pod labels.Set) bool {
	return !s.none && s.ns.Matches(ns) && (s.pods == nil || s.pods.Matches(pod))
}

type peer struct {
	pods     *selection
	networks []netip.Prefix
	// all: a peer of a newer API version in a Deny or Pass rule, which
	// fails closed by matching everything.
	all bool
}

// Compile validates p as the API server would and parses its selectors.
// A policy with errors is not compiled.
func Compile(p *Policy) (*Compiled, []FieldError) {
	var errs []FieldError
	addf := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
	}
	if p.Name == "" {
		addf("metadata.name", "required")
	} else if msgs := validation.IsDNS1123Subdomain(p.Name); len(msgs) > 0 {
		addf("metadata.name", "%s", strings.Join(msgs, "; "))
	}
	switch p.Kind {
	case KindBaselineAdminNetworkPolicy:
		if p.Name != "" && p.Name != "default" {
			addf("metadata.name", "must be \"default\": the cluster has one BaselineAdminNetworkPolicy")
		}
	case KindClusterNetworkPolicy:
		if p.Tier != TierAdmin && p.Tier != TierBaseline {
			addf("spec.tier", "unsupported value %q: supported values are \"Admin\", \"Baseline\"", p.Tier)
		}
		fallthrough
	default:
		if p.Priority < 0 || p.Priority > 1000 {
			addf("spec.priority", "must be between 0 and 1000, not %d", p.Priority)
		}
	}
	c := &Compiled{Policy: p}
	if !p.SubjectSet {
		addf("spec.subject", "must set exactly one of namespaces, pods")
		c.subject.none = true
	} else {
		c.subject = compileSelection(&p.Subject, "spec.subject", &errs)
	}
	for i := range p.Ingress {
		c.Ingress = append(c.Ingress, compileRule(p, &p.Ingress[i], i, true, &errs))
	}
	for i := range p.Egress {
		c.Egress = append(c.Egress, compileRule(p, &p.Egress[i], i, false, &errs))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func compileSelection(s *Selection, path string, errs *[]FieldError) selection {
	sub := ".namespaces"
	if s.Pods != nil {
		sub = ".pods.namespaceSelector"
	}
	out := selection{ns: compileSelector(&s.Namespaces, path+sub, errs)}
	if s.Pods != nil {
		out.pods = compileSelector(s.Pods, path+".pods.podSelector", errs)
	}
	return out
}

func compileSelector(ls *metav1.LabelSelector, path string, errs *[]FieldError) labels.Selector {
	verrs := metav1validation.ValidateLabelSelector(ls, metav1validation.LabelSelectorValidationOptions{}, field.NewPath(path))
	for _, e := range verrs {
		*errs = append(*errs, FieldError{Field: e.Field, Message: e.ErrorBody()})
	}
	if len(verrs) > 0 {
		return labels.Nothing()
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		*errs = append(*errs, FieldError{Field: path, Message: err.Error()})
		return labels.Nothing()
	}
	return sel
}

func validAction(k Kind, a Action) bool {
	switch a {
	case ActionAllow, ActionDeny:
		return true
	case ActionPass:
		return k != KindBaselineAdminNetworkPolicy
	}
	return false
}

func actionNames(k Kind) string {
	switch k {
	case KindBaselineAdminNetworkPolicy:
		return `"Allow", "Deny"`
	case KindClusterNetworkPolicy:
		return `"Accept", "Deny", "Pass"`
	}
	return `"Allow", "Deny", "Pass"`
}

func compileRule(p *Policy, r *Rule, index int, ingress bool, errs *[]FieldError) CompiledRule {
	addf := func(path, format string, args ...any) {
		*errs = append(*errs, FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
	}
	cr := CompiledRule{Rule: r, Index: index, anyPort: r.Ports == nil}
	if !validAction(p.Kind, r.Action) {
		addf(r.Path+".action", "unsupported value %q: supported values are %s", r.Action, actionNames(p.Kind))
	}
	peersField := ".to"
	if ingress {
		peersField = ".from"
	}
	if len(r.Peers) == 0 {
		addf(r.Path+peersField, "must contain at least one peer")
	}
	for i := range r.Peers {
		pp := &r.Peers[i]
		set := 0
		var cp peer
		if pp.Pods != nil {
			set++
			s := compileSelection(pp.Pods, pp.Path, errs)
			cp.pods = &s
		}
		if len(pp.Networks) > 0 {
			set++
			for k, n := range pp.Networks {
				pfx, err := netip.ParsePrefix(n)
				switch {
				case err != nil:
					addf(fmt.Sprintf("%s.networks[%d]", pp.Path, k), "invalid CIDR %q: %v", n, err)
				case pfx.Masked() != pfx:
					addf(fmt.Sprintf("%s.networks[%d]", pp.Path, k), "invalid CIDR %q: host bits set (write %s)", n, pfx.Masked())
				default:
					cp.networks = append(cp.networks, pfx)
				}
			}
		}
		if pp.Nodes != nil {
			set++
			compileSelector(pp.Nodes, pp.Path+".nodes", errs)
		}
		if len(pp.DomainNames) > 0 {
			set++
			if r.Action != ActionAllow {
				addf(pp.Path+".domainNames", "only allowed in Allow (Accept) rules")
			}
		}
		switch {
		case set > 1:
			addf(pp.Path, "must set exactly one field")
		case set == 0:
			// A peer of a newer version: fail closed. An Allow matches
			// nothing through it; a Deny or a Pass matches everything.
			cp.all = r.Action != ActionAllow
		}
		cr.peers = append(cr.peers, cp)
	}
	for i := range r.Ports {
		port := &r.Ports[i]
		switch {
		case port.Name != "":
			if msgs := validation.IsValidPortName(port.Name); len(msgs) > 0 {
				addf(port.Path, "invalid port name %q: %s", port.Name, strings.Join(msgs, "; "))
			}
		case port.Protocol == "" && port.First == 0:
			addf(port.Path, "must set exactly one field")
		default:
			switch port.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				addf(port.Path+".protocol", "unsupported value %q: supported values are \"TCP\", \"UDP\", \"SCTP\"", port.Protocol)
			}
			for _, n := range []int32{port.First, port.Last} {
				if msgs := validation.IsValidPortNum(int(n)); len(msgs) > 0 {
					addf(port.Path, "%s", strings.Join(msgs, "; "))
					break
				}
			}
			if port.First > port.Last {
				addf(port.Path, "start %d must be less than end %d", port.First, port.Last)
			}
		}
	}
	return cr
}

// Selects says whether the policy's subject selects a pod with these
// labels in a namespace with these labels. Callers leave out host-network
// pods, which no subject selects.
func (c *Compiled) Selects(nsLabels, podLabels labels.Set) bool {
	return c.subject.matches(nsLabels, podLabels)
}

// MatchesPod says whether a peer of the rule matches a pod (the source of
// an ingress rule, the destination of an egress one); addr is the pod's
// address, which networks peers match (invalid when unknown).
func (r *CompiledRule) MatchesPod(nsLabels, podLabels labels.Set, addr netip.Addr) bool {
	for i := range r.peers {
		p := &r.peers[i]
		switch {
		case p.all:
			return true
		case p.pods != nil && p.pods.matches(nsLabels, podLabels):
			return true
		case addr.IsValid() && slices.ContainsFunc(p.networks, func(n netip.Prefix) bool { return n.Contains(addr) }):
			return true
		}
	}
	return false
}

// PeerMatchesPod says whether the rule's i-th peer matches a pod.
func (r *CompiledRule) PeerMatchesPod(i int, nsLabels, podLabels labels.Set, addr netip.Addr) bool {
	p := &r.peers[i]
	return p.all || (p.pods != nil && p.pods.matches(nsLabels, podLabels)) ||
		(addr.IsValid() && slices.ContainsFunc(p.networks, func(n netip.Prefix) bool { return n.Contains(addr) }))
}

// MatchesAddress says whether a peer matches an address outside the
// cluster: a networks peer, or a fail-closed one.
func (r *CompiledRule) MatchesAddress(addr netip.Addr) bool {
	for i := range r.peers {
		p := &r.peers[i]
		if p.all || slices.ContainsFunc(p.networks, func(n netip.Prefix) bool { return n.Contains(addr) }) {
			return true
		}
	}
	return false
}

// FailsClosed says whether a peer of the rule is of a newer API version
// and so matches every source.
func (r *CompiledRule) FailsClosed() bool {
	return slices.ContainsFunc(r.peers, func(p peer) bool { return p.all })
}

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ First, Last int32 }

// TCPPorts are the TCP ports the rule matches at a destination whose TCP
// container ports of each name are named(name); all is true when it
// matches every port. A rule none of whose ports is TCP matches no TCP.
func (r *CompiledRule) TCPPorts(named func(string) []int32) (ranges []PortRange, all bool) {
	if r.anyPort {
		return nil, true
	}
	for _, p := range r.Ports {
		switch {
		case p.Name != "":
			for _, n := range named(p.Name) {
				ranges = append(ranges, PortRange{n, n})
			}
		case p.Protocol == corev1.ProtocolTCP:
			ranges = append(ranges, PortRange{p.First, p.Last})
		}
	}
	return ranges, false
}

// MatchesPort says whether the rule matches TCP port n at a destination.
func (r *CompiledRule) MatchesPort(n int32, named func(string) []int32) bool {
	ranges, all := r.TCPPorts(named)
	if all {
		return true
	}
	for _, pr := range ranges {
		if pr.First <= n && n <= pr.Last {
			return true
		}
	}
	return false
}

// Ref names the rule for messages: "AdminNetworkPolicy/NAME spec.ingress[0]
// (name)".
func (r *CompiledRule) Ref(c *Compiled) string {
	s := c.Ref() + " " + r.Path
	if r.Name != "" {
		s += " (" + r.Name + ")"
	}
	return s
}

// SubjectKeys are the pod label keys the subject reads.
func (c *Compiled) SubjectKeys() []string { return selectorKeys(c.subject.pods) }

// PeerKeys are the pod label keys the rule's peers read.
func (r *CompiledRule) PeerKeys() []string {
	var out []string
	for _, p := range r.peers {
		if p.pods != nil {
			out = append(out, selectorKeys(p.pods.pods)...)
		}
	}
	return out
}

// Networks are the CIDRs the rule's peers name.
func (r *CompiledRule) Networks() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range r.peers {
		out = append(out, p.networks...)
	}
	return out
}

func selectorKeys(s labels.Selector) []string {
	if s == nil {
		return nil
	}
	reqs, _ := s.Requirements()
	out := make([]string, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, r.Key())
	}
	return out
}
