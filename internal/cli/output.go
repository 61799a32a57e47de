package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// writePolicies writes every generated AuthorizationPolicy, in the order of
// the translations (NetworkPolicies by namespace and name, then policies by
// name), as multi-document YAML (each document starting with ---) or as a
// JSON v1 List. Both are what kubectl apply -f - accepts.
func writePolicies(w io.Writer, r translate.Result, format string) error {
	var items []json.RawMessage
	for _, t := range r.Translations {
		for _, ap := range t.Policies {
			js, err := applyable(ap)
			if err != nil {
				return fmt.Errorf("AuthorizationPolicy %s/%s: %w", ap.Namespace, ap.Name, err)
			}
			items = append(items, js)
		}
	}
	if format == "json" {
		list := struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Items      []json.RawMessage `json:"items"`
		}{APIVersion: "v1", Kind: "List", Items: items}
		if list.Items == nil {
			list.Items = []json.RawMessage{}
		}
		out, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(out, '\n'))
		return err
	}
	var buf bytes.Buffer
	for _, js := range items {
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(y)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// applyable renders a policy as JSON without what the server owns: no
// status, no creationTimestamp: null, no owner reference without a uid
// (manifests read offline have no uids, and the API server rejects an owner
// reference without one).
func applyable(ap *securityv1.AuthorizationPolicy) (json.RawMessage, error) {
	c := ap.DeepCopy()
	if c.APIVersion == "" {
		c.APIVersion = securityv1.SchemeGroupVersion.String()
	}
	if c.Kind == "" {
		c.Kind = "AuthorizationPolicy"
	}
	refs := c.OwnerReferences[:0]
	for _, ref := range c.OwnerReferences {
		if ref.UID != "" {
			refs = append(refs, ref)
		}
	}
	c.OwnerReferences = refs
	if len(c.OwnerReferences) == 0 {
		c.OwnerReferences = nil
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	delete(obj, "status")
	if meta, ok := obj["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	out, err := json.Marshal(obj)
	return out, err
}
