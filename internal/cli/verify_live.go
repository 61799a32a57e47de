package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1alpha1 "github.com/netpol2authz/netpol2authz/api/v1alpha1"
	"github.com/netpol2authz/netpol2authz/internal/manifest"
)

// clusterTimeout bounds reading a cluster.
const clusterTimeout = 2 * time.Minute

// listPage is how many objects one list request asks for.
const listPage = 500

// readCluster reads, and only reads, what verify needs from the cluster of
// a kubeconfig (path empty: KUBECONFIG, ~/.kube/config, else in-cluster).
// The objects go through the same decoder as files, so a cluster and its
// manifests are verified alike.
func readCluster(kubeconfig, kubeContext, istioNamespace string) (*manifest.Result, inputReport, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, inputReport{}, fmt.Errorf("no cluster to read: %w", err)
	}
	rep := inputReport{Source: "cluster", Server: cfg.Host}
	if raw, err := cc.RawConfig(); err == nil {
		rep.Context = raw.CurrentContext
		if kubeContext != "" {
			rep.Context = kubeContext
		}
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme, securityv1.AddToScheme, policyv1alpha1.AddToScheme, gatewayv1.Install} {
		if err := add(scheme); err != nil {
			return nil, rep, err
		}
	}
	if err := addAdminPolicyTypes(scheme); err != nil {
		return nil, rep, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, rep, fmt.Errorf("cluster %s: %w", cfg.Host, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()

	var items []json.RawMessage
	lists := []struct {
		list     client.ObjectList
		gvk      string
		optional bool
	}{
		{&corev1.NamespaceList{}, "v1/Namespace", false},
		{&corev1.PodList{}, "v1/Pod", false},
		{&networkingv1.NetworkPolicyList{}, "networking.k8s.io/v1/NetworkPolicy", false},
		// Services and Gateways decide which traffic passes a waypoint.
		{&corev1.ServiceList{}, "v1/Service", false},
		{&gatewayv1.GatewayList{}, "gateway.networking.k8s.io/v1/Gateway", true},
		// Without Istio's CRDs there is no AuthorizationPolicy to check.
		{&securityv1.AuthorizationPolicyList{}, "security.istio.io/v1/AuthorizationPolicy", true},
		// Without netpol2authz's CRDs no NetworkPolicy has an approval
		// record: each is at its first translation, as the operator would
		// find it once installed.
		{&policyv1alpha1.IdentityApprovalList{}, "policy.netpol2authz.io/v1alpha1/IdentityApproval", true},
	}
	for _, l := range lists {
		got, err := listAll(ctx, c, l.list, l.gvk)
		if err != nil {
			if l.optional && meta.IsNoMatchError(err) {
				continue
			}
			return nil, rep, fmt.Errorf("cluster %s: listing %s: %w", cfg.Host, l.gvk, err)
		}
		items = append(items, got...)
	}
	// The admin network policies, where served (verify_live_admin.go).
	admin, err := listAdminPolicies(ctx, c)
	if err != nil {
		return nil, rep, fmt.Errorf("cluster %s: %w", cfg.Host, err)
	}
	items = append(items, admin...)
	cm := &corev1.ConfigMap{}
	switch err := c.Get(ctx, types.NamespacedName{Namespace: istioNamespace, Name: "istio"}, cm); {
	case err == nil:
		raw, err := objectJSON(cm, "v1", "ConfigMap")
		if err != nil {
			return nil, rep, err
		}
		items = append(items, raw)
	case apierrors.IsNotFound(err):
	default:
		return nil, rep, fmt.Errorf("cluster %s: reading ConfigMap %s/istio: %w", cfg.Host, istioNamespace, err)
	}

	data, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		return nil, rep, err
	}
	loaded, err := manifest.Decode([]manifest.Input{{Name: "cluster " + cfg.Host, Data: data}}, manifest.Options{IstioNamespace: istioNamespace})
	if err != nil {
		return nil, rep, fmt.Errorf("decoding what the cluster returned: %w", err)
	}
	return loaded, rep, nil
}

// listAll lists every object of a kind, page by page, as JSON objects with
// their apiVersion and kind.
func listAll(ctx context.Context, c client.Client, list client.ObjectList, gvk string) ([]json.RawMessage, error) {
	apiVersion, kind := splitGVK(gvk)
	var out []json.RawMessage
	opts := []client.ListOption{client.Limit(listPage)}
	for {
		if err := c.List(ctx, list, opts...); err != nil {
			return nil, err
		}
		objs, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			raw, err := objectJSON(o, apiVersion, kind)
			if err != nil {
				return nil, err
			}
			out = append(out, raw)
		}
		next := list.GetContinue()
		if next == "" {
			return out, nil
		}
		opts = []client.ListOption{client.Limit(listPage), client.Continue(next)}
	}
}

// objectJSON renders an object with its type, without managed fields.
func objectJSON(o runtime.Object, apiVersion, kind string) (json.RawMessage, error) {
	obj := o.DeepCopyObject()
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	obj.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(apiVersion, kind))
	return json.Marshal(obj)
}

func splitGVK(gvk string) (apiVersion, kind string) {
	for i := len(gvk) - 1; i >= 0; i-- {
		if gvk[i] == '/' {
			return gvk[:i], gvk[i+1:]
		}
	}
	return "", gvk
}
