package controllers

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/api/equality"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// cachedStatusDigest is an annotation that only the operator's cache holds
// on a NetworkPolicyTranslation, like cachedSpecDigest on the policies: a
// digest of the status as the API server has it. The cache keeps of the
// status only what a reconcile reads back (the conditions, whose
// transition times carry over; the pending identities, whose field
// managers carry over; one finding per type, for the Events of types that
// appear or clear; the names a Conflict is over, for the conflict index)
// and drops the rest, mostly finding messages. Reporting compares digests,
// so a hand edit of a status is still seen and undone. It is never written
// to the API server.
const cachedStatusDigest = "netpol2authz.io/cached-status-digest"

// statusDigest is the digest of a status: SHA-256 of its JSON encoding,
// which is the same for a status as built and as read back (times are
// encoded to the second, empty and absent lists alike).
func statusDigest(st *policyv1alpha1.NetworkPolicyTranslationStatus) string {
	return digest(json.Marshal(st))
}

// transformTranslation is the NetworkPolicyTranslation cache's transform:
// managedFields go, and the status is cut to what reconciles read, with
// the digest of the whole in cachedStatusDigest. Informers hand it objects
// it already transformed again (at a resync), which it keeps as they are:
// those whose digest carries this process's nonce (apcache.go).
func transformTranslation(in any) (any, error) {
	npt, ok := in.(*policyv1alpha1.NetworkPolicyTranslation)
	if !ok {
		return in, nil
	}
	if _, done := cachedDigest(&npt.ObjectMeta, cachedStatusDigest); done {
		return npt, nil
	}
	out := &policyv1alpha1.NetworkPolicyTranslation{TypeMeta: npt.TypeMeta, ObjectMeta: withCacheAnnotation(npt.ObjectMeta, cachedStatusDigest, statusDigest(&npt.Status))}
	out.Status = policyv1alpha1.NetworkPolicyTranslationStatus{
		Conditions:        npt.Status.Conditions,
		PendingIdentities: npt.Status.PendingIdentities,
	}
	seen := map[string]bool{}
	for _, f := range npt.Status.Findings {
		switch {
		case f.Type == string(translate.Conflict):
			kept := policyv1alpha1.Finding{Type: f.Type, Severity: f.Severity}
			for _, o := range f.Objects {
				if o.Kind == "AuthorizationPolicy" {
					kept.Objects = append(kept.Objects, policyv1alpha1.ObjectReference{Kind: o.Kind, Name: o.Name})
				}
			}
			out.Status.Findings = append(out.Status.Findings, kept)
		case !seen[f.Type]:
			out.Status.Findings = append(out.Status.Findings, policyv1alpha1.Finding{Type: f.Type, Severity: f.Severity})
		}
		seen[f.Type] = true
	}
	return out, nil
}

// statusUnchanged says whether the status of cur, as the cache holds it,
// is already want. A translation read without the cache's transform (a
// plain client, or the answer to a write) is compared in full.
func statusUnchanged(cur *policyv1alpha1.NetworkPolicyTranslation, want *policyv1alpha1.NetworkPolicyTranslationStatus) bool {
	if d, ok := cachedDigest(&cur.ObjectMeta, cachedStatusDigest); ok {
		return d == statusDigest(want)
	}
	return equality.Semantic.DeepEqual(cur.Status, *want)
}
