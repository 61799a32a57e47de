package translate

import (
	"maps"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

// Dependencies is what the translation of one NetworkPolicy reads besides
// the policy itself and the mesh settings: which namespaces and which pods.
// The engine owns this answer, so that whoever watches a cluster (the
// operator's field index, its event mapping and its gathering) reacts to
// exactly what can change what Translate returns. FuzzDependencies checks
// it against Translate.
type Dependencies struct {
	namespace string
	// target may select a pod: the podSelector, or for matchExpressions
	// its matchLabels alone (a projection Istio selects by may cover pods
	// the expressions exclude).
	target labels.Selector
	peers  []depPeer
	// ownLabels: the labels of the policy's own namespace matter (an admin
	// policy's subject selects namespaces by them).
	ownLabels bool
}

// depPeer is one podSelector or namespaceSelector peer of an ingress rule.
type depPeer struct {
	// nsSel selects the peer's namespaces; nil means the policy's own.
	nsSel labels.Selector
	// podSel selects the peer's pods; nil means every pod there.
	podSel labels.Selector
}

// DependenciesOf returns what the translation of np depends on. Selectors
// that do not parse select nothing (the policy is then invalid, and its
// translation keeps what exists whatever the pods do).
func DependenciesOf(np *networkingv1.NetworkPolicy) Dependencies {
	d := Dependencies{namespace: np.Namespace, target: labels.Nothing()}
	sel := np.Spec.PodSelector
	if len(sel.MatchExpressions) > 0 {
		sel = metav1.LabelSelector{MatchLabels: sel.MatchLabels}
	}
	if s, err := metav1.LabelSelectorAsSelector(&sel); err == nil {
		d.target = s
	}
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.IPBlock != nil {
				continue
			}
			p := depPeer{}
			if peer.NamespaceSelector != nil {
				p.nsSel = parseOrNothing(peer.NamespaceSelector)
			}
			if peer.PodSelector != nil {
				p.podSel = parseOrNothing(peer.PodSelector)
			}
			d.peers = append(d.peers, p)
		}
	}
	return d
}

// WithAdmin adds what the admin network policies of the cluster make the
// translation read: the labels of the policy's own namespace (a subject
// selects namespaces by them) and, as peers, the pods and namespaces their
// ingress rules select. A change of an admin policy itself may change any
// translation: callers re-translate every NetworkPolicy then.
func (d Dependencies) WithAdmin(policies []adminpolicy.Policy) Dependencies {
	if len(policies) == 0 {
		return d
	}
	d.ownLabels = true
	d.peers = slices.Clone(d.peers)
	for i := range policies {
		for _, r := range policies[i].Ingress {
			for _, peer := range r.Peers {
				if peer.Pods == nil {
					// A peer of a newer version: in a Deny it matches
					// every pod, so any pod may matter.
					d.peers = append(d.peers, depPeer{nsSel: labels.Everything()})
					continue
				}
				p := depPeer{nsSel: parseOrNothing(&peer.Pods.Namespaces)}
				if peer.Pods.Pods != nil {
					p.podSel = parseOrNothing(peer.Pods.Pods)
				}
				d.peers = append(d.peers, p)
			}
		}
	}
	return d
}

func parseOrNothing(ls *metav1.LabelSelector) labels.Selector {
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return labels.Nothing()
	}
	return s
}

// CrossNamespace says a peer selects namespaces by their labels, so that a
// pod or namespace anywhere may matter.
func (d Dependencies) CrossNamespace() bool {
	for _, p := range d.peers {
		if p.nsSel != nil {
			return true
		}
	}
	return false
}

// ReadsPodsOf says whether the pods of namespace name, with these labels,
// can change the translation: it is the policy's own, or a peer's
// namespaceSelector matches it.
func (d Dependencies) ReadsPodsOf(name string, nsLabels map[string]string) bool {
	if name == d.namespace {
		return true
	}
	for _, p := range d.peers {
		if p.nsSel != nil && p.nsSel.Matches(labels.Set(nsLabels)) {
			return true
		}
	}
	return false
}

// NamespaceChangeMatters says whether a namespace going from old to cur
// (nil: absent) can change the translation: the policy's own namespace
// when its netpol2authz annotations or its ambient label change, and any
// namespace whose label change a peer's namespaceSelector sees.
func (d Dependencies) NamespaceChangeMatters(old, cur *Namespace) bool {
	var name string
	var oldLabels, curLabels, oldAnn, curAnn map[string]string
	if old != nil {
		name, oldLabels, oldAnn = old.Name, old.Labels, old.Annotations
	}
	if cur != nil {
		name, curLabels, curAnn = cur.Name, cur.Labels, cur.Annotations
	}
	lifecycle := old == nil || cur == nil
	if name == d.namespace {
		if lifecycle || oldLabels[labelDataplaneMode] != curLabels[labelDataplaneMode] || (d.ownLabels && !maps.Equal(oldLabels, curLabels)) {
			return true
		}
		for _, k := range NamespaceAnnotations {
			va, oka := oldAnn[k]
			vb, okb := curAnn[k]
			if va != vb || oka != okb {
				return true
			}
		}
	}
	if !lifecycle && maps.Equal(oldLabels, curLabels) {
		return false
	}
	for _, p := range d.peers {
		if p.nsSel == nil {
			continue
		}
		if (old != nil && p.nsSel.Matches(labels.Set(oldLabels))) || (cur != nil && p.nsSel.Matches(labels.Set(curLabels))) {
			return true
		}
	}
	return false
}

// PodMatters says whether pod p, in a namespace with labels nsLabels, can
// change the translation: the podSelector may select it, or a peer selects
// it or another pod of its ServiceAccount (whose principal it then shares).
// sameServiceAccount lists the other pods of p's namespace and
// ServiceAccount; it is called only when that decides. Callers ask with the
// pod's old and new state: a pod that leaves a selector matters too.
func (d Dependencies) PodMatters(p *Pod, nsLabels map[string]string, sameServiceAccount func() []Pod) bool {
	podLabels := labels.Set(p.Labels)
	if p.Namespace == d.namespace && d.target.Matches(podLabels) {
		return true
	}
	for _, peer := range d.peers {
		switch {
		case peer.nsSel == nil && p.Namespace != d.namespace:
			continue
		case peer.nsSel != nil && !peer.nsSel.Matches(labels.Set(nsLabels)):
			continue
		}
		if peer.podSel == nil || peer.podSel.Matches(podLabels) {
			return true
		}
		if sameServiceAccount == nil {
			continue
		}
		for _, other := range sameServiceAccount() {
			if other.Name != p.Name && peer.podSel.Matches(labels.Set(other.Labels)) {
				return true
			}
		}
	}
	return false
}
