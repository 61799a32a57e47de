package controllers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"strings"

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

// cacheNonce marks the digests this process's cache transforms record:
// random, never written to the API server, so that an annotation of the
// same name that someone wrote on an object (with the digest of what the
// operator would generate, over a spec emptied by hand: a generated DENY
// policy with no rules denies nothing) is never taken for one.
var cacheNonce = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}()

// cachedDigest is the digest a cache transform of this process recorded in
// meta's annotation key, if any.
func cachedDigest(meta *metav1.ObjectMeta, key string) (string, bool) {
	return strings.CutPrefix(meta.Annotations[key], cacheNonce+"/")
}

// transformAuthorizationPolicy is the AuthorizationPolicy cache's
// transform: managedFields go, and the spec is replaced by its digest.
// Anything else passes through. Informers hand it objects it already
// transformed again (at a resync), which it keeps as they are: those whose
// digest carries this process's nonce.
func transformAuthorizationPolicy(in any) (any, error) {
	ap, ok := in.(*securityv1.AuthorizationPolicy)
	if !ok {
		return in, nil
	}
	if _, done := cachedDigest(&ap.ObjectMeta, cachedSpecDigest); done {
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
	if d, ok := cachedDigest(&cur.ObjectMeta, cachedSpecDigest); ok {
		return d != specDigest(desired)
	}
	return !proto.Equal(&cur.Spec, desired)
}

// withCacheAnnotation is meta as a cache transform keeps it: without
// managedFields, with the cache-only annotation key set to the digest,
// marked with this process's nonce. meta's maps are not changed.
func withCacheAnnotation(meta metav1.ObjectMeta, key, digest string) metav1.ObjectMeta {
	meta.ManagedFields = nil
	meta.Annotations = maps.Clone(meta.Annotations)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[key] = cacheNonce + "/" + digest
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
