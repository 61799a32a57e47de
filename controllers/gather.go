package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// input is what one reconcile decides from.
type input struct {
	// Snapshot holds the one NetworkPolicy, every namespace, and the pods
	// the policy can depend on.
	Snapshot translate.Snapshot
	// Namespace is the NetworkPolicy's namespace; nil when the cache does
	// not know it.
	Namespace *corev1.Namespace
	// StaleApproval is an IdentityApproval of the policy's name that the
	// operator created for an earlier NetworkPolicy of that name (its
	// controller reference has another UID): it is not in the snapshot,
	// and is replaced when the new policy's baseline is recorded.
	StaleApproval *policyv1alpha1.IdentityApproval
}

// watched is what the operator's own watchers hold: the admin policies
// (admin.go) and the Gateways (waypoints.go), each read by informers of
// their own.
type watched struct {
	Admin    []adminpolicy.Policy
	Gateways []translate.Gateway
}

// gather builds the input of one translation from the informer cache behind
// r and what the watchers read (w): the NetworkPolicy, all namespaces (they
// are few), the admin policies, the waypoints (the Services of its
// namespace, the Gateways, the other NetworkPolicies there), and only the
// pods of the namespaces the policy can depend on: its own, those its
// ingress peers' namespaceSelectors match now (all of them for `{}`),
// those the admin policies' peers match and those of the Gateways, from
// the pod store. Lists skip the cache's deep copy: nothing here or in the
// engine writes to them.
func gather(ctx context.Context, r client.Reader, pods *podStore, s Settings, w watched, np *networkingv1.NetworkPolicy) (*input, error) {
	mesh, err := s.Mesh(ctx, r)
	if err != nil {
		return nil, err
	}
	var nsList corev1.NamespaceList
	if err := r.List(ctx, &nsList, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	in := &input{Snapshot: translate.Snapshot{
		NetworkPolicies: []networkingv1.NetworkPolicy{*np},
		Namespaces:      make([]translate.Namespace, 0, len(nsList.Items)),
		Mesh:            mesh,
		AdminPolicies:   w.Admin,
	}}
	for i := range nsList.Items {
		ns := &nsList.Items[i]
		in.Snapshot.Namespaces = append(in.Snapshot.Namespaces, translate.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations})
		if ns.Name == np.Namespace {
			in.Namespace = ns
		}
	}
	if err := gatherApproval(ctx, r, np, in); err != nil {
		return nil, err
	}
	if err := gatherWaypoints(ctx, r, np, w.Gateways, in); err != nil {
		return nil, err
	}
	for _, ns := range sets.List(dependentNamespaces(np, w, nsList.Items)) {
		list, err := pods.inNamespace(ns)
		if err != nil {
			return nil, fmt.Errorf("listing pods of namespace %s: %w", ns, err)
		}
		in.Snapshot.Pods = append(in.Snapshot.Pods, list...)
	}
	return in, nil
}

// gatherApproval puts the NetworkPolicy's IdentityApproval, when it has a
// current one, into the snapshot.
func gatherApproval(ctx context.Context, r client.Reader, np *networkingv1.NetworkPolicy, in *input) error {
	a := &policyv1alpha1.IdentityApproval{}
	switch err := r.Get(ctx, client.ObjectKeyFromObject(np), a); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading IdentityApproval %s/%s: %w", np.Namespace, np.Name, err)
	}
	if ref := metav1.GetControllerOfNoCopy(a); ref != nil && isNetworkPolicyRef(ref, np.Name) && np.UID != "" && ref.UID != np.UID {
		in.StaleApproval = a
		return nil
	}
	rec := translate.Approval{Namespace: np.Namespace, NetworkPolicy: np.Name}
	for _, id := range a.Spec.Identities {
		rec.Identities = append(rec.Identities, translate.Identity(id))
	}
	in.Snapshot.Approvals = []translate.Approval{rec}
	return nil
}

// dependentNamespaces are the namespaces whose pods can change the
// translation of np, as the engine's dependency model says, the admin
// policies' peers and the Gateways' namespaces included.
func dependentNamespaces(np *networkingv1.NetworkPolicy, w watched, namespaces []corev1.Namespace) sets.Set[string] {
	d := translate.DependenciesOf(np).WithAdmin(w.Admin).WithWaypoints(w.Gateways)
	out := sets.New(np.Namespace)
	for i := range namespaces {
		if d.ReadsPodsOf(namespaces[i].Name, namespaces[i].Labels) {
			out.Insert(namespaces[i].Name)
		}
	}
	return out
}
