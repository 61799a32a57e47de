package translate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// IdentityMode says whether a label change alone may add an identity to the
// generated policies (the namespace annotation netpol2authz.io/identity).
type IdentityMode string

const (
	// IdentityReview: the first translation of a NetworkPolicy approves
	// every identity it resolves; an identity that selection adds later is
	// pending until someone approves it.
	IdentityReview IdentityMode = "review"
	// IdentityFollow: every resolved identity is written at once.
	IdentityFollow IdentityMode = "follow"
)

// AnnotationIdentity chooses the IdentityMode of a namespace.
const AnnotationIdentity = "netpol2authz.io/identity"

// NamespaceAnnotations are the annotations of a namespace that change the
// translation of its NetworkPolicies.
var NamespaceAnnotations = []string{AnnotationMode, AnnotationFidelity, AnnotationIdentity}

// Valid says whether m is an identity mode netpol2authz knows.
func (m IdentityMode) Valid() bool { return m == IdentityReview || m == IdentityFollow }

// Identity is what selection adds as a source of a generated policy:
// serviceaccount/NAMESPACE/NAME (a ServiceAccount a podSelector peer
// selects: its principal, and the pod IPs of its pods outside the mesh) or
// namespace/NAME (a namespace a namespaceSelector peer selects). It is the
// form an approval lists.
type Identity string

const (
	identitySAPrefix = "serviceaccount/"
	identityNSPrefix = "namespace/"
)

// ServiceAccountIdentity is the identity of a ServiceAccount.
func ServiceAccountIdentity(namespace, name string) Identity {
	return Identity(identitySAPrefix + namespace + "/" + name)
}

// NamespaceIdentity is the identity of a namespace.
func NamespaceIdentity(name string) Identity { return Identity(identityNSPrefix + name) }

// ParseIdentity reads an identity as a person writes it:
// serviceaccount/NS/NAME (or sa/NS/NAME), namespace/NAME (or ns/NAME), or a
// principal TRUSTDOMAIN/ns/NS/sa/NAME.
func ParseIdentity(s string) (Identity, error) {
	parts := strings.Split(s, "/")
	var id Identity
	var names []string
	switch {
	case len(parts) == 3 && (parts[0] == "serviceaccount" || parts[0] == "sa"):
		id, names = ServiceAccountIdentity(parts[1], parts[2]), parts[1:]
	case len(parts) == 2 && (parts[0] == "namespace" || parts[0] == "ns"):
		id, names = NamespaceIdentity(parts[1]), parts[1:]
	case len(parts) == 5 && parts[1] == "ns" && parts[3] == "sa":
		id, names = ServiceAccountIdentity(parts[2], parts[4]), []string{parts[2], parts[4]}
	default:
		return "", fmt.Errorf("%q is not an identity: write serviceaccount/NAMESPACE/NAME, namespace/NAME or a principal TRUSTDOMAIN/ns/NAMESPACE/sa/NAME", s)
	}
	if msgs := validation.IsDNS1123Label(names[0]); len(msgs) > 0 {
		return "", fmt.Errorf("identity %q: invalid namespace name %q: %s", s, names[0], strings.Join(msgs, "; "))
	}
	if len(names) == 2 {
		if msgs := validation.IsDNS1123Subdomain(names[1]); len(msgs) > 0 {
			return "", fmt.Errorf("identity %q: invalid ServiceAccount name %q: %s", s, names[1], strings.Join(msgs, "; "))
		}
	}
	return id, nil
}

// Approval is the record of the identities approved for one NetworkPolicy
// (an IdentityApproval object in the cluster or in manifests).
type Approval struct {
	Namespace     string
	NetworkPolicy string
	Identities    []Identity
}

// PendingIdentity is an identity the NetworkPolicy's selectors resolve to
// that is not approved: it is left out of the generated policies.
type PendingIdentity struct {
	Identity Identity
	// Peers that select it (spec.ingress[i].from[j]), sorted.
	Peers []string
	// Sources are the pods and namespaces whose labels brought it, sorted.
	Sources []IdentitySource
}

// IdentitySource is a pod or namespace whose labels made a peer select an
// identity.
type IdentitySource struct {
	Ref ObjectRef
	// Labels are the object's labels that the peer's selector reads.
	Labels map[string]string
	// FieldManagers last wrote those labels; the engine leaves it empty
	// (it reads no managedFields) and the operator fills it.
	FieldManagers []string
}

// maxPendingSources bounds the sources kept per pending identity: the
// first ones name the cause well enough, and the status has a bound.
const maxPendingSources = 16

// review is the identity review state of one translation.
type review struct {
	// on: the namespace is in review mode.
	on bool
	// approved holds the approved identities; nil means every resolved
	// identity is approved (follow, or review at the first translation).
	approved map[Identity]bool
	// resolved collects every identity selection resolved.
	resolved map[Identity]bool
	pending  map[Identity]*PendingIdentity
}

// admit records that a peer resolved identity id and says whether it may be
// written. When it may not, sources (called only then) says what brought it.
func (r *review) admit(id Identity, peer string, sources func() []IdentitySource) bool {
	if r.resolved == nil {
		r.resolved = map[Identity]bool{}
	}
	r.resolved[id] = true
	if !r.on || r.approved == nil || r.approved[id] {
		return true
	}
	if r.pending == nil {
		r.pending = map[Identity]*PendingIdentity{}
	}
	p := r.pending[id]
	if p == nil {
		p = &PendingIdentity{Identity: id}
		r.pending[id] = p
	}
	if !slices.Contains(p.Peers, peer) {
		p.Peers = append(p.Peers, peer)
	}
	for _, s := range sources() {
		if i := slices.IndexFunc(p.Sources, func(o IdentitySource) bool { return o.Ref == s.Ref }); i >= 0 {
			maps.Copy(p.Sources[i].Labels, s.Labels)
			continue
		}
		if len(p.Sources) < maxPendingSources {
			p.Sources = append(p.Sources, s)
		}
	}
	return false
}

// identities returns the resolved identities, sorted.
func (r *review) identities() []Identity {
	return slices.Sorted(maps.Keys(r.resolved))
}

// pendingList returns the pending identities, sorted, with sorted peers and
// sources.
func (r *review) pendingList() []PendingIdentity {
	if len(r.pending) == 0 {
		return nil
	}
	out := make([]PendingIdentity, 0, len(r.pending))
	for _, id := range slices.Sorted(maps.Keys(r.pending)) {
		p := *r.pending[id]
		slices.Sort(p.Peers)
		slices.SortFunc(p.Sources, func(a, b IdentitySource) int { return compareObjectRef(a.Ref, b.Ref) })
		out = append(out, p)
	}
	return out
}

// approvalsFor returns the approval record of each NetworkPolicy, keyed by
// namespace and name. When a snapshot holds two records for one policy
// (manifests read twice), their identities add up.
func approvalsFor(in []Approval) map[[2]string]map[Identity]bool {
	out := map[[2]string]map[Identity]bool{}
	for _, a := range in {
		k := [2]string{a.Namespace, a.NetworkPolicy}
		if out[k] == nil {
			out[k] = map[Identity]bool{}
		}
		for _, id := range a.Identities {
			out[k][id] = true
		}
	}
	return out
}

// PendingFinding is the IdentityPending finding of one pending identity of
// the NetworkPolicy ns/name.
func PendingFinding(ns, name string, p PendingIdentity) Finding {
	var what string
	switch {
	case strings.HasPrefix(string(p.Identity), identitySAPrefix):
		what = "ServiceAccount " + strings.TrimPrefix(string(p.Identity), identitySAPrefix)
	default:
		what = "namespace " + strings.TrimPrefix(string(p.Identity), identityNSPrefix)
	}
	var brought []string
	refs := []ObjectRef{npRef(ns, name)}
	if sa, ok := strings.CutPrefix(string(p.Identity), identitySAPrefix); ok {
		saNS, saName, _ := strings.Cut(sa, "/")
		refs = append(refs, ObjectRef{Kind: "ServiceAccount", Namespace: saNS, Name: saName})
	}
	for _, s := range p.Sources {
		refs = append(refs, s.Ref)
		who := strings.ToLower(s.Ref.Kind) + " " + refName(s.Ref)
		var detail []string
		if len(s.Labels) > 0 {
			detail = append(detail, "labels "+setString(s.Labels))
		}
		if len(s.FieldManagers) > 0 {
			detail = append(detail, "last written by "+strings.Join(s.FieldManagers, ", "))
		}
		if len(detail) > 0 {
			who += " (" + strings.Join(detail, ", ") + ")"
		}
		brought = append(brought, who)
	}
	msg := fmt.Sprintf("%s is pending review: %s now %s it through %s, after the first translation of this NetworkPolicy; it is left out of the generated policies until approved (a label change alone never grants access): check who changed those labels, then run 'netpol2authz approve -n %s %s %s' or list it in the IdentityApproval %s/%s",
		what, strings.Join(p.Peers, ", "), pick(len(p.Peers) == 1, "selects", "select"),
		cmp.Or(strings.Join(brought, ", "), "labels"), ns, name, p.Identity, ns, name)
	return Finding{Type: IdentityPending, Severity: SeverityOf(IdentityPending), Message: msg, Objects: refs}
}

func refName(r ObjectRef) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// SetPending replaces the pending identities of t (the same identities,
// with what the caller learnt about them, such as field managers) and
// rebuilds their IdentityPending findings.
func (t *Translation) SetPending(pending []PendingIdentity) {
	t.Pending = pending
	var f findingList
	for _, x := range t.Findings {
		if x.Type != IdentityPending {
			f = append(f, x)
		}
	}
	for _, p := range pending {
		f = append(f, PendingFinding(t.NetworkPolicy.Namespace, t.NetworkPolicy.Name, p))
	}
	t.Findings = f.sorted()
}
