package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Event actions and note bound of events.k8s.io/v1.
const (
	actionTranslate = "Translate"
	maxNote         = 1024
)

// terminating says the NetworkPolicy's namespace is being deleted: nothing
// can be created there any more, and everything in it is going away.
func terminating(in *input) bool {
	return in.Namespace != nil && in.Namespace.DeletionTimestamp != nil
}

// apply puts the translation's AuthorizationPolicies in place (none when it
// is not to be applied). When the input is invalid (ActionKeep), it writes
// nothing: what was generated from the last valid input stays in force, so
// a typo never widens what Istio enforces. A generated policy the API
// server rejects as invalid is reported in the outcome rather than
// retried: only a new input can fix it.
func (r *NetworkPolicyReconciler) apply(ctx context.Context, np *networkingv1.NetworkPolicy, t translate.Translation) (outcome, error) {
	out := outcome{Translation: t}
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
	if t.Action == translate.ActionKeep {
		kept, err := owned(ctx, r.Client, key)
		out.applied.Policies = kept
		if err == nil {
			err = r.readIstio(ctx, key, &out)
		}
		return out, err
	}
	var desired = t.Policies
	if t.Action != translate.ActionApply {
		desired = nil
	}
	applied, err := applyPolicies(ctx, r.Client, np, desired)
	out.applied = applied
	if applied.Writes > 0 {
		ctrl.LoggerFrom(ctx).Info("applied AuthorizationPolicies", "writes", applied.Writes, "policies", applied.Policies, "conflicts", len(applied.Conflicts))
	}
	if apierrors.IsInvalid(err) || isWebhookDenial(err) {
		out.ApplyError = err
		return out, r.readIstio(ctx, key, &out)
	}
	if err == nil {
		err = r.readIstio(ctx, key, &out)
	}
	return out, err
}

// readIstio reads, from the cache, the status istiod wrote on the policies
// in place. A status write of istiod enqueues the NetworkPolicy (it owns the
// policy), so the verdict follows; it never makes the operator write a
// policy, only, when the verdict changes, the status.
func (r *NetworkPolicyReconciler) readIstio(ctx context.Context, key types.NamespacedName, out *outcome) error {
	aps, err := ownedBy(ctx, r.Client, key)
	if err != nil {
		return err
	}
	out.Istio = istioVerdicts(aps, out.applied.Policies)
	return nil
}

// isWebhookDenial says whether the API server refused a write because an
// admission webhook (istiod's validation) denied it: a verdict only a new
// input can change, like an invalid object.
func isWebhookDenial(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	s := status.Status()
	return (s.Code == http.StatusBadRequest || s.Code == http.StatusForbidden) && strings.Contains(s.Message, "admission webhook")
}

// report makes the NetworkPolicyTranslation of np say what out says: it
// writes the status once, and only when it changed; it emits an Event on
// the NetworkPolicy for each finding type that appears or clears, a Warning
// on the namespace when its annotation newly turns out invalid, and
// records the metrics.
func (r *NetworkPolicyReconciler) report(ctx context.Context, np *networkingv1.NetworkPolicy, in *input, out outcome) error {
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}

	// cur is the translation as the cache holds it: its status cut to what
	// is read back here, with the digest of the whole (nptcache.go).
	cur := &policyv1alpha1.NetworkPolicyTranslation{}
	err := r.Client.Get(ctx, key, cur)
	npt := cur.DeepCopy()
	switch {
	case apierrors.IsNotFound(err):
		npt = &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Name: np.Name, Namespace: np.Namespace}}
		setTranslationMeta(npt, np)
		if err := r.Client.Create(ctx, npt); err != nil {
			return fmt.Errorf("creating NetworkPolicyTranslation %s: %w", key, err)
		}
		cur = npt.DeepCopy()
	case err != nil:
		return fmt.Errorf("reading NetworkPolicyTranslation %s: %w", key, err)
	default:
		npt.ObjectMeta = *withoutCacheAnnotations(&npt.ObjectMeta)
		if setTranslationMeta(npt, np) {
			if err := r.Client.Update(ctx, npt); err != nil {
				return fmt.Errorf("adopting NetworkPolicyTranslation %s: %w", key, err)
			}
			cur = npt.DeepCopy() // the API server's answer: the whole status
		}
	}

	prev := npt.Status.DeepCopy()
	r.fillFieldManagers(ctx, &out.Translation, prev.PendingIdentities)
	out.Ambient = in.Namespace != nil && translate.AmbientNamespace(in.Namespace.Labels)
	recordTranslation(key, out)
	npt.Status = buildStatus(prev, np.Generation, out, metav1.NewTime(r.now()))
	if statusUnchanged(cur, &npt.Status) {
		return nil
	}
	from := npt.ResourceVersion
	if err := r.Client.Status().Update(ctx, npt); err != nil {
		return fmt.Errorf("writing the status of NetworkPolicyTranslation %s: %w", key, err)
	}
	r.rememberStatusWrite(key, from, npt.ResourceVersion)
	ctrl.LoggerFrom(ctx).Info("status updated", "ready", readyReason(npt.Status), "findings", npt.Status.FindingsCount, "policies", len(npt.Status.AuthorizationPolicies))
	r.emitEvents(np, prev.Findings, npt.Status.Findings)
	r.emitPending(np, prev.PendingIdentities, out.Translation)
	return nil
}

// rememberStatusWrite records that the status of key was written over
// resourceVersion from, giving to. A write that changed nothing (the API
// server keeps the resourceVersion and sends no event) is not recorded:
// no event would come to end the wait.
func (r *NetworkPolicyReconciler) rememberStatusWrite(key types.NamespacedName, from, to string) {
	if from == to || from == "" {
		r.statusWrites.Delete(key)
		return
	}
	r.statusWrites.Store(key, from)
}

// cacheBehindStatus says whether the cache still holds the
// NetworkPolicyTranslation of key as it was before the operator's last
// status write: the reconciles that the write's sibling events (the
// policies it applied just before) bring would otherwise find the status
// they wrote missing and write it again, to be refused as a conflict. The
// write's own event is sure to follow and reconcile again, so nothing is
// lost by waiting for it. Resource versions are only compared for
// equality, never ordered.
func (r *NetworkPolicyReconciler) cacheBehindStatus(ctx context.Context, key types.NamespacedName) bool {
	from, ok := r.statusWrites.Load(key)
	if !ok {
		return false
	}
	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	if err := r.Client.Get(ctx, key, npt); err == nil && npt.ResourceVersion == from {
		return true
	}
	r.statusWrites.Delete(key)
	return false
}

// reportFailure makes the NetworkPolicyTranslation of np say that the step
// named by reason failed with err: Ready=False, with the error as its
// message. The rest of the status (what is in place, the findings) stays as
// the last successful reconcile left it, which is still true. It writes only
// when the condition changes, and nothing when the status object does not
// exist yet (the next successful reconcile creates it).
func (r *NetworkPolicyReconciler) reportFailure(ctx context.Context, np *networkingv1.NetworkPolicy, reason string, err error) error {
	recordError()
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	if gerr := r.Client.Get(ctx, key, npt); gerr != nil {
		return client.IgnoreNotFound(gerr)
	}
	// The cache holds the status cut (nptcache.go): only the conditions
	// are patched, the rest stays as the API server has it.
	npt.ObjectMeta = *withoutCacheAnnotations(&npt.ObjectMeta)
	prev := npt.DeepCopy()
	meta.SetStatusCondition(&npt.Status.Conditions, metav1.Condition{
		Type: policyv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		Message: truncate(err.Error(), 32768), ObservedGeneration: np.Generation, LastTransitionTime: metav1.NewTime(r.now()),
	})
	if equality.Semantic.DeepEqual(prev.Status.Conditions, npt.Status.Conditions) {
		return nil
	}
	if werr := r.Client.Status().Patch(ctx, npt, client.MergeFromWithOptions(prev, client.MergeFromWithOptimisticLock{})); werr != nil {
		return fmt.Errorf("writing the status of NetworkPolicyTranslation %s: %w", key, werr)
	}
	ctrl.LoggerFrom(ctx).Info("status updated", "ready", "False/"+reason, "error", err.Error())
	return nil
}

// cleanUp removes what was generated for the NetworkPolicy key: the
// AuthorizationPolicies it controls and its NetworkPolicyTranslation. It
// serves a deleted NetworkPolicy (no garbage collector needed) and one no
// longer translated; why holds the findings that say why (the root
// namespace), which are logged since no status may hold them.
func (r *NetworkPolicyReconciler) cleanUp(ctx context.Context, key types.NamespacedName, why ...translate.Finding) error {
	forgetTranslation(key)
	for _, f := range why {
		ctrl.LoggerFrom(ctx).Info("not translated", "finding", f.Type, "message", f.Message)
	}
	n, err := prune(ctx, r.Client, key, nil)
	if err != nil {
		return err
	}
	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	switch err := r.Client.Get(ctx, key, npt); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading NetworkPolicyTranslation %s: %w", key, err)
	case isNetworkPolicyRef(metav1.GetControllerOfNoCopy(npt), key.Name):
		if err := r.Client.Delete(ctx, npt, client.Preconditions{UID: &npt.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting NetworkPolicyTranslation %s: %w", key, err)
		}
		n++
	}
	if n > 0 {
		ctrl.LoggerFrom(ctx).Info("cleaned up", "deleted", n)
	}
	return nil
}

func (r *NetworkPolicyReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// setTranslationMeta makes npt carry the managed-by label and a controller
// reference to np, and says whether it changed anything.
func setTranslationMeta(npt *policyv1alpha1.NetworkPolicyTranslation, np *networkingv1.NetworkPolicy) bool {
	changed := false
	if npt.Labels[translate.LabelManagedBy] != translate.ManagedByValue {
		if npt.Labels == nil {
			npt.Labels = map[string]string{}
		}
		npt.Labels[translate.LabelManagedBy] = translate.ManagedByValue
		changed = true
	}
	want := metav1.OwnerReference{
		APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy",
		Name: np.Name, UID: np.UID, Controller: new(true), BlockOwnerDeletion: new(true),
	}
	if ref := metav1.GetControllerOfNoCopy(npt); ref == nil || !equality.Semantic.DeepEqual(*ref, want) {
		npt.OwnerReferences = append(slices.DeleteFunc(npt.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.Controller != nil && *r.Controller
		}), want)
		changed = true
	}
	return changed
}

// emitEvents records on np one Event per finding type that appeared
// (Warning for Warning and Error severity) and one Normal Event per type
// that cleared. (The namespace of an invalid annotation is warned by the
// namespace controller, once, whether or not it holds NetworkPolicies.)
func (r *NetworkPolicyReconciler) emitEvents(np *networkingv1.NetworkPolicy, prev, cur []policyv1alpha1.Finding) {
	if r.Recorder == nil {
		return
	}
	before, after := findingTypes(prev), findingTypes(cur)
	for _, t := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[t]; ok || t == string(translate.IdentityPending) {
			continue // IdentityPending: one Event per identity (emitPending)
		}
		kind := corev1.EventTypeWarning
		if after[t] == policyv1alpha1.Severity(translate.SeverityInfo) {
			kind = corev1.EventTypeNormal
		}
		note := truncate(firstMessage(cur, t), maxNote)
		r.Recorder.Eventf(np, nil, kind, t, actionTranslate, "%s", note)
	}
	for _, t := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[t]; !ok {
			r.Recorder.Eventf(np, nil, corev1.EventTypeNormal, t+"Cleared", actionTranslate, "the translation no longer has a %s finding", t)
		}
	}
}

// emitPending records on np one Warning Event per identity that became
// pending since the previous status.
func (r *NetworkPolicyReconciler) emitPending(np *networkingv1.NetworkPolicy, prev []policyv1alpha1.PendingIdentity, t translate.Translation) {
	if r.Recorder == nil {
		return
	}
	for _, p := range t.Pending {
		if slices.ContainsFunc(prev, func(q policyv1alpha1.PendingIdentity) bool { return q.Identity == string(p.Identity) }) {
			continue
		}
		f := translate.PendingFinding(np.Namespace, np.Name, p)
		var related runtime.Object
		if ref := identityRef(p.Identity); ref != nil {
			related = ref
		}
		r.Recorder.Eventf(np, related, corev1.EventTypeWarning, string(translate.IdentityPending), actionTranslate, "%s", truncate(f.Message, maxNote))
	}
}

// identityRef is the object an identity names, a ServiceAccount or a
// Namespace: the related object of its IdentityPending Event. The
// events.k8s.io recorder merges the Events of one object with the same
// reason, action and related object into one series, whatever their notes,
// so without it the Event of every identity after the first would be lost
// (counted in the first one's series).
func identityRef(id translate.Identity) *corev1.ObjectReference {
	parts := strings.Split(string(id), "/")
	switch {
	case len(parts) == 3 && parts[0] == "serviceaccount":
		return &corev1.ObjectReference{APIVersion: "v1", Kind: "ServiceAccount", Namespace: parts[1], Name: parts[2]}
	case len(parts) == 2 && parts[0] == "namespace":
		return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: parts[1]}
	}
	return nil
}

func firstMessage(findings []policyv1alpha1.Finding, t string) string {
	for _, f := range findings {
		if f.Type == t {
			return f.Message
		}
	}
	return t
}

func readyReason(st policyv1alpha1.NetworkPolicyTranslationStatus) string {
	for _, c := range st.Conditions {
		if c.Type == policyv1alpha1.ConditionReady {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}
