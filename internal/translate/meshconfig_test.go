package translate

import "testing"

func TestResolveMesh(t *testing.T) {
	tests := map[string]struct {
		flags MeshOverrides
		mc    MeshConfig
		want  ResolvedMesh
	}{
		"defaults": {want: ResolvedMesh{MeshSettings{TrustDomain: "cluster.local", RootNamespace: "istio-system"}, MeshSourceDefault, MeshSourceDefault}},
		"the root namespace defaults to the Istio namespace": {flags: MeshOverrides{IstioNamespace: "mesh"},
			want: ResolvedMesh{MeshSettings{TrustDomain: "cluster.local", RootNamespace: "mesh"}, MeshSourceDefault, MeshSourceDefault}},
		"mesh config over defaults": {mc: MeshConfig{TrustDomain: "corp.example", RootNamespace: "root"},
			want: ResolvedMesh{MeshSettings{TrustDomain: "corp.example", RootNamespace: "root"}, MeshSourceMeshConfig, MeshSourceMeshConfig}},
		"flags over mesh config": {flags: MeshOverrides{TrustDomain: "flag.example", RootNamespace: "flagged"}, mc: MeshConfig{TrustDomain: "corp.example", RootNamespace: "root"},
			want: ResolvedMesh{MeshSettings{TrustDomain: "flag.example", RootNamespace: "flagged"}, MeshSourceFlag, MeshSourceFlag}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ResolveMesh(tc.flags, tc.mc); got != tc.want {
				t.Errorf("ResolveMesh = %+v, want %+v", got, tc.want)
			}
		})
	}
	mc, err := ParseMeshConfig("trustDomain: corp.example\ndefaultConfig:\n  discoveryAddress: istiod:15012\n")
	if err != nil || mc != (MeshConfig{TrustDomain: "corp.example"}) {
		t.Errorf("ParseMeshConfig = %+v, %v", mc, err)
	}
	if _, err := ParseMeshConfig("trustDomain: [unclosed"); err == nil {
		t.Error("ParseMeshConfig accepted invalid YAML")
	}
}
