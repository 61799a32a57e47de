package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"

	"google.golang.org/protobuf/proto"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cachedSpecDigest is an annotation that only the operator's cache holds:
// the cache keeps an AuthorizationPolicy's metadata and status (what the
// operator reads of it) and replaces its spec, often long lists of
// principals, by this digest of it. Applying compares digests, so a hand
// edit of a generated policy's spec is still seen and undone. It is never
// written to the API server.
const cachedSpecDigest = "netpol2authz.io/cached-spec-digest"

// specDigest is the digest of an AuthorizationPolicy spec: SHA-256 of its
// deterministic protobuf encoding.
func specDigest(spec *securityapi.AuthorizationPolicy) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	return digest(b, err)
}

// digest is the hex SHA-256 of an encoding, or "" when encoding failed:
// never equal to a real digest, so compared as different.
func digest(b []byte, err error) string {
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// transformAuthorizationPolicy is the AuthorizationPolicy cache's
// transform: managedFields go, and the spec is replaced by its digest.
// Anything else passes through. Informers hand it objects it already
// transformed again (at a resync), which it keeps as they are: an object
// with the digest annotation and no spec. (Someone who can edit a
// generated policy could forge that shape, an empty spec with the digest
// of the generated one, and the operator would not notice until the
// policy's translation changes; an ALLOW policy without rules only ever
// allows less, and whoever can edit AuthorizationPolicies can as well add
// such a policy of their own, which the operator never touches.)
func transformAuthorizationPolicy(in any) (any, error) {
	ap, ok := in.(*securityv1.AuthorizationPolicy)
	if !ok {
		return in, nil
	}
	if _, done := ap.Annotations[cachedSpecDigest]; done && proto.Size(&ap.Spec) == 0 {
		return ap, nil
	}
	out := &securityv1.AuthorizationPolicy{TypeMeta: ap.TypeMeta, ObjectMeta: withCacheAnnotation(ap.ObjectMeta, cachedSpecDigest, specDigest(&ap.Spec))}
	proto.Merge(&out.Status, &ap.Status)
	return out, nil
}

// specDiffers says whether the spec of cur, as the cache holds it, differs
// from desired. A policy read without the cache's transform (a plain
// client) is compared in full.
func specDiffers(cur *securityv1.AuthorizationPolicy, desired *securityapi.AuthorizationPolicy) bool {
	if d, ok := cur.Annotations[cachedSpecDigest]; ok {
		return d != specDigest(desired)
	}
	return !proto.Equal(&cur.Spec, desired)
}

// withCacheAnnotation is meta as a cache transform keeps it: without
// managedFields, with the cache-only annotation key set to value. meta's
// maps are not changed.
func withCacheAnnotation(meta metav1.ObjectMeta, key, value string) metav1.ObjectMeta {
	meta.ManagedFields = nil
	meta.Annotations = maps.Clone(meta.Annotations)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[key] = value
	return meta
}

// withoutCacheAnnotations returns meta without the cache-only annotations
// (cachedSpecDigest, cachedStatusDigest).
func withoutCacheAnnotations(meta *metav1.ObjectMeta) *metav1.ObjectMeta {
	_, spec := meta.Annotations[cachedSpecDigest]
	_, status := meta.Annotations[cachedStatusDigest]
	if !spec && !status {
		return meta
	}
	out := meta.DeepCopy()
	delete(out.Annotations, cachedSpecDigest)
	delete(out.Annotations, cachedStatusDigest)
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	return out
}
