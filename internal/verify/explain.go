package verify

import (
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// explainer says which differences one finding explains: a direction, the
// sources and destinations it is about (taken from the finding's objects
// and its NetworkPolicy), and optionally the ports of that policy.
type explainer struct {
	id         int
	expl       *Explanation
	more, less bool
	// src nil: any source.
	src bitset
	// dsts nil: any destination.
	dsts map[int]bool
	// portsOf, when set, limits the explanation to the ports the policy's
	// ingress rules name at the destination.
	portsOf *netpol
	// egress: it explains what the source's egress denies.
	egress bool
	rank   int
	// support lists the words of src that are not zero, so that most
	// explainers are ruled out in a few operations.
	support []int
}

// overlaps says whether b shares a source with the explainer.
func (x *explainer) overlaps(b bitset) bool {
	for _, w := range x.support {
		if x.src[w]&b[w] != 0 {
			return true
		}
	}
	return false
}

// rank orders explanations when several fit: the most specific first.
var rank = map[translate.FindingType]int{
	translate.IdentityPending:      0,
	translate.TargetNotInMesh:      1,
	translate.SharedIdentity:       2,
	translate.SourceNotInMesh:      3,
	translate.SelectorOverreach:    4,
	translate.NamedPortVaries:      5,
	translate.PortRangeTooLarge:    6,
	translate.NamespaceUnknown:     7,
	translate.Conflict:             8,
	translate.RootNamespaceSkipped: 9,
	translate.InvalidAnnotation:    10,
	translate.EgressNotTranslated:  11,
	translate.AdminPolicyConflict:  12,
	translate.AdminPolicyAllows:    13,
	translate.AdminPolicyDenies:    14,
	translate.WaypointInPath:       15,
}

// rankAdminOwn ranks verify's own admin explanations, after every finding.
const rankAdminOwn = 16

// waypointPeer is what IdentityPending names as the peer of a waypoint's
// ServiceAccount: the label that brought it.
const waypointPeer = labelUseWaypoint

// explainers turns the findings of the translation into explainers, and
// indexes them by destination class.
func (e *engine) explainers() (byDst map[int][]*explainer, anyDst []*explainer) {
	w := e.w
	var all []*explainer
	add := func(x *explainer) {
		x.id = len(all)
		all = append(all, x)
	}
	for _, t := range e.in.Translation.Translations {
		np := e.npByRef[t.NetworkPolicy]
		if np == nil {
			continue // left out: nothing to explain
		}
		scope := e.translationScope(t, np)
		selected := map[int]bool{}
		if np.ingress {
			for _, i := range w.dstByNS[np.ref.Namespace] {
				if np.selects(w.dsts[i]) {
					selected[i] = true
				}
			}
		}
		var egressScope bitset
		if np.egress {
			egressScope = e.np.selectedSources(np)
		}
		permissive := t.Fidelity != translate.FidelityStrict
		pending := pendingByFinding(t)
		for _, f := range t.Findings {
			x := &explainer{expl: &Explanation{
				Type: string(f.Type), By: ByTranslation, NetworkPolicy: t.NetworkPolicy.String(),
				Severity: string(f.Severity), Message: f.Message, Objects: f.Objects,
			}, rank: rank[f.Type]}
			objSrc, objDst := e.objectClasses(f.Objects)
			switch f.Type {
			case translate.SharedIdentity:
				x.src, x.dsts, x.portsOf = e.serviceAccountSources(f.Objects), scope, np
				if permissive {
					x.more = true
				} else {
					x.less = true
					x.src.or(objSrc)
				}
			case translate.SelectorOverreach:
				// Permissive allows everything to the projection's labels,
				// strict nothing: each errs one way only.
				x.more, x.less, x.dsts = permissive, !permissive, objDst
			case translate.PortRangeTooLarge:
				x.dsts = scope
				if permissive {
					x.more = true
				} else {
					x.less, x.portsOf = true, np
				}
			case translate.NamedPortVaries:
				x.more, x.less, x.dsts = permissive, !permissive, objDst
			case translate.SourceNotInMesh:
				// Sources without identity lose access (strict, or no known
				// address); permissive's address fallback may let in others
				// at the same addresses, or anyone for workload templates.
				x.less, x.src, x.dsts, x.portsOf = true, objSrc, scope, np
				if permissive {
					add(x)
					x = &explainer{expl: x.expl, more: true, src: e.sameAddressSources(f.Objects), dsts: scope, portsOf: np, rank: x.rank}
				}
			case translate.IdentityPending:
				// The identity is left out of every rule of the policy:
				// its sources lose what the policy allows them, at its
				// pods and ports.
				p, ok := pending[f.Message]
				if !ok {
					continue
				}
				x.less, x.src, x.dsts, x.portsOf = true, e.identitySources(p.Identity), scope, np
				if slices.Contains(p.Peers, waypointPeer) {
					// A waypoint's ServiceAccount: every client that comes
					// through it loses what the policy allows.
					x.src = nil
				}
			case translate.WaypointInPath:
				// Permissive errs on allowing, strict on denying, except
				// where strict says it cannot keep its promise.
				x.more = permissive || strings.Contains(f.Message, "strict cannot keep its promise")
				x.less, x.dsts = !permissive, objDst
			case translate.TargetNotInMesh:
				x.more, x.dsts = true, objDst
			case translate.AdminPolicyAllows, translate.AdminPolicyDenies, translate.AdminPolicyConflict:
				if !e.adminFindingExplainer(x, f, permissive, objDst) {
					continue
				}
			case translate.EgressNotTranslated:
				if egressScope == nil {
					continue
				}
				x.more, x.src, x.egress = true, egressScope, true
			case translate.NamespaceUnknown:
				x.more, x.less, x.src, x.dsts, x.portsOf = true, true, e.namespaceSources(f.Objects), scope, np
			case translate.RootNamespaceSkipped, translate.InvalidAnnotation, translate.Conflict:
				// Nothing was generated for the policy: its ingress is not
				// enforced by Istio (Conflict: and where other policies
				// restrict the same pods, what it allows is lost), and its
				// egress is not either.
				x.more, x.less, x.dsts = true, f.Type == translate.Conflict, selected
				if egressScope != nil {
					add(x)
					x = &explainer{expl: x.expl, more: true, src: egressScope, egress: true, rank: x.rank}
				}
			default:
				continue
			}
			add(x)
		}
	}
	e.adminOwnExplainers(add)
	slices.SortStableFunc(all, func(a, b *explainer) int { return a.rank - b.rank })
	for _, x := range all {
		for w, word := range x.src {
			if word != 0 {
				x.support = append(x.support, w)
			}
		}
	}
	byDst = map[int][]*explainer{}
	for _, x := range all {
		if x.dsts == nil {
			anyDst = append(anyDst, x)
			continue
		}
		for d := range x.dsts {
			byDst[d] = append(byDst[d], x)
		}
	}
	return byDst, anyDst
}

// translationScope are the destination classes a translation is about: the
// pods the NetworkPolicy selects, and those its generated policies select.
func (e *engine) translationScope(t translate.Translation, np *netpol) map[int]bool {
	w := e.w
	out := map[int]bool{}
	for _, i := range w.dstByNS[np.ref.Namespace] {
		d := w.dsts[i]
		if np.ingress && np.selects(d) {
			out[i] = true
			continue
		}
		for _, ap := range t.Policies {
			ml := ap.Spec.GetSelector().GetMatchLabels()
			if len(ml) == 0 || labels.SelectorFromSet(ml).Matches(d.labels) {
				out[i] = true
				break
			}
		}
	}
	return out
}

// objectClasses are the source and destination classes holding the pods
// (or workload templates) a finding names.
func (e *engine) objectClasses(objs []translate.ObjectRef) (bitset, map[int]bool) {
	src, dst := e.w.newSrcSet(), map[int]bool{}
	for _, o := range objs {
		for _, p := range e.w.podByRef[objectKey(o)] {
			src.set(p.src)
			dst[p.dst] = true
		}
	}
	return src, dst
}

// serviceAccountSources are the source classes of the ServiceAccounts a
// finding names.
func (e *engine) serviceAccountSources(objs []translate.ObjectRef) bitset {
	b := e.w.newSrcSet()
	for _, o := range objs {
		if o.Kind != "ServiceAccount" {
			continue
		}
		for _, i := range e.w.srcByNS[o.Namespace] {
			if e.w.srcs[i].sa == o.Name {
				b.set(i)
			}
		}
	}
	return b
}

// pendingByFinding maps the message of each IdentityPending finding of t to
// its pending identity.
func pendingByFinding(t translate.Translation) map[string]translate.PendingIdentity {
	if len(t.Pending) == 0 {
		return nil
	}
	out := make(map[string]translate.PendingIdentity, len(t.Pending))
	for _, p := range t.Pending {
		out[translate.PendingFinding(t.NetworkPolicy.Namespace, t.NetworkPolicy.Name, p).Message] = p
	}
	return out
}

// identitySources are the source classes an identity stands for: the pods
// of a ServiceAccount (with and without a mesh identity: a pending
// ServiceAccount adds neither its principal nor the addresses of its pods
// outside the mesh), or every pod of a namespace.
func (e *engine) identitySources(id translate.Identity) bitset {
	b := e.w.newSrcSet()
	if rest, ok := strings.CutPrefix(string(id), "serviceaccount/"); ok {
		ns, sa, _ := strings.Cut(rest, "/")
		for _, i := range e.w.srcByNS[ns] {
			if e.w.srcs[i].sa == sa {
				b.set(i)
			}
		}
		return b
	}
	if ns, ok := strings.CutPrefix(string(id), "namespace/"); ok {
		for _, i := range e.w.srcByNS[ns] {
			b.set(i)
		}
	}
	return b
}

// namespaceSources are the source classes of the namespaces a finding
// names.
func (e *engine) namespaceSources(objs []translate.ObjectRef) bitset {
	b := e.w.newSrcSet()
	for _, o := range objs {
		if o.Kind == "Namespace" {
			for _, i := range e.w.srcByNS[o.Name] {
				b.set(i)
			}
		}
	}
	return b
}

// sameAddressSources are the sources an address fallback for the pods a
// finding names lets in: any source when a workload template's pods have
// no known address (the fallback is every address), else the sources at
// those pods' addresses.
func (e *engine) sameAddressSources(objs []translate.ObjectRef) bitset {
	addrs := map[netip.Addr]bool{}
	for _, o := range objs {
		if o.Kind != "Pod" {
			return e.w.allSrc
		}
		for _, p := range e.w.podByRef[objectKey(o)] {
			if p.addr.IsValid() {
				addrs[p.addr] = true
			}
		}
	}
	b := e.w.newSrcSet()
	for a := range addrs {
		for _, i := range e.w.srcByAddr[a] {
			b.set(i)
		}
	}
	return b
}

// ipBlockExplanation is verify's own explanation for connections only one
// reading of ipBlock allows.
var ipBlockExplanation = &Explanation{
	Type: IPBlockPodAddress, By: ByVerify, Severity: string(translate.SeverityWarning),
	Message: "a NetworkPolicy ipBlock contains the source pod's address: Kubernetes intends ipBlock for addresses outside the cluster and leaves it to the network plugin whether it matches pod addresses, while Istio matches ipBlocks against the source address; tell verify what your plugin does with --ipblock-pods, or select these pods by label instead",
}
