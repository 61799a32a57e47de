package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
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
	return nil
}
