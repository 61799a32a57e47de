package translate

import (
	"cmp"

	"sigs.k8s.io/yaml"
)

// Istio's defaults and where its mesh config lives: the ConfigMap "istio",
// key "mesh", in the control-plane namespace. The operator and the offline
// commands share them.
const (
	DefaultTrustDomain    = "cluster.local"
	DefaultIstioNamespace = "istio-system"
	MeshConfigMapName     = "istio"
	MeshConfigKey         = "mesh"
)

// MeshConfig is the part of Istio's MeshConfig that changes a translation.
// The rest is neither read nor checked.
type MeshConfig struct {
	TrustDomain   string `json:"trustDomain"`
	RootNamespace string `json:"rootNamespace"`
}

// ParseMeshConfig reads the mesh config text (the ConfigMap's "mesh" key).
func ParseMeshConfig(text string) (MeshConfig, error) {
	var mc MeshConfig
	err := yaml.Unmarshal([]byte(text), &mc)
	return mc, err
}

// MeshSource says where a mesh setting came from.
type MeshSource string

// The sources of a mesh setting, in order of precedence.
const (
	MeshSourceFlag       MeshSource = "flag"
	MeshSourceMeshConfig MeshSource = "mesh config"
	MeshSourceDefault    MeshSource = "default"
)

// ResolvedMesh is the mesh settings a translation uses and where each came
// from.
type ResolvedMesh struct {
	MeshSettings
	TrustDomainSource, RootNamespaceSource MeshSource
}

// MeshOverrides are the mesh settings given as flags; empty means not
// given. IstioNamespace is the control-plane namespace (empty: Istio's
// default), which is also the default root namespace, as in Istio.
type MeshOverrides struct {
	TrustDomain, RootNamespace, IstioNamespace string
}

// ResolveMesh applies the one precedence of the operator and the offline
// commands: a flag wins over the mesh config, which wins over Istio's
// defaults (trust domain cluster.local; root namespace the control-plane
// namespace).
func ResolveMesh(flags MeshOverrides, mc MeshConfig) ResolvedMesh {
	var r ResolvedMesh
	r.TrustDomain, r.TrustDomainSource = precedence(flags.TrustDomain, mc.TrustDomain, DefaultTrustDomain)
	r.RootNamespace, r.RootNamespaceSource = precedence(flags.RootNamespace, mc.RootNamespace, cmp.Or(flags.IstioNamespace, DefaultIstioNamespace))
	return r
}

// precedence is the first set of a flag's value, the mesh config's and the
// default, with where it came from.
func precedence(flag, meshConfig, def string) (string, MeshSource) {
	switch {
	case flag != "":
		return flag, MeshSourceFlag
	case meshConfig != "":
		return meshConfig, MeshSourceMeshConfig
	}
	return def, MeshSourceDefault
}
