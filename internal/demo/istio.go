package demo

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// showIstio tells what a real istiod made of the generated policies: its
// webhook admitted every one (the operator could not have created them
// otherwise), the verdict each NetworkPolicyTranslation carries
// (IstioAccepted), and how istiod compiled the database's policy for
// ztunnel.
func showIstio(ctx context.Context, c client.Client, istiod *testenv.Istiod, o Options, say func(string, ...any)) error {
	say("\n==> What istiod made of them")
	var list policyv1alpha1.NetworkPolicyTranslationList
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, o.Wait, true, func(ctx context.Context) (bool, error) {
		if err := c.List(ctx, &list); err != nil {
			return false, err
		}
		for _, npt := range list.Items {
			if cond := meta.FindStatusCondition(npt.Status.Conditions, policyv1alpha1.ConditionIstioAccepted); cond == nil || cond.Reason == "PartialStatus" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("istiod's verdict did not reach the NetworkPolicyTranslations within %s: %w", o.Wait, err)
	}
	var aps securityv1.AuthorizationPolicyList
	if err := c.List(ctx, &aps); err != nil {
		return err
	}
	say("    istiod's webhook admitted all %d generated AuthorizationPolicies", len(aps.Items))
	slices.SortFunc(list.Items, func(a, b policyv1alpha1.NetworkPolicyTranslation) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for _, npt := range list.Items {
		cond := meta.FindStatusCondition(npt.Status.Conditions, policyv1alpha1.ConditionIstioAccepted)
		say("    %-32s IstioAccepted=%s (%s): %s", npt.Namespace+"/"+npt.Name, cond.Status, cond.Reason, cond.Message)
	}

	key, err := parseKey(o.DBPolicy)
	if err != nil {
		return err
	}
	az, err := istiod.Ambientz(ctx)
	if err != nil {
		return err
	}
	p := az.Policy(key.Namespace, key.Name)
	if p == nil {
		return fmt.Errorf("istiod's /debug/ambientz has no policy %s", key)
	}
	say("\n    ztunnel's compiled %s (GET /debug/ambientz):", key)
	for _, line := range p.Summary() {
		say("      %s", line)
	}
	return showSidecarRBAC(ctx, c, istiod, key, say)
}

// showSidecarRBAC asks istiod, posing as the sidecar of the policy's first
// selected pod, for its inbound listener and shows the RBAC rules it holds
// for the policy.
func showSidecarRBAC(ctx context.Context, c client.Client, istiod *testenv.Istiod, key client.ObjectKey, say func(string, ...any)) error {
	ap := &securityv1.AuthorizationPolicy{}
	if err := c.Get(ctx, key, ap); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingLabels(ap.Spec.GetSelector().GetMatchLabels())); err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no pod selected by %s", key)
	}
	pod := &pods.Items[0]
	node, err := testenv.SidecarNode(pod)
	if err != nil {
		return err
	}
	// istiod's first answer to a new proxy may come before it has matched
	// the pod; ask again until the policy's rules are there.
	prefix := fmt.Sprintf("ns[%s]-policy[%s]-", key.Namespace, key.Name)
	var filter testenv.RBACFilter
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		listeners, err := testenv.FetchListeners(ctx, istiod.GRPCAddr, node)
		if err != nil {
			return false, nil
		}
		filter, _, err = testenv.InboundRBAC(listeners)
		return err == nil && slices.ContainsFunc(slices.Collect(maps.Keys(filter.Rules)), func(n string) bool { return strings.HasPrefix(n, prefix) }), nil
	})
	if err != nil {
		return fmt.Errorf("istiod sent %s/%s's sidecar no RBAC rule of %s: %w", pod.Namespace, pod.Name, key, err)
	}
	say("\n    the RBAC filter istiod sends %s/%s's sidecar (xDS, inbound listener), for %s:", pod.Namespace, pod.Name, key)
	for _, name := range slices.Sorted(maps.Keys(filter.Rules)) {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		r := filter.Rules[name]
		var from []string
		for _, s := range r.From {
			var parts []string
			for field, vals := range map[string][]string{"principals": s.Principals, "namespaces": s.Namespaces, "ipBlocks": s.IPBlocks, "notIpBlocks": s.NotIPBlocks} {
				if len(vals) > 0 {
					parts = append(parts, field+"="+strings.Join(vals, ","))
				}
			}
			slices.Sort(parts)
			from = append(from, "{"+strings.Join(parts, " ")+"}")
		}
		var ports []string
		for _, o := range r.To {
			ports = append(ports, o.Ports...)
		}
		say("      %s: from %s; to ports %s", name, strings.Join(from, " OR "), strings.Join(ports, ","))
	}
	return nil
}
