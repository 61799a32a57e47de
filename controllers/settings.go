package controllers

import (
	"cmp"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Mesh config: the ConfigMap "istio", key "mesh", in Istio's control-plane
// namespace.
const (
	MeshConfigMapName = translate.MeshConfigMapName
	MeshConfigKey     = translate.MeshConfigKey
	// DefaultIstioNamespace is Istio's control-plane namespace unless the
	// --istio-namespace flag says otherwise.
	DefaultIstioNamespace = translate.DefaultIstioNamespace
	// LeaderElectionID names the Lease replicas elect their leader with.
	LeaderElectionID = "netpol2authz.netpol2authz.io"
)

// Settings are the operator's flags that shape translations.
type Settings struct {
	// TrustDomain overrides the mesh config's trustDomain (--trust-domain).
	TrustDomain string
	// RootNamespace overrides the mesh config's rootNamespace
	// (--root-namespace).
	RootNamespace string
	// IstioNamespace holds the mesh ConfigMap (--istio-namespace); empty
	// means istio-system.
	IstioNamespace string
	// MaxPortRange caps the ports the port+endPort ranges of one rule expand to
	// (--max-port-range); zero means the engine's default.
	MaxPortRange int
	// ResyncPeriod is how often every NetworkPolicy is reconciled again
	// although nothing changed, a last line of defence against a missed
	// event (--resync-period); zero means controller-runtime's default
	// (about 10 hours, jittered).
	ResyncPeriod time.Duration
	// AdminPolicyDiscoveryPeriod is how often the API server's discovery
	// is asked which admin network policy kinds are served
	// (--admin-policy-discovery-period); zero means
	// DefaultAdminPolicyDiscoveryPeriod.
	AdminPolicyDiscoveryPeriod time.Duration
}

func (s Settings) istioNamespace() string { return cmp.Or(s.IstioNamespace, DefaultIstioNamespace) }

// TranslateOptions are the engine options of the operator: only opted-in
// namespaces are translated.
func (s Settings) TranslateOptions() translate.Options {
	return translate.Options{RequireOptIn: true, MaxPortRange: s.MaxPortRange}
}

// Mesh resolves the mesh settings as the offline commands do
// (translate.ResolveMesh): a flag wins over the mesh ConfigMap, which wins
// over the defaults (cluster.local; the root namespace is the Istio
// namespace). It reads the ConfigMap through r, the manager's cache, which
// holds only that one object. A mesh config that does not parse is an error:
// guessing the trust domain would write principals that match nobody.
func (s Settings) Mesh(ctx context.Context, r client.Reader) (translate.MeshSettings, error) {
	var mc translate.MeshConfig
	cm := &corev1.ConfigMap{}
	key := client.ObjectKey{Namespace: s.istioNamespace(), Name: MeshConfigMapName}
	switch err := r.Get(ctx, key, cm); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return translate.MeshSettings{}, fmt.Errorf("reading mesh config ConfigMap %s: %w", key, err)
	default:
		var err error
		if mc, err = translate.ParseMeshConfig(cm.Data[MeshConfigKey]); err != nil {
			// Terminal: retrying cannot help; a change of the ConfigMap
			// enqueues every policy again.
			return translate.MeshSettings{}, reconcile.TerminalError(fmt.Errorf("parsing key %q of mesh config ConfigMap %s: %w", MeshConfigKey, key, err))
		}
	}
	return translate.ResolveMesh(translate.MeshOverrides{TrustDomain: s.TrustDomain, RootNamespace: s.RootNamespace, IstioNamespace: s.IstioNamespace}, mc).MeshSettings, nil
}
