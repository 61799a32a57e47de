package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// appliedPolicies is what Apply put in place.
type appliedPolicies struct {
	// Policies are the names of the desired AuthorizationPolicies that
	// exist as generated, sorted.
	Policies []string
	// Conflicts are Conflict findings, one per desired policy whose name
	// is held by an AuthorizationPolicy netpol2authz does not own.
	Conflicts []translate.Finding
	// Writes counts the creates, updates and deletes made.
	Writes int
}

// owns says whether obj was generated for the NetworkPolicy named npName:
// it carries the managed-by label and a controller reference to a
// NetworkPolicy of that name. The reference's UID is not compared, so that
// objects left by an earlier NetworkPolicy of the same name (deleted and
// recreated before a garbage collector ran) are adopted, not reported as
// conflicts: names are unique, so their owner is gone.
func owns(obj metav1.Object, npName string) bool {
	if obj.GetLabels()[translate.LabelManagedBy] != translate.ManagedByValue {
		return false
	}
	return isNetworkPolicyRef(metav1.GetControllerOfNoCopy(obj), npName)
}

func isNetworkPolicyRef(ref *metav1.OwnerReference, npName string) bool {
	return ref != nil && ref.Kind == "NetworkPolicy" && ref.APIVersion == networkingv1.SchemeGroupVersion.String() && ref.Name == npName
}

// applyPolicies makes the AuthorizationPolicies of np exactly desired: it creates the
// missing ones, updates its own that differ, leaves alone (and reports) a
// same-named one it does not own, and deletes its own that are no longer
// desired. Every read goes to the cache; nothing is written when everything
// is already right. API errors are returned as they come.
func applyPolicies(ctx context.Context, c client.Client, np *networkingv1.NetworkPolicy, desired []*securityv1.AuthorizationPolicy) (appliedPolicies, error) {
	var out appliedPolicies
	want := make(map[string]bool, len(desired))
	for _, d := range desired {
		want[d.Name] = true
		cur := &securityv1.AuthorizationPolicy{}
		err := c.Get(ctx, client.ObjectKeyFromObject(d), cur)
		switch {
		case apierrors.IsNotFound(err):
			if err := c.Create(ctx, d.DeepCopy()); err != nil {
				return out, fmt.Errorf("creating AuthorizationPolicy %s/%s: %w", d.Namespace, d.Name, err)
			}
			out.Writes++
		case err != nil:
			return out, fmt.Errorf("reading AuthorizationPolicy %s/%s: %w", d.Namespace, d.Name, err)
		case !owns(cur, np.Name):
			out.Conflicts = append(out.Conflicts, conflictFinding(np, cur))
			continue
		default:
			next := merged(cur, d)
			if specDiffers(cur, &next.Spec) || !equality.Semantic.DeepEqual(*withoutCacheAnnotations(&cur.ObjectMeta), next.ObjectMeta) {
				if err := c.Update(ctx, next); err != nil {
					return out, fmt.Errorf("updating AuthorizationPolicy %s/%s: %w", d.Namespace, d.Name, err)
				}
				out.Writes++
			}
		}
		out.Policies = append(out.Policies, d.Name)
	}
	n, err := prune(ctx, c, types.NamespacedName{Namespace: np.Namespace, Name: np.Name}, want)
	out.Writes += n
	slices.Sort(out.Policies)
	return out, err
}

// merged is desired with the metadata of cur: what netpol2authz sets (its
// labels, its annotations, its controller reference) is made right, what
// others added is kept, and the spec is desired's.
func merged(cur, desired *securityv1.AuthorizationPolicy) *securityv1.AuthorizationPolicy {
	next := desired.DeepCopy()
	meta := withoutCacheAnnotations(&cur.ObjectMeta).DeepCopy()
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	maps.Copy(meta.Labels, desired.Labels)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	// The annotations netpol2authz may set and later remove.
	for _, k := range []string{translate.AnnotationSourcePolicy, translate.AnnotationIstioDryRun} {
		delete(meta.Annotations, k)
	}
	maps.Copy(meta.Annotations, desired.Annotations)
	if len(meta.Annotations) == 0 {
		meta.Annotations = nil
	}
	refs := slices.DeleteFunc(meta.OwnerReferences, func(r metav1.OwnerReference) bool { return r.Controller != nil && *r.Controller })
	meta.OwnerReferences = append(refs, desired.OwnerReferences...)
	next.ObjectMeta = *meta
	return next
}

// ownedBy lists the AuthorizationPolicies owned by the NetworkPolicy np,
// found through the owner index of the cache.
func ownedBy(ctx context.Context, c client.Reader, np types.NamespacedName) ([]*securityv1.AuthorizationPolicy, error) {
	var list securityv1.AuthorizationPolicyList
	if err := c.List(ctx, &list, client.InNamespace(np.Namespace), client.MatchingFields{indexOwner: np.Name}); err != nil {
		return nil, fmt.Errorf("listing AuthorizationPolicies of NetworkPolicy %s: %w", np, err)
	}
	return slices.DeleteFunc(list.Items, func(ap *securityv1.AuthorizationPolicy) bool { return !owns(ap, np.Name) }), nil
}

// owned are the sorted names of the AuthorizationPolicies np owns.
func owned(ctx context.Context, c client.Reader, np types.NamespacedName) ([]string, error) {
	aps, err := ownedBy(ctx, c, np)
	names := make([]string, 0, len(aps))
	for _, ap := range aps {
		names = append(names, ap.Name)
	}
	slices.Sort(names)
	return names, err
}

// prune deletes the AuthorizationPolicies owned by the NetworkPolicy np
// whose names are not in keep.
func prune(ctx context.Context, c client.Client, np types.NamespacedName, keep map[string]bool) (int, error) {
	aps, err := ownedBy(ctx, c, np)
	if err != nil {
		return 0, err
	}
	writes := 0
	for _, ap := range aps {
		if keep[ap.Name] {
			continue
		}
		err := c.Delete(ctx, ap, client.Preconditions{UID: &ap.UID})
		if client.IgnoreNotFound(err) != nil {
			return writes, fmt.Errorf("deleting AuthorizationPolicy %s/%s: %w", ap.Namespace, ap.Name, err)
		}
		writes++
	}
	return writes, nil
}

func conflictFinding(np *networkingv1.NetworkPolicy, held *securityv1.AuthorizationPolicy) translate.Finding {
	return translate.Finding{
		Type:     translate.Conflict,
		Severity: translate.SeverityOf(translate.Conflict),
		Message: fmt.Sprintf("AuthorizationPolicy %s/%s already exists and was not generated by netpol2authz for NetworkPolicy %s (it lacks the label %s=%s or a controller reference to it); it was left unchanged, so this part of the translation is not in place; delete or rename that AuthorizationPolicy",
			held.Namespace, held.Name, np.Name, translate.LabelManagedBy, translate.ManagedByValue),
		Objects: []translate.ObjectRef{
			{Kind: "AuthorizationPolicy", Namespace: held.Namespace, Name: held.Name},
			{Kind: "NetworkPolicy", Namespace: np.Namespace, Name: np.Name},
		},
	}
}
