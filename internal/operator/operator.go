package operator

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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Operator carries out the steps of one reconcile of a NetworkPolicy. Its
// client reads from the manager's cache and writes to the API server.
type Operator struct {
	Client   client.Client
	Recorder events.EventRecorder
	Settings Settings
	// APIReader reads from the API server, past the cache: the
	// managedFields of the objects that brought a pending identity, which
	// the pod cache drops.
	APIReader client.Reader
	// Now is the clock of condition transitions; nil means time.Now.
	Now func() time.Time
}

// Event actions and note bound of events.k8s.io/v1.
const (
	actionTranslate = "Translate"
	maxNote         = 1024
)

// Gather builds the input of the translation of np from the cache.
func (o *Operator) Gather(ctx context.Context, np *networkingv1.NetworkPolicy) (*Input, error) {
	return Gather(ctx, o.Client, o.Settings, np)
}

// Translate runs the engine on the input, which holds one NetworkPolicy.
func (o *Operator) Translate(in *Input) translate.Translation {
	return translate.Translate(in.Snapshot, o.Settings.TranslateOptions()).Translations[0]
}

// Terminating says the NetworkPolicy's namespace is being deleted: nothing
// can be created there any more, and everything in it is going away.
func Terminating(in *Input) bool {
	return in.Namespace != nil && in.Namespace.DeletionTimestamp != nil
}

// Apply puts the translation's AuthorizationPolicies in place (none when it
// is not to be applied). When the input is invalid (ActionKeep), it writes
// nothing: what was generated from the last valid input stays in force, so
// a typo never widens what Istio enforces. A generated policy the API
// server rejects as invalid is reported in the outcome rather than
// retried: only a new input can fix it.
func (o *Operator) Apply(ctx context.Context, np *networkingv1.NetworkPolicy, t translate.Translation) (Outcome, error) {
	out := Outcome{Translation: t}
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
	if t.Action == translate.ActionKeep {
		kept, err := owned(ctx, o.Client, key)
		out.Applied.Policies = kept
		if err == nil {
			err = o.readIstio(ctx, key, &out)
		}
		return out, err
	}
	var desired = t.Policies
	if t.Action != translate.ActionApply {
		desired = nil
	}
	applied, err := Apply(ctx, o.Client, np, desired)
	out.Applied = applied
	if applied.Writes > 0 {
		ctrl.LoggerFrom(ctx).Info("applied AuthorizationPolicies", "writes", applied.Writes, "policies", applied.Policies, "conflicts", len(applied.Conflicts))
	}
	if apierrors.IsInvalid(err) || isWebhookDenial(err) {
		out.ApplyError = err
		return out, o.readIstio(ctx, key, &out)
	}
	if err == nil {
		err = o.readIstio(ctx, key, &out)
	}
	return out, err
}

// readIstio reads, from the cache, the status istiod wrote on the policies
// in place. A status write of istiod enqueues the NetworkPolicy (it owns the
// policy), so the verdict follows; it never makes the operator write a
// policy, only, when the verdict changes, the status.
func (o *Operator) readIstio(ctx context.Context, key types.NamespacedName, out *Outcome) error {
	aps, err := ownedBy(ctx, o.Client, key)
	if err != nil {
		return err
	}
	out.Istio = istioVerdicts(aps, out.Applied.Policies)
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

// Report makes the NetworkPolicyTranslation of np say what out says: it
// writes the status once, and only when it changed; it emits an Event on
// the NetworkPolicy for each finding type that appears or clears, a Warning
// on the namespace when its annotation newly turns out invalid, and
// records the metrics.
func (o *Operator) Report(ctx context.Context, np *networkingv1.NetworkPolicy, in *Input, out Outcome) error {
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}

	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	err := o.Client.Get(ctx, key, npt)
	switch {
	case apierrors.IsNotFound(err):
		npt = &policyv1alpha1.NetworkPolicyTranslation{ObjectMeta: metav1.ObjectMeta{Name: np.Name, Namespace: np.Namespace}}
		setTranslationMeta(npt, np)
		if err := o.Client.Create(ctx, npt); err != nil {
			return fmt.Errorf("creating NetworkPolicyTranslation %s: %w", key, err)
		}
	case err != nil:
		return fmt.Errorf("reading NetworkPolicyTranslation %s: %w", key, err)
	default:
		if setTranslationMeta(npt, np) {
			if err := o.Client.Update(ctx, npt); err != nil {
				return fmt.Errorf("adopting NetworkPolicyTranslation %s: %w", key, err)
			}
		}
	}

	prev := npt.Status.DeepCopy()
	o.fillFieldManagers(ctx, &out.Translation, prev.PendingIdentities)
	out.Ambient = in.Namespace != nil && translate.AmbientNamespace(in.Namespace.Labels)
	RecordTranslation(key, out)
	npt.Status = BuildStatus(prev, np.Generation, out, metav1.NewTime(o.now()))
	if equality.Semantic.DeepEqual(*prev, npt.Status) {
		return nil
	}
	if err := o.Client.Status().Update(ctx, npt); err != nil {
		return fmt.Errorf("writing the status of NetworkPolicyTranslation %s: %w", key, err)
	}
	ctrl.LoggerFrom(ctx).Info("status updated", "ready", readyReason(npt.Status), "findings", npt.Status.FindingsCount, "policies", len(npt.Status.AuthorizationPolicies))
	o.emitEvents(np, prev.Findings, npt.Status.Findings)
	o.emitPending(np, prev.PendingIdentities, out.Translation)
	return nil
}

// ReportFailure makes the NetworkPolicyTranslation of np say that the step
// named by reason failed with err: Ready=False, with the error as its
// message. The rest of the status (what is in place, the findings) stays as
// the last successful reconcile left it, which is still true. It writes only
// when the condition changes, and nothing when the status object does not
// exist yet (the next successful reconcile creates it).
func (o *Operator) ReportFailure(ctx context.Context, np *networkingv1.NetworkPolicy, reason string, err error) error {
	RecordError()
	key := types.NamespacedName{Namespace: np.Namespace, Name: np.Name}
	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	if gerr := o.Client.Get(ctx, key, npt); gerr != nil {
		return client.IgnoreNotFound(gerr)
	}
	prev := npt.Status.DeepCopy()
	meta.SetStatusCondition(&npt.Status.Conditions, metav1.Condition{
		Type: policyv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		Message: truncate(err.Error(), 32768), ObservedGeneration: np.Generation, LastTransitionTime: metav1.NewTime(o.now()),
	})
	if equality.Semantic.DeepEqual(*prev, npt.Status) {
		return nil
	}
	if werr := o.Client.Status().Update(ctx, npt); werr != nil {
		return fmt.Errorf("writing the status of NetworkPolicyTranslation %s: %w", key, werr)
	}
	ctrl.LoggerFrom(ctx).Info("status updated", "ready", "False/"+reason, "error", err.Error())
	return nil
}

// CleanUp removes what was generated for the NetworkPolicy key: the
// AuthorizationPolicies it controls and its NetworkPolicyTranslation. It
// serves a deleted NetworkPolicy (no garbage collector needed) and one no
// longer translated; why holds the findings that say why (the root
// namespace), which are logged since no status may hold them.
func (o *Operator) CleanUp(ctx context.Context, key types.NamespacedName, why ...translate.Finding) error {
	ForgetTranslation(key)
	for _, f := range why {
		ctrl.LoggerFrom(ctx).Info("not translated", "finding", f.Type, "message", f.Message)
	}
	n, err := prune(ctx, o.Client, key, nil)
	if err != nil {
		return err
	}
	npt := &policyv1alpha1.NetworkPolicyTranslation{}
	switch err := o.Client.Get(ctx, key, npt); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading NetworkPolicyTranslation %s: %w", key, err)
	case isNetworkPolicyRef(metav1.GetControllerOfNoCopy(npt), key.Name):
		if err := o.Client.Delete(ctx, npt, client.Preconditions{UID: &npt.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting NetworkPolicyTranslation %s: %w", key, err)
		}
		n++
	}
	if n > 0 {
		ctrl.LoggerFrom(ctx).Info("cleaned up", "deleted", n)
	}
	return nil
}

func (o *Operator) now() time.Time {
	if o.Now != nil {
		return o.Now()
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
func (o *Operator) emitEvents(np *networkingv1.NetworkPolicy, prev, cur []policyv1alpha1.Finding) {
	if o.Recorder == nil {
		return
	}
	before, after := FindingTypes(prev), FindingTypes(cur)
	for _, t := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[t]; ok || t == string(translate.IdentityPending) {
			continue // IdentityPending: one Event per identity (emitPending)
		}
		kind := corev1.EventTypeWarning
		if after[t] == policyv1alpha1.Severity(translate.SeverityInfo) {
			kind = corev1.EventTypeNormal
		}
		note := truncate(firstMessage(cur, t), maxNote)
		o.Recorder.Eventf(np, nil, kind, t, actionTranslate, "%s", note)
	}
	for _, t := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[t]; !ok {
			o.Recorder.Eventf(np, nil, corev1.EventTypeNormal, t+"Cleared", actionTranslate, "the translation no longer has a %s finding", t)
		}
	}
}

// emitPending records on np one Warning Event per identity that became
// pending since the previous status.
func (o *Operator) emitPending(np *networkingv1.NetworkPolicy, prev []policyv1alpha1.PendingIdentity, t translate.Translation) {
	if o.Recorder == nil {
		return
	}
	for _, p := range t.Pending {
		if slices.ContainsFunc(prev, func(q policyv1alpha1.PendingIdentity) bool { return q.Identity == string(p.Identity) }) {
			continue
		}
		f := translate.PendingFinding(np.Namespace, np.Name, p)
		o.Recorder.Eventf(np, nil, corev1.EventTypeWarning, string(translate.IdentityPending), actionTranslate, "%s", truncate(f.Message, maxNote))
	}
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
