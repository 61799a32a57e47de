package controllers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// recordBaseline creates the IdentityApproval of np at its first
// translation in review mode, listing every identity resolved then, before
// anything is applied: from then on, what selection adds waits for a
// person. It only ever creates: when a record appeared meanwhile (the
// cache was behind), the API says AlreadyExists and the reconcile retries
// with the record, so a stale cache can never approve anything. A record
// the operator made for an earlier NetworkPolicy of the same name is
// replaced.
func (r *NetworkPolicyReconciler) recordBaseline(ctx context.Context, np *networkingv1.NetworkPolicy, in *input, t translate.Translation) error {
	if !t.Baseline {
		return nil
	}
	if old := in.StaleApproval; old != nil {
		if err := r.Client.Delete(ctx, old, client.Preconditions{UID: &old.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting the IdentityApproval of an earlier NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
		}
	}
	a := &policyv1alpha1.IdentityApproval{
		ObjectMeta: metav1.ObjectMeta{
			Name: np.Name, Namespace: np.Namespace,
			Labels: map[string]string{translate.LabelManagedBy: translate.ManagedByValue},
		},
	}
	if np.UID != "" {
		a.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy",
			Name: np.Name, UID: np.UID, Controller: new(true), BlockOwnerDeletion: new(true),
		}}
	}
	for _, id := range t.Identities {
		a.Spec.Identities = append(a.Spec.Identities, string(id))
	}
	if err := r.Client.Create(ctx, a); err != nil {
		return fmt.Errorf("recording the identities of the first translation of NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("recorded the approved identities of a first translation", "identities", len(a.Spec.Identities))
	return nil
}

// forgetApproval deletes the IdentityApproval the operator created for the
// NetworkPolicy key, which is gone. (Garbage collection does the same
// through the owner reference; this also serves clusters without it.) A
// record without that owner, from Git or a person, is left alone.
func (r *NetworkPolicyReconciler) forgetApproval(ctx context.Context, key client.ObjectKey) error {
	a := &policyv1alpha1.IdentityApproval{}
	switch err := r.Client.Get(ctx, key, a); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading IdentityApproval %s: %w", key, err)
	}
	if !isNetworkPolicyRef(metav1.GetControllerOfNoCopy(a), key.Name) {
		return nil
	}
	if err := r.Client.Delete(ctx, a, client.Preconditions{UID: &a.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting IdentityApproval %s: %w", key, err)
	}
	return nil
}

// fillFieldManagers completes the pending identities of t with the field
// managers that last wrote the labels that brought them. What the previous
// status already says about the same source and labels is kept; the rest is
// read once from the API server (the pod cache holds no managedFields).
func (r *NetworkPolicyReconciler) fillFieldManagers(ctx context.Context, t *translate.Translation, prev []policyv1alpha1.PendingIdentity) {
	if len(t.Pending) == 0 {
		return
	}
	known := map[string][]string{}
	for _, p := range prev {
		for _, s := range p.Sources {
			known[sourceKey(s.Kind, s.Namespace, s.Name, s.Labels)] = s.FieldManagers
		}
	}
	pending := slices.Clone(t.Pending)
	for i := range pending {
		pending[i].Sources = slices.Clone(pending[i].Sources)
		for j := range pending[i].Sources {
			s := &pending[i].Sources[j]
			key := sourceKey(s.Ref.Kind, s.Ref.Namespace, s.Ref.Name, s.Labels)
			managers, ok := known[key]
			if !ok {
				managers = r.labelManagers(ctx, s.Ref, slices.Sorted(maps.Keys(s.Labels)))
				known[key] = managers
			}
			s.FieldManagers = managers
		}
	}
	t.SetPending(pending)
}

func sourceKey(kind, ns, name string, labels map[string]string) string {
	b, _ := json.Marshal(labels) // map keys are sorted
	return kind + "/" + ns + "/" + name + "/" + string(b)
}

// labelManagers reads the object ref from the API server and returns the
// managers of its managedFields that own any of the label keys, the most
// recent first. It returns nil when the object cannot be read.
func (r *NetworkPolicyReconciler) labelManagers(ctx context.Context, ref translate.ObjectRef, keys []string) []string {
	if r.APIReader == nil {
		return nil
	}
	var obj client.Object
	switch ref.Kind {
	case "Pod":
		obj = &corev1.Pod{}
	case "Namespace":
		obj = &corev1.Namespace{}
	case "Service":
		obj = &corev1.Service{}
	default:
		return nil
	}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, obj); err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("cannot read the field managers of a pending identity's source", "kind", ref.Kind, "name", ref.Name, "error", err.Error())
		return nil
	}
	return labelManagersOf(obj.GetManagedFields(), keys)
}

// maxFieldManagers bounds the managers listed per source.
const maxFieldManagers = 8

// labelManagersOf returns the managers of entries that own one of the label
// keys, the most recent first, each once; a manager that wrote through the
// status subresource is suffixed " (status)".
func labelManagersOf(entries []metav1.ManagedFieldsEntry, keys []string) []string {
	type owner struct {
		name string
		at   time.Time
	}
	var owners []owner
	for _, e := range entries {
		if e.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Metadata struct {
				Labels map[string]json.RawMessage `json:"f:labels"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			continue
		}
		if !slices.ContainsFunc(keys, func(k string) bool { _, ok := fields.Metadata.Labels["f:"+k]; return ok }) {
			continue
		}
		name := cmp.Or(e.Manager, "unknown")
		if e.Subresource != "" {
			name += " (" + e.Subresource + ")"
		}
		var at time.Time
		if e.Time != nil {
			at = e.Time.Time
		}
		owners = append(owners, owner{name, at})
	}
	slices.SortStableFunc(owners, func(a, b owner) int { return b.at.Compare(a.at) })
	var out []string
	for _, ow := range owners {
		if !slices.Contains(out, ow.name) && len(out) < maxFieldManagers {
			out = append(out, ow.name)
		}
	}
	return out
}
