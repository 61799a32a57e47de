package translate

import (
	"maps"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

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
	// readsTargetLabels: the translation reads more of a selected pod's
	// labels than whether the podSelector selects it: matchExpressions
	// split the policy by projections of the labels, and named ports split
	// it by labels that tell pods apart.
	readsTargetLabels bool
	// ownLabels: the labels of the policy's own namespace matter (an admin
	// policy's subject selects namespaces by them).
	ownLabels bool
	// waypointNS are the namespaces of the cluster's Gateways: with any,
	// the waypoints' pods there, every pod of the policy's own namespace
	// (a Service bound to a waypoint may front it) and its labels matter.
	waypointNS map[string]bool
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
		d.readsTargetLabels = true
	}
	if s, err := metav1.LabelSelectorAsSelector(&sel); err == nil {
		d.target = s
	}
	for _, rule := range np.Spec.Ingress {
		for _, port := range rule.Ports {
			if port.Port != nil && port.Port.Type == intstr.String {
				d.readsTargetLabels = true
			}
		}
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

// WithWaypoints adds what the Gateways of the cluster make the translation
// read (docs/translation.md#waypoints): the pods of their namespaces (a
// waypoint's pods and ServiceAccounts), every pod and label of the
// policy's own namespace (the endpoints of a Service bound to a waypoint,
// and the use-waypoint labels), and the other NetworkPolicies there (which
// of those endpoints they isolate). Services and Gateways themselves: see
// ServiceChangeMatters and GatewayChangeMatters.
func (d Dependencies) WithWaypoints(gateways []Gateway) Dependencies {
	if len(gateways) == 0 {
		return d
	}
	d.waypointNS = make(map[string]bool, len(gateways))
	for i := range gateways {
		d.waypointNS[gateways[i].Namespace] = true
	}
	return d
}

// ServiceChangeMatters says whether a Service going from old to cur (nil:
// absent) can change the translation: a Service of the policy's own
// namespace may select its pods and name their waypoint.
func (d Dependencies) ServiceChangeMatters(old, cur *Service) bool {
	return (old != nil && old.Namespace == d.namespace) || (cur != nil && cur.Namespace == d.namespace)
}

// GatewayChangeMatters says whether a Gateway going from old to cur can
// change the translation. Any may: labels name waypoints in any namespace,
// and Gateways are few, so every policy is translated again.
func (d Dependencies) GatewayChangeMatters(old, cur *Gateway) bool { return old != nil || cur != nil }

// PolicyChangeMatters says whether another NetworkPolicy changing (created,
// deleted, its podSelector, policyTypes or ingress rules edited) can
// change this translation: with waypoints, one of the same namespace may
// isolate the endpoints of a Service the pods share, and its rules' ports
// say where the waypoint is let in at them (Snapshot.OtherPolicies).
func (d Dependencies) PolicyChangeMatters(other *networkingv1.NetworkPolicy) bool {
	return len(d.waypointNS) > 0 && other.Namespace == d.namespace
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
	if name == d.namespace || d.waypointNS[name] {
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
		if lifecycle || oldLabels[labelDataplaneMode] != curLabels[labelDataplaneMode] || ((d.ownLabels || len(d.waypointNS) > 0) && !maps.Equal(oldLabels, curLabels)) {
			return true
		}
		for _, k := range []string{LabelUseWaypoint, LabelUseWaypointNamespace} {
			if oldLabels[k] != curLabels[k] {
				return true
			}
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
	if len(d.waypointNS) > 0 && (p.Namespace == d.namespace || d.waypointNS[p.Namespace]) {
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

// PodChangeMatters says whether a pod going from old to cur (an update; both
// present) can change the translation. When only its labels changed, which
// is what relabelling, rollouts' hash labels and most pod updates are, it is
// more precise than asking PodMatters of both states: its ServiceAccount,
// sidecar, ports and phase stay, so the policy's output moves only when
// the pod enters or leaves the podSelector (or, selected before and after,
// when the policy splits its output by labels: matchExpressions, named
// ports, admin policies' subjects), or is selected by a podSelector peer
// in either state. Peers that select every pod (`{}`) or only namespaces
// resolve to namespaces, which labels of pods do not change.
func (d Dependencies) PodChangeMatters(old, cur *Pod, nsLabels map[string]string, sameServiceAccount func() []Pod) bool {
	if !onlyLabelsDiffer(old, cur) {
		return d.PodMatters(old, nsLabels, sameServiceAccount) || d.PodMatters(cur, nsLabels, sameServiceAccount)
	}
	if maps.Equal(old.Labels, cur.Labels) {
		return false
	}
	before, after := labels.Set(old.Labels), labels.Set(cur.Labels)
	if cur.Namespace == d.namespace {
		in, stays := d.target.Matches(before), d.target.Matches(after)
		if in != stays || (in && (d.readsTargetLabels || d.ownLabels)) {
			return true
		}
	}
	if len(d.waypointNS) > 0 && (cur.Namespace == d.namespace || d.waypointNS[cur.Namespace]) {
		return true
	}
	for _, peer := range d.peers {
		switch {
		case peer.nsSel == nil && cur.Namespace != d.namespace:
			continue
		case peer.nsSel != nil && !peer.nsSel.Matches(labels.Set(nsLabels)):
			continue
		case peer.podSel == nil || peer.podSel.Empty():
			continue
		}
		if peer.podSel.Matches(before) || peer.podSel.Matches(after) {
			return true
		}
	}
	return false
}

// onlyLabelsDiffer says whether two states of a pod differ in nothing the
// engine reads but their labels.
func onlyLabelsDiffer(a, b *Pod) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.ServiceAccount == b.ServiceAccount && a.Phase == b.Phase &&
		a.IP == b.IP && a.HostNetwork == b.HostNetwork && a.Sidecar == b.Sidecar && a.Template == b.Template && slices.Equal(a.Ports, b.Ports)
}
