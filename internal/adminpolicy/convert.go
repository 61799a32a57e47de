package adminpolicy

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// API versions the kinds are read as.
var (
	V1alpha1 = v1alpha1.GroupVersion.String()
	V1alpha2 = v1alpha2.GroupVersion.String()
	V1beta1  = v1beta1.GroupVersion.String()
)

// FromAdminNetworkPolicy converts an AdminNetworkPolicy.
func FromAdminNetworkPolicy(in *v1alpha1.AdminNetworkPolicy) Policy {
	p := Policy{
		Kind: KindAdminNetworkPolicy, APIVersion: V1alpha1, Name: in.Name, UID: in.UID,
		Tier: TierAdmin, Priority: in.Spec.Priority,
	}
	p.Subject, p.SubjectSet = subjectV1alpha1(in.Spec.Subject)
	for i, r := range in.Spec.Ingress {
		path := fmt.Sprintf("spec.ingress[%d]", i)
		p.Ingress = append(p.Ingress, Rule{
			Path: path, Name: r.Name, Action: Action(r.Action),
			Peers: ingressPeersV1alpha1(path+".from", r.From), Ports: portsV1alpha1(path, r.Ports),
		})
	}
	for i, r := range in.Spec.Egress {
		path := fmt.Sprintf("spec.egress[%d]", i)
		p.Egress = append(p.Egress, Rule{
			Path: path, Name: r.Name, Action: Action(r.Action),
			Peers: egressPeersV1alpha1(path+".to", r.To), Ports: portsV1alpha1(path, r.Ports),
		})
	}
	return p
}

// FromBaselineAdminNetworkPolicy converts a BaselineAdminNetworkPolicy.
func FromBaselineAdminNetworkPolicy(in *v1alpha1.BaselineAdminNetworkPolicy) Policy {
	p := Policy{
		Kind: KindBaselineAdminNetworkPolicy, APIVersion: V1alpha1, Name: in.Name, UID: in.UID,
		Tier: TierBaseline, Priority: BaselinePriority,
	}
	p.Subject, p.SubjectSet = subjectV1alpha1(in.Spec.Subject)
	for i, r := range in.Spec.Ingress {
		path := fmt.Sprintf("spec.ingress[%d]", i)
		p.Ingress = append(p.Ingress, Rule{
			Path: path, Name: r.Name, Action: Action(r.Action),
			Peers: ingressPeersV1alpha1(path+".from", r.From), Ports: portsV1alpha1(path, r.Ports),
		})
	}
	for i, r := range in.Spec.Egress {
		path := fmt.Sprintf("spec.egress[%d]", i)
		var peers []Peer
		for j, peer := range r.To {
			pp := Peer{Path: fmt.Sprintf("%s.to[%d]", path, j)}
			pp.Pods = selectionV1alpha1(peer.Namespaces, peer.Pods)
			pp.Nodes = peer.Nodes
			pp.Networks = cidrsV1alpha1(peer.Networks)
			peers = append(peers, pp)
		}
		p.Egress = append(p.Egress, Rule{Path: path, Name: r.Name, Action: Action(r.Action), Peers: peers, Ports: portsV1alpha1(path, r.Ports)})
	}
	return p
}

func subjectV1alpha1(s v1alpha1.AdminNetworkPolicySubject) (Selection, bool) {
	if sel := selectionV1alpha1(s.Namespaces, s.Pods); sel != nil {
		return *sel, true
	}
	return Selection{}, false
}

// selectionV1alpha1 turns a namespaces or pods field pair into a Selection;
// nil when neither is set.
func selectionV1alpha1(namespaces *metav1.LabelSelector, pods *v1alpha1.NamespacedPod) *Selection {
	switch {
	case namespaces != nil:
		return &Selection{Namespaces: *namespaces}
	case pods != nil:
		return &Selection{Namespaces: pods.NamespaceSelector, Pods: &pods.PodSelector}
	}
	return nil
}

func ingressPeersV1alpha1(path string, in []v1alpha1.AdminNetworkPolicyIngressPeer) []Peer {
	out := make([]Peer, 0, len(in))
	for j, peer := range in {
		out = append(out, Peer{Path: fmt.Sprintf("%s[%d]", path, j), Pods: selectionV1alpha1(peer.Namespaces, peer.Pods)})
	}
	return out
}

func egressPeersV1alpha1(path string, in []v1alpha1.AdminNetworkPolicyEgressPeer) []Peer {
	out := make([]Peer, 0, len(in))
	for j, peer := range in {
		pp := Peer{Path: fmt.Sprintf("%s[%d]", path, j), Pods: selectionV1alpha1(peer.Namespaces, peer.Pods), Nodes: peer.Nodes}
		pp.Networks = cidrsV1alpha1(peer.Networks)
		for _, d := range peer.DomainNames {
			pp.DomainNames = append(pp.DomainNames, string(d))
		}
		out = append(out, pp)
	}
	return out
}

func cidrsV1alpha1(in []v1alpha1.CIDR) []string {
	var out []string
	for _, c := range in {
		out = append(out, string(c))
	}
	return out
}

// portsV1alpha1 converts the ports of a rule; nil ports (the field not
// set) match every port.
func portsV1alpha1(rulePath string, in *[]v1alpha1.AdminNetworkPolicyPort) []Port {
	if in == nil {
		return nil
	}
	out := make([]Port, 0, len(*in))
	for k, port := range *in {
		path := fmt.Sprintf("%s.ports[%d]", rulePath, k)
		switch {
		case port.PortNumber != nil:
			out = append(out, Port{Path: path + ".portNumber", Protocol: defaultTCP(port.PortNumber.Protocol), First: port.PortNumber.Port, Last: port.PortNumber.Port})
		case port.NamedPort != nil:
			out = append(out, Port{Path: path + ".namedPort", Name: *port.NamedPort})
		case port.PortRange != nil:
			out = append(out, Port{Path: path + ".portRange", Protocol: defaultTCP(port.PortRange.Protocol), First: port.PortRange.Start, Last: port.PortRange.End})
		default:
			// No field this version knows: a port of a newer version.
			out = append(out, Port{Path: path})
		}
	}
	// An empty list (ports: []) is as good as none.
	if len(out) == 0 {
		return nil
	}
	return out
}

func defaultTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// FromClusterNetworkPolicy converts a v1beta1 ClusterNetworkPolicy.
func FromClusterNetworkPolicy(in *v1beta1.ClusterNetworkPolicy) Policy {
	p := Policy{
		Kind: KindClusterNetworkPolicy, APIVersion: V1beta1, Name: in.Name, UID: in.UID,
		Tier: Tier(in.Spec.Tier), Priority: in.Spec.Priority,
	}
	if sel := selectionV1beta1(in.Spec.Subject.Namespaces, in.Spec.Subject.Pods); sel != nil {
		p.Subject, p.SubjectSet = *sel, true
	}
	for i, r := range in.Spec.Ingress {
		path := fmt.Sprintf("spec.ingress[%d]", i)
		var peers []Peer
		for j, peer := range r.From {
			peers = append(peers, Peer{Path: fmt.Sprintf("%s.from[%d]", path, j), Pods: selectionV1beta1(peer.Namespaces, peer.Pods)})
		}
		p.Ingress = append(p.Ingress, Rule{Path: path, Name: r.Name, Action: cnpAction(r.Action), Peers: peers, Ports: protocolsV1beta1(path, r.Protocols)})
	}
	for i, r := range in.Spec.Egress {
		path := fmt.Sprintf("spec.egress[%d]", i)
		var peers []Peer
		for j, peer := range r.To {
			pp := Peer{Path: fmt.Sprintf("%s.to[%d]", path, j), Pods: selectionV1beta1(peer.Namespaces, peer.Pods), Nodes: peer.Nodes}
			for _, c := range peer.Networks {
				pp.Networks = append(pp.Networks, string(c))
			}
			for _, d := range peer.DomainNames {
				pp.DomainNames = append(pp.DomainNames, string(d))
			}
			peers = append(peers, pp)
		}
		p.Egress = append(p.Egress, Rule{Path: path, Name: r.Name, Action: cnpAction(r.Action), Peers: peers, Ports: protocolsV1beta1(path, r.Protocols)})
	}
	return p
}

// FromClusterNetworkPolicyV1alpha2 converts a v1alpha2 ClusterNetworkPolicy,
// whose fields are those of v1beta1.
func FromClusterNetworkPolicyV1alpha2(in *v1alpha2.ClusterNetworkPolicy) (Policy, error) {
	data, err := json.Marshal(in)
	if err != nil {
		return Policy{}, err
	}
	var b v1beta1.ClusterNetworkPolicy
	if err := json.Unmarshal(data, &b); err != nil {
		return Policy{}, err
	}
	p := FromClusterNetworkPolicy(&b)
	p.APIVersion = V1alpha2
	return p, nil
}

// cnpAction reads Accept as Allow; an unknown action stays as it is, for
// validation to report.
func cnpAction(a v1beta1.ClusterNetworkPolicyRuleAction) Action {
	if a == v1beta1.ClusterNetworkPolicyRuleActionAccept {
		return ActionAllow
	}
	if a == "Allow" {
		return "Allow (not a ClusterNetworkPolicy action)"
	}
	return Action(a)
}

func selectionV1beta1(namespaces *metav1.LabelSelector, pods *v1beta1.NamespacedPod) *Selection {
	switch {
	case namespaces != nil:
		return &Selection{Namespaces: *namespaces}
	case pods != nil:
		return &Selection{Namespaces: pods.NamespaceSelector, Pods: &pods.PodSelector}
	}
	return nil
}

// protocolsV1beta1 converts a rule's protocols; none matches every port.
func protocolsV1beta1(rulePath string, in []v1beta1.ClusterNetworkPolicyProtocol) []Port {
	out := make([]Port, 0, len(in))
	for k, pr := range in {
		path := fmt.Sprintf("%s.protocols[%d]", rulePath, k)
		add := func(proto corev1.Protocol, sub string, dp *v1beta1.Port) {
			switch {
			case dp == nil:
				// Validation reports it; it matches every port of the protocol.
				out = append(out, Port{Path: path + sub, Protocol: proto, First: 1, Last: 65535})
			case dp.Range != nil:
				out = append(out, Port{Path: path + sub + ".destinationPort.range", Protocol: proto, First: dp.Range.Start, Last: dp.Range.End})
			default:
				out = append(out, Port{Path: path + sub + ".destinationPort.number", Protocol: proto, First: dp.Number, Last: dp.Number})
			}
		}
		switch {
		case pr.TCP != nil:
			add(corev1.ProtocolTCP, ".tcp", pr.TCP.DestinationPort)
		case pr.UDP != nil:
			add(corev1.ProtocolUDP, ".udp", pr.UDP.DestinationPort)
		case pr.SCTP != nil:
			add(corev1.ProtocolSCTP, ".sctp", pr.SCTP.DestinationPort)
		case pr.DestinationNamedPort != "":
			out = append(out, Port{Path: path + ".destinationNamedPort", Name: pr.DestinationNamedPort})
		default:
			out = append(out, Port{Path: path})
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
