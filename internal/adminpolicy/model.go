// Package adminpolicy reads the cluster-wide policies that sit above and
// below the NetworkPolicies — AdminNetworkPolicy and
// BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1) and
// ClusterNetworkPolicy (v1alpha2, v1beta1) — into one model, and evaluates
// them with the API's documented semantics. The translation engine and
// verify share it, so that both read an admin policy alike. It is pure: no
// client, no clock.
package adminpolicy

import (
	"cmp"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Kind names the API an admin policy came from.
type Kind string

const (
	KindAdminNetworkPolicy         Kind = "AdminNetworkPolicy"
	KindBaselineAdminNetworkPolicy Kind = "BaselineAdminNetworkPolicy"
	KindClusterNetworkPolicy       Kind = "ClusterNetworkPolicy"
)

// Group is the API group of every admin policy kind.
const Group = "policy.networking.k8s.io"

// Tier is where a policy sits relative to the NetworkPolicies.
type Tier string

const (
	// TierAdmin is evaluated before the NetworkPolicies.
	TierAdmin Tier = "Admin"
	// TierBaseline applies only to pods no NetworkPolicy selects.
	TierBaseline Tier = "Baseline"
)

// Action is what a rule does with the traffic it matches. ClusterNetworkPolicy's
// Accept is Allow here.
type Action string

const (
	ActionAllow Action = "Allow"
	ActionDeny  Action = "Deny"
	// ActionPass skips the rest of the tier: the NetworkPolicies decide
	// (from the admin tier), or the default, allow (from the baseline).
	ActionPass Action = "Pass"
)

// BaselinePriority is the priority a BaselineAdminNetworkPolicy is given
// in the baseline tier: after every ClusterNetworkPolicy of that tier,
// whose priorities are at most 1000. The APIs do not order the two.
const BaselinePriority = 1001

// Policy is one admin policy, whatever API it came from.
type Policy struct {
	Kind Kind
	// APIVersion is the apiVersion it was read as.
	APIVersion string
	Name       string
	UID        types.UID
	Tier       Tier
	// Priority within the tier: lower first.
	Priority int32
	Subject  Selection
	// SubjectSet is false when the subject names neither namespaces nor
	// pods (an object of a newer API version): the policy selects nothing.
	SubjectSet bool
	Ingress    []Rule
	Egress     []Rule
}

// Selection selects the pods of the namespaces Namespaces selects that Pods
// selects; Pods nil selects every pod of those namespaces.
type Selection struct {
	Namespaces metav1.LabelSelector
	Pods       *metav1.LabelSelector
}

// Rule is one ingress or egress rule.
type Rule struct {
	// Path is the rule's field path (spec.ingress[0]).
	Path   string
	Name   string
	Action Action
	Peers  []Peer
	// Ports nil: every port of every protocol.
	Ports []Port
}

// Peer is one element of a rule's from or to. Exactly one field is set;
// none set is a peer of a newer API version, which fails closed.
type Peer struct {
	Path string
	// Pods: namespaces and pods peers.
	Pods *Selection
	// Networks: CIDRs (egress).
	Networks []string
	// Nodes: a node selector (egress); it never matches a pod.
	Nodes *metav1.LabelSelector
	// DomainNames (egress, Allow only); they never match a pod address.
	DomainNames []string
}

// Port is one port entry of a rule.
type Port struct {
	Path     string
	Protocol corev1.Protocol
	// Name of a named port: the destination pod's container port of that
	// name. Empty for numbers.
	Name string
	// First and Last: a number (First == Last) or a range.
	First, Last int32
}

// Ref names a policy in findings and messages: "AdminNetworkPolicy/NAME".
func (p *Policy) Ref() string { return string(p.Kind) + "/" + p.Name }

// Describe names a policy with its tier and priority, for messages.
func (p *Policy) Describe() string {
	switch p.Kind {
	case KindBaselineAdminNetworkPolicy:
		return p.Ref() + " (baseline)"
	case KindClusterNetworkPolicy:
		return p.Ref() + " (tier " + string(p.Tier) + ", priority " + strconv.Itoa(int(p.Priority)) + ")"
	default:
		return p.Ref() + " (priority " + strconv.Itoa(int(p.Priority)) + ")"
	}
}

// kindRank orders kinds of one tier and priority.
func kindRank(k Kind) int {
	switch k {
	case KindAdminNetworkPolicy:
		return 0
	case KindClusterNetworkPolicy:
		return 1
	default:
		return 2
	}
}

// Compare orders policies by precedence: the admin tier first, then by
// priority, then (where the APIs leave the order undefined) by kind and
// name, so that evaluation is deterministic.
func Compare(a, b *Policy) int {
	return cmp.Or(
		cmp.Compare(tierRank(a.Tier), tierRank(b.Tier)),
		cmp.Compare(a.Priority, b.Priority),
		cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.APIVersion, b.APIVersion),
	)
}

// SamePrecedence says whether the APIs leave the order of a and b undefined:
// one tier and one priority.
func SamePrecedence(a, b *Policy) bool {
	return a.Tier == b.Tier && a.Priority == b.Priority
}

func tierRank(t Tier) int {
	if t == TierAdmin {
		return 0
	}
	return 1
}
