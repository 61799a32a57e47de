package crash_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// The oracle: `netpol2authz translate`, the same engine behind a
// different front (manifests instead of an informer cache, the whole
// cluster in one call instead of one NetworkPolicy at a time), run on a
// dump of the cluster's inputs as `kubectl get -o json` would give them:
// what `netpol2authz verify --cluster` reads (namespaces, pods,
// NetworkPolicies, Services, IdentityApprovals, and Gateways and the admin
// network policies where served) and the mesh ConfigMap.
//
// Identity review makes the operator's answer depend on history: the
// identities a NetworkPolicy's first translation resolved. The operator
// keeps that history in the cluster, in the IdentityApprovals, so the dump
// holds them and the offline translation gives the operator's answer for
// any record. What the record should have listed (the identities at a
// first translation the test cannot pin down in time) is not checked here;
// that every translated NetworkPolicy in review mode has a record is.
//
// translate translates every NetworkPolicy (offline there is no opt-in);
// the operator only those of namespaces with a netpol2authz.io/mode
// annotation. The churn never writes an invalid annotation value (which
// keeps what an earlier valid one generated: history again).

var dumps atomic.Int32

// offline is the offline translation of a dump.
type offline struct {
	dir string
	// namespaces, policies and approvals are the dump's.
	namespaces map[string]*corev1.Namespace
	policies   map[string]*networkingv1.NetworkPolicy
	approvals  map[string]*policyv1alpha1.IdentityApproval
	// aps are the AuthorizationPolicies translate generated for the
	// NetworkPolicies of opted-in namespaces, by namespace/name.
	aps map[string]*securityv1.AuthorizationPolicy
	// report has translate's report of each NetworkPolicy of an opted-in
	// namespace, by namespace/name.
	report map[string]policyReport
}

// policyReport is the part of translate's JSON report the checks read.
type policyReport struct {
	Namespace             string   `json:"namespace"`
	Name                  string   `json:"name"`
	Translated            bool     `json:"translated"`
	Mode                  string   `json:"mode"`
	Fidelity              string   `json:"fidelity"`
	Identity              string   `json:"identity"`
	PendingIdentities     []string `json:"pendingIdentities"`
	AuthorizationPolicies []string `json:"authorizationPolicies"`
	Findings              []struct {
		Type string `json:"type"`
	} `json:"findings"`
}

func key(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func optedIn(ns *corev1.Namespace) bool {
	if ns == nil {
		return false
	}
	_, ok := ns.Annotations[translate.AnnotationMode]
	return ok
}

// translateDump dumps the cluster's inputs into a file and runs the
// binary's translate on it.
func translateDump() *offline {
	o := &offline{
		dir:        filepath.Join(workDir, fmt.Sprintf("dump-%03d", dumps.Add(1))),
		namespaces: map[string]*corev1.Namespace{}, policies: map[string]*networkingv1.NetworkPolicy{},
		approvals: map[string]*policyv1alpha1.IdentityApproval{},
		aps:       map[string]*securityv1.AuthorizationPolicy{}, report: map[string]policyReport{},
	}
	Expect(os.MkdirAll(o.dir, 0o755)).To(Succeed())
	var items []json.RawMessage
	add := func(list client.ObjectList, gvk schema.GroupVersionKind) {
		Expect(k8s.List(ctx, list)).To(Succeed())
		objs, err := meta.ExtractList(list)
		Expect(err).NotTo(HaveOccurred())
		for _, obj := range objs {
			items = append(items, objectJSON(obj, gvk))
			switch v := obj.(type) {
			case *corev1.Namespace:
				o.namespaces[v.Name] = v
			case *networkingv1.NetworkPolicy:
				o.policies[key(v)] = v
			case *policyv1alpha1.IdentityApproval:
				o.approvals[key(v)] = v
			}
		}
	}
	add(&corev1.NamespaceList{}, corev1.SchemeGroupVersion.WithKind("Namespace"))
	add(&corev1.PodList{}, corev1.SchemeGroupVersion.WithKind("Pod"))
	add(&networkingv1.NetworkPolicyList{}, networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"))
	add(&corev1.ServiceList{}, corev1.SchemeGroupVersion.WithKind("Service"))
	add(&policyv1alpha1.IdentityApprovalList{}, policyv1alpha1.GroupVersion.WithKind("IdentityApproval"))
	// Kinds a cluster may not serve (envtest serves none of them unless a
	// test installs their CRDs): one version of each, the first served.
	for _, versions := range [][]schema.GroupVersionKind{
		{{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"}},
		{{Group: "policy.networking.k8s.io", Version: "v1alpha1", Kind: "AdminNetworkPolicy"}},
		{{Group: "policy.networking.k8s.io", Version: "v1alpha1", Kind: "BaselineAdminNetworkPolicy"}},
		{{Group: "policy.networking.k8s.io", Version: "v1beta1", Kind: "ClusterNetworkPolicy"}, {Group: "policy.networking.k8s.io", Version: "v1alpha2", Kind: "ClusterNetworkPolicy"}},
	} {
		for _, gvk := range versions {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			err := k8s.List(ctx, list)
			if meta.IsNoMatchError(err) {
				continue
			}
			Expect(err).NotTo(HaveOccurred(), "listing %s", gvk)
			for i := range list.Items {
				items = append(items, objectJSON(&list.Items[i], gvk))
			}
			break
		}
	}
	cm := &corev1.ConfigMap{}
	switch err := k8s.Get(ctx, client.ObjectKey{Namespace: "istio-system", Name: "istio"}, cm); {
	case err == nil:
		items = append(items, objectJSON(cm, corev1.SchemeGroupVersion.WithKind("ConfigMap")))
	case !apierrors.IsNotFound(err):
		Expect(err).NotTo(HaveOccurred())
	}
	data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	Expect(err).NotTo(HaveOccurred())
	dump := filepath.Join(o.dir, "cluster.json")
	Expect(os.WriteFile(dump, data, 0o644)).To(Succeed())

	reportPath := filepath.Join(o.dir, "report.json")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, "translate", "-f", dump, "-o", "json", "--report", reportPath, "--report-format", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	Expect(cmd.Run()).To(Succeed(), "netpol2authz translate -f %s: %s", dump, stderr.String())
	Expect(os.WriteFile(filepath.Join(o.dir, "translate.json"), stdout.Bytes(), 0o644)).To(Succeed())

	var out struct {
		Items []json.RawMessage `json:"items"`
	}
	Expect(json.Unmarshal(stdout.Bytes(), &out)).To(Succeed())
	for _, raw := range out.Items {
		ap := &securityv1.AuthorizationPolicy{}
		Expect(json.Unmarshal(raw, ap)).To(Succeed())
		if optedIn(o.namespaces[ap.Namespace]) {
			o.aps[key(ap)] = ap
		}
	}
	var rep struct {
		NetworkPolicies []policyReport `json:"networkPolicies"`
	}
	data, err = os.ReadFile(reportPath)
	Expect(err).NotTo(HaveOccurred())
	Expect(json.Unmarshal(data, &rep)).To(Succeed())
	for _, p := range rep.NetworkPolicies {
		if optedIn(o.namespaces[p.Namespace]) {
			o.report[p.Namespace+"/"+p.Name] = p
		}
	}
	return o
}

// objectJSON renders an object as the API serves it, without managed
// fields, with its apiVersion and kind.
func objectJSON(obj runtime.Object, gvk schema.GroupVersionKind) json.RawMessage {
	c := obj.DeepCopyObject()
	if m, ok := c.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	c.GetObjectKind().SetGroupVersionKind(gvk)
	data, err := json.Marshal(c)
	Expect(err).NotTo(HaveOccurred())
	return data
}

// owned says whether netpol2authz generated obj for a NetworkPolicy: the
// managed-by label and a controller reference to a NetworkPolicy.
func owned(obj metav1.Object) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return obj.GetLabels()[translate.LabelManagedBy] == translate.ManagedByValue &&
		ref != nil && ref.Kind == "NetworkPolicy" && ref.APIVersion == "networking.k8s.io/v1"
}

// differences lists every way the cluster differs from the offline
// translation o: the generated AuthorizationPolicies (name, spec,
// netpol2authz's labels and annotations, controller), the
// NetworkPolicyTranslations (one per translated NetworkPolicy, its
// generation, Ready, mode, fidelity, identity mode, policies in place,
// pending identities, finding types), and the IdentityApprovals the
// operator keeps (one for every NetworkPolicy translated in review mode;
// none of its own for a NetworkPolicy that is gone). AuthorizationPolicies
// the operator does not own hold their names: they are left out of what
// must be generated, and must say Conflict.
func (o *offline) differences() []string {
	var diffs []string
	problem := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	unowned, conflicts := o.policyDifferences(problem)
	o.translationDifferences(problem, unowned, conflicts)
	for _, k := range slices.Sorted(maps.Keys(o.approvals)) {
		if a := o.approvals[k]; owned(a) && o.policies[k] == nil {
			problem("IdentityApproval %s: the operator's record of a NetworkPolicy that is gone", k)
		}
	}
	return diffs
}

// policyDifferences compares the AuthorizationPolicies; it returns those
// the operator does not own, and the number of names they hold for each
// NetworkPolicy.
func (o *offline) policyDifferences(problem func(string, ...any)) (unowned map[string]bool, conflicts map[string]int) {
	var apList securityv1.AuthorizationPolicyList
	Expect(k8s.List(ctx, &apList)).To(Succeed())
	generated := map[string]*securityv1.AuthorizationPolicy{}
	unowned = map[string]bool{}
	for _, ap := range apList.Items {
		if owned(ap) {
			generated[key(ap)] = ap
		} else {
			unowned[key(ap)] = true
		}
	}
	conflicts = map[string]int{} // NetworkPolicy → names held by others
	for k, want := range o.aps {
		if unowned[k] {
			conflicts[want.Namespace+"/"+want.Annotations[translate.AnnotationSourcePolicy]]++
			continue
		}
		got, ok := generated[k]
		if !ok {
			problem("AuthorizationPolicy %s: missing (translate generates it)", k)
			continue
		}
		if !proto.Equal(&got.Spec, &want.Spec) {
			problem("AuthorizationPolicy %s: spec\n  got  %v\n  want %v", k, &got.Spec, &want.Spec)
		}
		for l, v := range want.Labels {
			if got.Labels[l] != v {
				problem("AuthorizationPolicy %s: label %s=%q, want %q", k, l, got.Labels[l], v)
			}
		}
		for _, a := range []string{translate.AnnotationSourcePolicy, translate.AnnotationIstioDryRun} {
			if g, w := got.Annotations[a], want.Annotations[a]; g != w {
				problem("AuthorizationPolicy %s: annotation %s=%q, want %q", k, a, g, w)
			}
		}
		if g, w := metav1.GetControllerOfNoCopy(got), metav1.GetControllerOfNoCopy(want); w == nil || g.Name != w.Name || g.UID != w.UID {
			problem("AuthorizationPolicy %s: controller %v, want %v", k, g, w)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(generated)) {
		if _, ok := o.aps[k]; !ok {
			problem("AuthorizationPolicy %s: generated, but translate does not generate it (NetworkPolicy %s)", k, generated[k].Annotations[translate.AnnotationSourcePolicy])
		}
	}
	return unowned, conflicts
}

// translationDifferences compares the NetworkPolicyTranslations, and the
// IdentityApprovals of NetworkPolicies translated in review mode.
func (o *offline) translationDifferences(problem func(string, ...any), unowned map[string]bool, conflicts map[string]int) {
	var npts policyv1alpha1.NetworkPolicyTranslationList
	Expect(k8s.List(ctx, &npts)).To(Succeed())
	status := map[string]*policyv1alpha1.NetworkPolicyTranslation{}
	for i := range npts.Items {
		status[key(&npts.Items[i])] = &npts.Items[i]
	}
	for _, k := range slices.Sorted(maps.Keys(o.report)) {
		rep, np := o.report[k], o.policies[k]
		if !rep.Translated {
			continue
		}
		npt := status[k]
		if npt == nil {
			problem("NetworkPolicyTranslation %s: missing", k)
			continue
		}
		st := npt.Status
		if ref := metav1.GetControllerOfNoCopy(npt); ref == nil || ref.UID != np.UID {
			problem("NetworkPolicyTranslation %s: controller %v, want the NetworkPolicy's uid %s", k, ref, np.UID)
		}
		if st.ObservedGeneration != np.Generation {
			problem("NetworkPolicyTranslation %s: observedGeneration %d, want %d", k, st.ObservedGeneration, np.Generation)
		}
		ready := meta.FindStatusCondition(st.Conditions, policyv1alpha1.ConditionReady)
		wantPlaced := []string{}
		for _, name := range rep.AuthorizationPolicies {
			if !unowned[np.Namespace+"/"+name] {
				wantPlaced = append(wantPlaced, name)
			}
		}
		switch {
		case ready == nil:
			problem("NetworkPolicyTranslation %s: no Ready condition", k)
		case conflicts[k] > 0 && (ready.Status != metav1.ConditionFalse || ready.Reason != string(translate.Conflict)):
			problem("NetworkPolicyTranslation %s: Ready %s/%s, want False/Conflict (%d names held by others)", k, ready.Status, ready.Reason, conflicts[k])
		case conflicts[k] == 0 && ready.Status != metav1.ConditionTrue:
			problem("NetworkPolicyTranslation %s: Ready %s/%s: %s", k, ready.Status, ready.Reason, ready.Message)
		}
		if string(st.Mode) != rep.Mode || string(st.Fidelity) != rep.Fidelity || string(st.Identity) != rep.Identity {
			problem("NetworkPolicyTranslation %s: mode/fidelity/identity %s/%s/%s, want %s/%s/%s", k, st.Mode, st.Fidelity, st.Identity, rep.Mode, rep.Fidelity, rep.Identity)
		}
		if got := nonNil(st.AuthorizationPolicies); !slices.Equal(sorted(got), sorted(wantPlaced)) {
			problem("NetworkPolicyTranslation %s: authorizationPolicies %s", k, listDiff(got, wantPlaced))
		}
		// The status lists the first MaxPendingIdentities, and counts all.
		var pending []string
		for _, p := range st.PendingIdentities {
			pending = append(pending, p.Identity)
		}
		wantPending := rep.PendingIdentities[:min(len(rep.PendingIdentities), policyv1alpha1.MaxPendingIdentities)]
		if int(st.Pending) != len(rep.PendingIdentities) || !slices.Equal(nonNil(pending), nonNil(wantPending)) {
			problem("NetworkPolicyTranslation %s: %d pending identities, want %d; listed %s", k, st.Pending, len(rep.PendingIdentities), listDiff(pending, wantPending))
		}
		if want := len(rep.Findings) + conflicts[k]; int(st.FindingsCount) != want {
			problem("NetworkPolicyTranslation %s: findingsCount %d, want %d", k, st.FindingsCount, want)
		}
		var gotTypes, wantTypes []string
		for _, f := range st.Findings {
			gotTypes = appendNew(gotTypes, f.Type)
		}
		for _, f := range rep.Findings {
			wantTypes = appendNew(wantTypes, f.Type)
		}
		if conflicts[k] > 0 {
			wantTypes = appendNew(wantTypes, string(translate.Conflict))
		}
		if !slices.Equal(sorted(nonNil(gotTypes)), sorted(nonNil(wantTypes))) {
			problem("NetworkPolicyTranslation %s: finding types %s", k, listDiff(gotTypes, wantTypes))
		}
		if a := o.approvals[k]; rep.Identity == string(translate.IdentityReview) && (a == nil || owned(a) && metav1.GetControllerOfNoCopy(a).UID != np.UID) {
			problem("IdentityApproval %s: none for this NetworkPolicy (uid %s), although it was translated in review mode", k, np.UID)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(status)) {
		if rep, ok := o.report[k]; !ok || !rep.Translated {
			problem("NetworkPolicyTranslation %s: exists, but its NetworkPolicy is not translated (gone, or its namespace opted out)", k)
		}
	}
}

// listDiff says how got differs from want: what is missing, what is
// extra, or that only the order differs.
func listDiff(got, want []string) string {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	if missing == nil && extra == nil {
		return fmt.Sprintf("in another order: %v, want %v", got, want)
	}
	return fmt.Sprintf("missing %v, extra %v (%d listed, want %d)", missing, extra, len(got), len(want))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// expectMatchesTranslate checks the cluster against the offline
// translation of a dump of it, and returns that translation.
func expectMatchesTranslate() *offline {
	o := translateDump()
	diffs := o.differences()
	Expect(diffs).To(BeEmpty(), "the cluster differs from `netpol2authz translate` of its dump %s", o.dir)
	GinkgoWriter.Printf("matches translate of %s: %d AuthorizationPolicies, %d translated NetworkPolicies\n", o.dir, len(o.aps), len(o.report))
	return o
}
