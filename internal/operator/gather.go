package operator

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Input is what one reconcile decides from.
type Input struct {
	// Snapshot holds the one NetworkPolicy, every namespace, and the pods
	// the policy can depend on.
	Snapshot translate.Snapshot
	// Namespace is the NetworkPolicy's namespace; nil when the cache does
	// not know it.
	Namespace *corev1.Namespace
}

// Gather builds the input of one translation from the informer cache behind
// r: the NetworkPolicy, all namespaces (they are few), and only the pods of
// the namespaces the policy can depend on: its own and those its ingress
// peers' namespaceSelectors match now (all of them for `{}`). Lists skip the
// cache's deep copy: nothing here or in the engine writes to them.
func Gather(ctx context.Context, r client.Reader, s Settings, np *networkingv1.NetworkPolicy) (*Input, error) {
	mesh, err := s.Mesh(ctx, r)
	if err != nil {
		return nil, err
	}
	var nsList corev1.NamespaceList
	if err := r.List(ctx, &nsList, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	in := &Input{Snapshot: translate.Snapshot{
		NetworkPolicies: []networkingv1.NetworkPolicy{*np},
		Namespaces:      make([]translate.Namespace, 0, len(nsList.Items)),
		Mesh:            mesh,
	}}
	for i := range nsList.Items {
		ns := &nsList.Items[i]
		in.Snapshot.Namespaces = append(in.Snapshot.Namespaces, translate.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
		if ns.Name == np.Namespace {
			in.Namespace = ns
		}
	}
	for _, ns := range sets.List(dependentNamespaces(np, nsList.Items)) {
		var pods corev1.PodList
		if err := r.List(ctx, &pods, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing pods of namespace %s: %w", ns, err)
		}
		for i := range pods.Items {
			in.Snapshot.Pods = append(in.Snapshot.Pods, EnginePod(&pods.Items[i]))
		}
	}
	return in, nil
}

// dependentNamespaces are the namespaces whose pods can change the
// translation of np: its own, and those an ingress peer's namespaceSelector
// matches. An invalid selector matches nothing: the engine reports it.
func dependentNamespaces(np *networkingv1.NetworkPolicy, namespaces []corev1.Namespace) sets.Set[string] {
	out := sets.New(np.Namespace)
	for _, sel := range namespaceSelectors(np) {
		for i := range namespaces {
			if sel.Matches(labels.Set(namespaces[i].Labels)) {
				out.Insert(namespaces[i].Name)
			}
		}
	}
	return out
}

// namespaceSelectors are the parsed namespaceSelectors of np's ingress
// peers; invalid ones are left out.
func namespaceSelectors(np *networkingv1.NetworkPolicy) []labels.Selector {
	var out []labels.Selector
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.NamespaceSelector == nil {
				continue
			}
			if sel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err == nil {
				out = append(out, sel)
			}
		}
	}
	return out
}
