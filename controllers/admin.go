package controllers

import (
	"cmp"
	"context"
	"fmt"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	netpolv1alpha1 "sigs.k8s.io/network-policy-api/apis/v1alpha1"
	netpolv1alpha2 "sigs.k8s.io/network-policy-api/apis/v1alpha2"
	netpolv1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Admin network policies (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
// ClusterNetworkPolicy) change what the NetworkPolicies mean, so every
// translation reads them all (docs/translation.md#admin-network-policies).
// Their CRDs may be absent, come and go: a kindWatcher (kindwatch.go)
// follows discovery, every Settings.AdminPolicyDiscoveryPeriod, and holds
// one converted list of every admin policy, which gathering and the event
// mapping read; a change of it enqueues every translated NetworkPolicy.

// adminKind is one kind, in one version, of admin network policy.
type adminKind = watchedKind[adminpolicy.Policy]

// adminWatcher reads the admin network policies where served.
type adminWatcher = kindWatcher[adminpolicy.Policy]

type adminWatch = kindWatch[adminpolicy.Policy]

// adminKinds are the kinds the operator reads, each kind's versions in
// order of preference: one ClusterNetworkPolicy served in two versions is
// one object, read once, in the newest version served.
var adminKinds = []adminKind{
	{
		gvk: schema.GroupVersion(netpolv1alpha1.GroupVersion).WithKind("AdminNetworkPolicy"), resource: "adminnetworkpolicies",
		newObj: func() client.Object { return &netpolv1alpha1.AdminNetworkPolicy{} },
		strict: true,
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1alpha1.AdminNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromAdminNetworkPolicy(p), nil
		},
	},
	{
		gvk: schema.GroupVersion(netpolv1alpha1.GroupVersion).WithKind("BaselineAdminNetworkPolicy"), resource: "baselineadminnetworkpolicies",
		newObj: func() client.Object { return &netpolv1alpha1.BaselineAdminNetworkPolicy{} },
		strict: true,
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1alpha1.BaselineAdminNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromBaselineAdminNetworkPolicy(p), nil
		},
	},
	{
		gvk: schema.GroupVersion(netpolv1beta1.GroupVersion).WithKind("ClusterNetworkPolicy"), resource: "clusternetworkpolicies",
		newObj: func() client.Object { return &netpolv1beta1.ClusterNetworkPolicy{} },
		strict: true,
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1beta1.ClusterNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromClusterNetworkPolicy(p), nil
		},
	},
	{
		gvk: schema.GroupVersion(netpolv1alpha2.GroupVersion).WithKind("ClusterNetworkPolicy"), resource: "clusternetworkpolicies",
		newObj: func() client.Object { return &netpolv1alpha2.ClusterNetworkPolicy{} },
		strict: true,
		convert: func(o client.Object) (adminpolicy.Policy, error) {
			p, ok := o.(*netpolv1alpha2.ClusterNetworkPolicy)
			if !ok {
				return adminpolicy.Policy{}, fmt.Errorf("unexpected %T", o)
			}
			return adminpolicy.FromClusterNetworkPolicyV1alpha2(p)
		},
	},
}

// DefaultAdminPolicyDiscoveryPeriod is how often the operator asks which
// admin network policy kinds are served, unless
// --admin-policy-discovery-period says otherwise.
const DefaultAdminPolicyDiscoveryPeriod = 10 * time.Second

func newAdminWatcher(mgr ctrl.Manager, period time.Duration) (*adminWatcher, error) {
	if period <= 0 {
		period = DefaultAdminPolicyDiscoveryPeriod
	}
	w, err := newKindWatcher(mgr, "admin network policies", "admin-policies", adminKinds, period)
	if err != nil {
		return nil, err
	}
	w.compare = func(a, b *adminpolicy.Policy) int {
		return cmp.Or(adminpolicy.Compare(a, b), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	}
	w.unreadable = unreadablePolicy
	return w, nil
}

// discoverAdminKinds asks the API server which admin kinds it serves, in
// which versions, and returns the preferred version of each served kind.
func discoverAdminKinds(ctx context.Context, dc discovery.ServerResourcesInterfaceWithContext) (map[string]adminKind, error) {
	return discoverKinds(ctx, dc, adminKinds)
}

// unreadablePolicy stands for an admin policy that did not convert: it
// selects nothing and fails validation (an unknown tier), so the engine
// leaves it out and reports AdminPolicyInvalid with err.
func unreadablePolicy(k adminKind, o client.Object, err error) adminpolicy.Policy {
	return adminpolicy.Policy{
		Kind: adminpolicy.Kind(k.gvk.Kind), APIVersion: k.gvk.GroupVersion().String(), Name: o.GetName(), UID: o.GetUID(),
		Tier: adminpolicy.Tier("unreadable (" + err.Error() + ")"),
	}
}

// Hooks of the event mapping and gathering: what a NetworkPolicy depends
// on includes what the admin policies make it read.

// dependencies is what the translation of np reads, with the admin
// policies and the Gateways.
func (m mapper) dependencies(np *networkingv1.NetworkPolicy) translate.Dependencies {
	return m.Deps.of(np).WithAdmin(m.Admin.Items()).WithWaypoints(m.Gateways.Items())
}

// listCrossNamespace lists the NetworkPolicies that a pod or namespace of
// namespace ns can matter to, besides those of ns: those with a
// namespaceSelector (the index), or all of them when admin policies make
// other namespaces' pods and labels matter to every NetworkPolicy, or ns
// holds a Gateway (a waypoint's pods matter to every NetworkPolicy).
func (m mapper) listCrossNamespace(ctx context.Context, ns string, list *networkingv1.NetworkPolicyList) error {
	if len(m.Admin.Items()) > 0 || m.gatewayNamespace(ns) {
		return m.Client.List(ctx, list, client.UnsafeDisableDeepCopy)
	}
	return m.Client.List(ctx, list, client.MatchingFields{indexScope: scopeAnyNamespace}, client.UnsafeDisableDeepCopy)
}
