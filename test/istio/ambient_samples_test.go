package istio_test

// The samples of config/samples, copied into fresh ambient namespaces.

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/demo"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// ambientSamples reads config/samples and turns them into an ambient copy
// in namespaces rename(ns): namespaces labelled istio.io/dataplane-mode=ambient
// instead of istio-injection (their netpol2authz annotations kept), pods
// redirected to ztunnel as istio-cni marks them, except those the samples
// keep out of the mesh (sidecar.istio.io/inject=false), which opt out with
// istio.io/dataplane-mode=none; namespaceSelectors on
// kubernetes.io/metadata.name name the renamed namespaces; pods get fresh
// IPs. Opted-in namespaces follow identities, and NetworkPolicies come
// last, so that whenever the operator translates, every pod the samples
// select is in its policies. It returns the objects for demo.ApplySamples and the new namespace
// names.
func ambientSamples(rename func(string) string) ([]*unstructured.Unstructured, []string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	objs, err := demo.ReadSamples(filepath.Join(root, "config", "samples"))
	if err != nil {
		return nil, nil, err
	}
	var namespaces []string
	for _, u := range objs {
		switch u.GetKind() {
		case "Namespace":
			u.SetName(rename(u.GetName()))
			labels := u.GetLabels()
			delete(labels, "istio-injection")
			labels[labelDataplaneMode] = "ambient"
			u.SetLabels(labels)
			if annotations := u.GetAnnotations(); annotations[translate.AnnotationMode] != "" {
				annotations[translate.AnnotationIdentity] = string(translate.IdentityFollow)
				u.SetAnnotations(annotations)
			}
			namespaces = append(namespaces, u.GetName())
			continue
		case "Pod":
			annotations := u.GetAnnotations()
			if annotations["sidecar.istio.io/inject"] == "false" {
				delete(annotations, "sidecar.istio.io/inject")
				labels := u.GetLabels()
				labels[labelDataplaneMode] = "none"
				u.SetLabels(labels)
			} else {
				if annotations == nil {
					annotations = map[string]string{}
				}
				annotations[annotationRedirected] = "enabled"
			}
			u.SetAnnotations(annotations)
			if err := unstructured.SetNestedField(u.Object, freshPodIP().String(), "status", "podIP"); err != nil {
				return nil, nil, err
			}
		case "NetworkPolicy":
			renameNamespaceSelectors(u.Object, rename)
		}
		u.SetNamespace(rename(u.GetNamespace()))
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return cmp.Compare(b2i(a.GetKind() == "NetworkPolicy"), b2i(b.GetKind() == "NetworkPolicy"))
	})
	return objs, namespaces, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// renameNamespaceSelectors renames the values of every
// kubernetes.io/metadata.name term of every namespaceSelector under obj.
func renameNamespaceSelectors(obj any, rename func(string) string) {
	const key = "kubernetes.io/metadata.name"
	switch v := obj.(type) {
	case map[string]any:
		for k, child := range v {
			if sel, ok := child.(map[string]any); ok && k == "namespaceSelector" {
				if ml, ok := sel["matchLabels"].(map[string]any); ok {
					if name, ok := ml[key].(string); ok {
						ml[key] = rename(name)
					}
				}
				exprs, _ := sel["matchExpressions"].([]any)
				for _, e := range exprs {
					if expr, ok := e.(map[string]any); ok && expr["key"] == key {
						values, _ := expr["values"].([]any)
						for i, val := range values {
							if s, ok := val.(string); ok {
								values[i] = rename(s)
							}
						}
					}
				}
				continue
			}
			renameNamespaceSelectors(child, rename)
		}
	case []any:
		for _, child := range v {
			renameNamespaceSelectors(child, rename)
		}
	}
}

// appliedFor returns a check for Eventually: nil once the operator has
// translated the current generation of every NetworkPolicy of keys and
// the AuthorizationPolicies its translation lists exist. It does not wait
// for Ready, which also reflects what istiod says of the policies.
func appliedFor(ctx context.Context, c client.Client, keys []client.ObjectKey) func() error {
	return func() error {
		for _, key := range keys {
			np := &networkingv1.NetworkPolicy{}
			if err := c.Get(ctx, key, np); err != nil {
				return err
			}
			npt := &policyv1alpha1.NetworkPolicyTranslation{}
			if err := c.Get(ctx, key, npt); err != nil {
				return err
			}
			if npt.Status.ObservedGeneration != np.Generation || len(npt.Status.AuthorizationPolicies) == 0 {
				return fmt.Errorf("%s: not translated yet", key)
			}
			for _, name := range npt.Status.AuthorizationPolicies {
				if err := c.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: name}, &securityv1.AuthorizationPolicy{}); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
