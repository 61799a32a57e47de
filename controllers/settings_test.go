package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

func TestMeshSettings(t *testing.T) {
	meshCM := func(ns, mesh string) client.Object {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: ns}, Data: map[string]string{"mesh": mesh}}
	}
	tests := map[string]struct {
		settings Settings
		objs     []client.Object
		want     translate.MeshSettings
	}{
		"defaults": {
			want: translate.MeshSettings{TrustDomain: "cluster.local", RootNamespace: "istio-system"},
		},
		"the root namespace defaults to the Istio namespace": {
			settings: Settings{IstioNamespace: "istio-cp"},
			want:     translate.MeshSettings{TrustDomain: "cluster.local", RootNamespace: "istio-cp"},
		},
		"the mesh config": {
			objs: []client.Object{meshCM("istio-system", "trustDomain: corp.example\nrootNamespace: mesh-root\ndefaultConfig:\n  discoveryAddress: istiod:15012\n")},
			want: translate.MeshSettings{TrustDomain: "corp.example", RootNamespace: "mesh-root"},
		},
		"flags win over the mesh config": {
			settings: Settings{TrustDomain: "flag.example", RootNamespace: "flag-root"},
			objs:     []client.Object{meshCM("istio-system", "trustDomain: corp.example\nrootNamespace: mesh-root\n")},
			want:     translate.MeshSettings{TrustDomain: "flag.example", RootNamespace: "flag-root"},
		},
		"a mesh config elsewhere is not read": {
			objs: []client.Object{meshCM("other", "trustDomain: corp.example\n")},
			want: translate.MeshSettings{TrustDomain: "cluster.local", RootNamespace: "istio-system"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.settings.Mesh(context.Background(), fakeCache(t, tc.objs...))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Mesh = %+v, want %+v", got, tc.want)
			}
		})
	}

	if _, err := (Settings{}).Mesh(context.Background(), fakeCache(t, meshCM("istio-system", "trustDomain: [oops"))); err == nil {
		t.Error("a mesh config that does not parse gave no error")
	}
}
