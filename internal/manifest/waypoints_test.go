package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

const (
	serviceDoc = `apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: shop
  labels: {istio.io/use-waypoint: waypoint}
spec:
  selector: {app: db}
  ports:
  - {name: pg, port: 80, targetPort: pg}
  - {name: metrics, port: 9090, targetPort: 9091, protocol: TCP}
  - {name: dns, port: 53, protocol: UDP}
status: {loadBalancer: {}}
`
	// What istioctl waypoint apply writes: a Gateway to apply, no status.
	gatewayDoc = `apiVersion: gateway.networking.k8s.io/VERSION
kind: Gateway
metadata:
  name: waypoint
  namespace: shop
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
`
	// A Gateway read from a cluster whose waypoint has no ready pod yet:
	// its status has no addresses.
	gatewayDumpDoc = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: shared
  namespace: infra
  annotations: {gateway.istio.io/service-account: shared-wp}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
    allowedRoutes:
      namespaces:
        from: Selector
        selector: {matchLabels: {team: shop}}
status:
  conditions:
  - {type: Programmed, status: "False", reason: AddressNotAssigned, message: no instances, lastTransitionTime: "2026-01-01T00:00:00Z"}
  someFutureField: true
`
)

func TestDecodeWaypoints(t *testing.T) {
	for _, version := range []string{"v1", "v1beta1"} {
		t.Run(version, func(t *testing.T) {
			res := decodeYAML(t, Options{}, "svc.yaml", serviceDoc, "gw.yaml", replaceVersion(gatewayDoc, version), "dump.yaml", gatewayDumpDoc)
			wantSvc := []translate.Service{{
				Namespace: "shop", Name: "db",
				Labels:   map[string]string{"istio.io/use-waypoint": "waypoint"},
				Selector: map[string]string{"app": "db"},
				Ports: []translate.ServicePort{
					{Name: "pg", Port: 80, TargetPort: intstr.FromString("pg")},
					{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9091), Protocol: "TCP"},
					{Name: "dns", Port: 53, Protocol: "UDP"},
				},
			}}
			if diff := cmp.Diff(wantSvc, res.Snapshot.Services); diff != "" {
				t.Errorf("Services (-want,+got):\n%s", diff)
			}
			wantGw := []translate.Gateway{
				{
					Namespace: "infra", Name: "shared", ClassName: "istio-waypoint",
					Annotations: map[string]string{"gateway.istio.io/service-account": "shared-wp"},
					AttachFrom:  "Selector", AttachSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}},
				},
				{
					Namespace: "shop", Name: "waypoint", ClassName: "istio-waypoint",
					Labels:    map[string]string{"istio.io/waypoint-for": "service"},
					Addressed: true, // a manifest without status is one to apply
				},
			}
			if diff := cmp.Diff(wantGw, res.Snapshot.Gateways); diff != "" {
				t.Errorf("Gateways (-want,+got):\n%s", diff)
			}
			if res.Stats.Objects["Gateway"] != 2 || res.Stats.Objects["Service"] != 1 {
				t.Errorf("counts: %v", res.Stats.Objects)
			}
		})
	}
}

func TestDecodeGatewayAddresses(t *testing.T) {
	res := decodeYAML(t, Options{}, "gw.yaml", replaceVersion(gatewayDoc, "v1")+"status:\n  addresses: [{type: Hostname, value: waypoint.shop.svc.cluster.local}]\n",
		"empty.yaml", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w2, namespace: shop}\nspec: {gatewayClassName: istio-waypoint, listeners: []}\nstatus: {}\n")
	for _, gw := range res.Snapshot.Gateways {
		if !gw.Addressed {
			t.Errorf("Gateway %s: not addressed; with addresses, or an empty status, it is", gw.Name)
		}
	}
}

func TestDecodeWaypointErrors(t *testing.T) {
	tests := map[string]struct {
		input string
		want  []string
	}{
		"misspelt Service field": {
			input: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selecter: {app: x}}\n",
			want:  []string{`in.yaml:1: document 1 (Service default/s): spec.selecter: unknown field`},
		},
		"Service ports the API server rejects": {
			input: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 0}, {port: 80, targetPort: no_such-name}, {port: 81, protocol: ICMP}]\n",
			want: []string{
				`in.yaml:1: document 1 (Service default/s): spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`,
				`in.yaml:1: document 1 (Service default/s): spec.ports[1].targetPort: Invalid value: "no_such-name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`,
				`in.yaml:1: document 1 (Service default/s): spec.ports[2].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"`,
			},
		},
		"misspelt Gateway field": {
			input: "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w}\nspec: {gatewayClassName: istio-waypoint, listners: []}\n",
			want:  []string{`in.yaml:1: document 1 (Gateway default/w): spec.listners: unknown field`},
		},
		"Gateway without class, bad attachment": {
			input: "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: Gateway\nmetadata: {name: w}\nspec:\n  listeners: [{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: Some}}}]\n",
			want: []string{
				`in.yaml:1: document 1 (Gateway default/w): spec.gatewayClassName: Required value`,
				`in.yaml:1: document 1 (Gateway default/w): spec.listeners[0].allowedRoutes.namespaces.from: Unsupported value: "Some": supported values: "All", "Same", "Selector", "None"`,
			},
		},
		"one Gateway in two versions": {
			input: replaceVersion(gatewayDoc, "v1") + "---\n" + replaceVersion(gatewayDoc, "v1beta1"),
			want:  []string{`in.yaml:12: document 2 (Gateway shop/waypoint): defined twice: also in in.yaml:1 document 1`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(inputs("in.yaml", tc.input), Options{})
			if diff := cmp.Diff(tc.want, errorLines(t, err)); diff != "" {
				t.Errorf("errors (-want,+got):\n%s", diff)
			}
		})
	}
}
