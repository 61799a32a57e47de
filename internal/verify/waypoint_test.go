package verify

import (
	"slices"
	"strings"
	"testing"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// waypointCluster: ambient namespace shop whose label names waypoint
// shop/waypoint (Services only, unless a case says otherwise); Service db
// (port 80 -> 5432) selects db-0; client-0 and other-0 are mesh clients,
// legacy-0 is outside the mesh. A case appends Gateways (with any label)
// and policies.
const waypointCluster = `
namespaces:
- {name: shop, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}
pods:
- {namespace: shop, name: db-0, labels: {app: db}, serviceAccount: db, ip: 10.1.0.2, ports: [{name: pg, port: 5432}]}
- {namespace: shop, name: client-0, labels: {app: client}, serviceAccount: client, ip: 10.1.0.3}
- {namespace: shop, name: other-0, labels: {app: other}, serviceAccount: other, ip: 10.1.0.4}
- {namespace: shop, name: legacy-0, labels: {app: legacy, istio.io/dataplane-mode: none}, serviceAccount: legacy, ip: 10.1.0.5}
- {namespace: shop, name: waypoint-0, labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}, serviceAccount: waypoint, ip: 10.1.0.9}
services:
- {namespace: shop, name: db, selector: {app: db}, ports: [{port: 80, targetPort: pg}]}
`

// pathAllows evaluates one connection over every path: whether some path
// and every path lets it through.
func (e *engine) pathAllows(t *testing.T, c connection) (some, every bool) {
	t.Helper()
	src, dst := e.pod(t, c.src), e.pod(t, c.dst)
	s := e.newScratch()
	d := e.w.dsts[dst.dst]
	at := e.force.at(d)
	e.force.verdict(at, c.port, false, s.allow, s.deny)
	if wa := e.waypointsAt(d); wa != nil {
		e.pathVerdict(e.force, at, wa, c.port, false, s.allow, s.allowAll, s.tmp)
	} else {
		s.allowAll.copyFrom(s.allow)
	}
	return s.allow.has(src.src), s.allowAll.has(src.src)
}

// TestWaypointPaths: which policies a connection meets at the waypoint and
// at ztunnel, and which identity each sees. "some/every" is whether some
// path and every path (pod IP, Service address) allows it.
func TestWaypointPaths(t *testing.T) {
	const gwService = "gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}]\n"
	const zClient = `
- metadata: {name: z, namespace: shop}
  spec: {selector: {matchLabels: {app: db}}, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}], to: [{operation: {ports: ["5432"]}}]}]}
`
	const zClientAndWaypoint = `
- metadata: {name: z, namespace: shop}
  spec: {selector: {matchLabels: {app: db}}, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}, {source: {principals: [cluster.local/ns/shop/sa/waypoint]}}], to: [{operation: {ports: ["5432"]}}]}]}
`
	const svcClient = `
- metadata: {name: s, namespace: shop}
  spec: {targetRefs: [{kind: Service, group: "", name: db}], rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}], to: [{operation: {ports: ["80"]}}]}]}
`
	tests := map[string]struct {
		cluster string
		want    map[string]string
	}{
		"no waypoint exists: every path is direct": {
			cluster: "authorizationPolicies:" + zClient,
			want:    map[string]string{"shop/client-0 -> shop/db-0:5432": "allow", "shop/other-0 -> shop/db-0:5432": "deny"},
		},
		// The bug of issue 11: ztunnel sees the waypoint, not the client,
		// on the Service path.
		"client principals only: the Service path is denied": {
			cluster: gwService + "authorizationPolicies:" + zClient,
			want:    map[string]string{"shop/client-0 -> shop/db-0:5432": "some", "shop/other-0 -> shop/db-0:5432": "deny", "shop/legacy-0 -> shop/db-0:5432": "deny"},
		},
		"the waypoint allowed at ztunnel, nothing bound to the Service: anyone through it": {
			cluster: gwService + "authorizationPolicies:" + zClientAndWaypoint,
			want:    map[string]string{"shop/client-0 -> shop/db-0:5432": "allow", "shop/other-0 -> shop/db-0:5432": "some"},
		},
		"the waypoint checks the client on the service port": {
			cluster: gwService + "authorizationPolicies:" + zClientAndWaypoint + svcClient,
			want:    map[string]string{"shop/client-0 -> shop/db-0:5432": "allow", "shop/other-0 -> shop/db-0:5432": "deny", "shop/legacy-0 -> shop/db-0:5432": "deny"},
		},
		"a policy bound to the Service on the container port matches nothing there": {
			cluster: gwService + "authorizationPolicies:" + zClientAndWaypoint + `
- metadata: {name: s, namespace: shop}
  spec: {targetRefs: [{kind: Service, group: "", name: db}], rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}], to: [{operation: {ports: ["5432"]}}]}]}
`,
			want: map[string]string{"shop/client-0 -> shop/db-0:5432": "some", "shop/other-0 -> shop/db-0:5432": "deny"},
		},
		"without status.addresses the waypoint is not used": {
			cluster: "gateways: [{namespace: shop, name: waypoint, className: istio-waypoint}]\nauthorizationPolicies:" + zClient,
			want:    map[string]string{"shop/client-0 -> shop/db-0:5432": "allow"},
		},
		// A workload waypoint takes pod-IP traffic: only Gateway-bound
		// policies apply there; the Service path goes direct.
		"workload waypoint: the pod-IP path passes it": {
			cluster: "gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true, labels: {istio.io/waypoint-for: workload}}]\nauthorizationPolicies:" + zClientAndWaypoint,
			want:    map[string]string{"shop/client-0 -> shop/db-0:5432": "allow", "shop/other-0 -> shop/db-0:5432": "some", "shop/legacy-0 -> shop/db-0:5432": "deny"},
		},
		"workload waypoint with a Gateway-bound policy": {
			cluster: "gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true, labels: {istio.io/waypoint-for: workload}}]\nauthorizationPolicies:" + zClientAndWaypoint + `
- metadata: {name: gw, namespace: shop}
  spec: {targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}], rules: [{from: [{source: {namespaces: [nobody]}}]}]}
`,
			want: map[string]string{"shop/client-0 -> shop/db-0:5432": "some", "shop/other-0 -> shop/db-0:5432": "deny"},
		},
		// ztunnel sees the waypoint's pod address: an ipBlock of the
		// clients' addresses does not admit it.
		"ipBlocks at ztunnel see the waypoint's address": {
			cluster: gwService + `authorizationPolicies:
- metadata: {name: z, namespace: shop}
  spec: {selector: {matchLabels: {app: db}}, rules: [{from: [{source: {ipBlocks: [10.1.0.3/32]}}]}]}
`,
			want: map[string]string{"shop/client-0 -> shop/db-0:5432": "some", "shop/other-0 -> shop/db-0:5432": "deny"},
		},
		"a DENY of the waypoint's namespace at ztunnel": {
			cluster: gwService + `authorizationPolicies:
- metadata: {name: d, namespace: shop}
  spec: {action: DENY, selector: {matchLabels: {app: db}}, rules: [{from: [{source: {namespaces: [shop]}}], to: [{operation: {ports: ["5432"]}}]}]}
`,
			want: map[string]string{"shop/legacy-0 -> shop/db-0:5432": "allow", "shop/other-0 -> shop/db-0:5432": "deny"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEngine(readCluster(t, waypointCluster+tc.cluster).existing())
			for conn, want := range tc.want {
				some, every := e.pathAllows(t, parseConnection(t, conn))
				got := map[[2]bool]string{{true, true}: "allow", {true, false}: "some", {false, false}: "deny", {false, true}: "impossible"}[[2]bool{some, every}]
				if got != want {
					t.Errorf("%s: got %s, want %s", conn, got, want)
				}
			}
		})
	}
}

const waypointNP = `
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 5432}]}]
`

// TestWaypointVerify checks the translation with waypoints end to end: the
// generated policies of the exact case differ nowhere; policies generated
// before the waypoint (no waypoint principal, nothing bound to the Service)
// deny the Service path, unexplained; the inexact cases are explained by
// WaypointInPath.
func TestWaypointVerify(t *testing.T) {
	differences := func(in Input) []string {
		var out []string
		for _, d := range Verify(in).Differences {
			out = append(out, describe(d))
		}
		slices.Sort(out)
		return out
	}
	expect := func(t *testing.T, in Input, want ...string) {
		t.Helper()
		if got := differences(in); !slices.Equal(got, want) {
			t.Errorf("differences:\n%s\nwant:\n%s", join(got), join(want))
		}
	}
	t.Run("exact: no difference", func(t *testing.T) {
		c := readCluster(t, waypointCluster+"gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}]\n"+waypointNP)
		if got := differences(c.generated()); len(got) > 0 {
			t.Errorf("differences:\n%s", join(got))
		}
	})
	t.Run("policies from before the waypoint deny the Service path", func(t *testing.T) {
		c := readCluster(t, waypointCluster+"gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}]\n"+waypointNP+`
authorizationPolicies:
- metadata: {name: netpol-db, namespace: shop}
  spec: {selector: {matchLabels: {app: db}}, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}], to: [{operation: {ports: ["5432"]}}]}]}
`)
		res := Verify(c.existing())
		want := []string{"IstioDeniesMore shop/client-0 -> shop/db-0 ports [5432] dry=false: UNEXPLAINED"}
		if got := differences(c.existing()); !slices.Equal(got, want) {
			t.Errorf("differences:\n%s\nwant:\n%s", join(got), join(want))
		}
		if len(res.Differences) == 1 && !res.Differences[0].Deviates {
			t.Error("not marked as deviating from what netpol2authz generates")
		}
	})
	workload := waypointCluster + "gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true, labels: {istio.io/waypoint-for: all}}]\n" + waypointNP
	t.Run("workload waypoint, permissive: explained widening", func(t *testing.T) {
		expect(t, readCluster(t, workload).generated(), "IstioAllowsMore shop/db-0,shop/other-0 -> shop/db-0 ports [5432] dry=false: WaypointInPath shop/db")
	})
	t.Run("workload waypoint, strict: explained narrowing", func(t *testing.T) {
		expect(t, readCluster(t, workload+"options: {defaultFidelity: strict}\n").generated(), "IstioDeniesMore shop/client-0 -> shop/db-0 ports [5432] dry=false: WaypointInPath shop/db")
	})
	// An admin Deny of client and an admin Allow of other, both to db: at
	// the pods' ztunnel the peer on the Service path is the waypoint, so
	// the selector-bound DENY and ALLOW of the admin rules cannot see the
	// client. Bound to the Service too, they hold on every path.
	admin := waypointCluster + "gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}]\n" + waypointNP + `
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: admin}
  spec:
    priority: 10
    subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
    ingress:
    - {action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}}], ports: [{namedPort: pg}]}
    - {action: Allow, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: other}}}}], ports: [{portNumber: {protocol: TCP, port: 5432}}]}
`
	t.Run("admin Allow and Deny behind the waypoint, strict: exact", func(t *testing.T) {
		expect(t, readCluster(t, admin+"options: {defaultFidelity: strict}\n").generated())
	})
	t.Run("admin Allow and Deny behind the waypoint, permissive: the Deny explained", func(t *testing.T) {
		expect(t, readCluster(t, admin).generated(), "IstioAllowsMore shop/client-0 -> shop/db-0 ports [5432] dry=false: AdminPolicyDenies shop/db")
	})
	// Strict leaves a workload waypoint's principal out at ztunnel, but an
	// admin Allow of the waypoint's own namespace admits it there anyway:
	// whatever the waypoint forwards reaches db, reported.
	t.Run("strict, an admin Allow that admits a left-out waypoint: explained widening", func(t *testing.T) {
		c := readCluster(t, workload+`options: {defaultFidelity: strict}
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: same-namespace}
  spec:
    priority: 10
    subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
    ingress: [{action: Allow, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}], ports: [{portNumber: {protocol: TCP, port: 5432}}]}]
`)
		for _, d := range Verify(c.generated()).Differences {
			if !d.Explained {
				t.Errorf("unexplained: %s", describe(d))
			}
		}
		var found bool
		for _, tr := range c.generated().Translation.Translations {
			for _, f := range tr.Findings {
				found = found || (f.Type == translate.WaypointInPath && strings.Contains(f.Message, "AdminNetworkPolicy/same-namespace spec.ingress[0] admits the waypoint's own identity"))
			}
		}
		if !found {
			t.Error("no WaypointInPath names the admin rule that admits the waypoint")
		}
	})
	// Service db fronts db-0 and db-1, each under its own NetworkPolicy.
	// An admin Allow of other over both is shadowed on db-1 by a Pass of
	// higher precedence that selects db-1 only: bound to the Service, the
	// Allow would let other reach db-1 through it, which the stack denies.
	// The Pass is read there although it selects none of db's pods.
	shadowed := `
namespaces:
- {name: shop, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}
pods:
- {namespace: shop, name: db-0, labels: {app: db, role: primary}, serviceAccount: db, ip: 10.1.0.2, ports: [{name: pg, port: 5432}]}
- {namespace: shop, name: db-1, labels: {app: db, role: replica}, serviceAccount: replica, ip: 10.1.0.6, ports: [{name: pg, port: 5432}]}
- {namespace: shop, name: client-0, labels: {app: client}, serviceAccount: client, ip: 10.1.0.3}
- {namespace: shop, name: other-0, labels: {app: other}, serviceAccount: other, ip: 10.1.0.4}
- {namespace: shop, name: waypoint-0, labels: {gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none}, serviceAccount: waypoint, ip: 10.1.0.9}
services:
- {namespace: shop, name: db, selector: {app: db}, ports: [{port: 80, targetPort: pg}]}
gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}]
networkPolicies:
- metadata: {name: primary, namespace: shop}
  spec:
    podSelector: {matchLabels: {role: primary}}
    ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 5432}]}]
- metadata: {name: replica, namespace: shop}
  spec:
    podSelector: {matchLabels: {role: replica}}
    ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 5432}]}]
adminPolicies:
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: pass-replica}
  spec:
    priority: 1
    subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: replica}}}}
    ingress: [{action: Pass, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: other}}}}], ports: [{portNumber: {protocol: TCP, port: 5432}}]}]
- apiVersion: policy.networking.k8s.io/v1alpha1
  kind: AdminNetworkPolicy
  metadata: {name: allow-other}
  spec:
    priority: 2
    subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
    ingress: [{action: Allow, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: other}}}}], ports: [{portNumber: {protocol: TCP, port: 5432}}]}]
`
	for _, fidelity := range []string{"strict", "permissive"} {
		t.Run("an admin Allow bound to a Service, shadowed on one of its pods by a Pass, "+fidelity, func(t *testing.T) {
			in := readCluster(t, shadowed+"options: {defaultFidelity: "+fidelity+"}\n").generated()
			for _, msg := range checkPromises(in, Verify(in)) {
				t.Error(msg)
			}
		})
	}
	// Two Gateways of one name (a manifest given twice, changed in
	// between): verify reads the one the engine reads, in either order.
	for _, order := range []string{"service first", "workload first"} {
		t.Run("duplicate Gateway, "+order, func(t *testing.T) {
			gws := []string{"{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}", "{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true, labels: {istio.io/waypoint-for: all}}"}
			if order == "workload first" {
				slices.Reverse(gws)
			}
			c := readCluster(t, waypointCluster+"gateways: ["+strings.Join(gws, ", ")+"]\n"+waypointNP)
			for _, d := range Verify(c.generated()).Differences {
				if !d.Explained {
					t.Errorf("unexplained: %s", describe(d))
				}
			}
		})
	}
	t.Run("pending waypoint identity: explained narrowing", func(t *testing.T) {
		c := readCluster(t, waypointCluster+"gateways: [{namespace: shop, name: waypoint, className: istio-waypoint, addressed: true}]\n"+waypointNP+
			"approvals: [{namespace: shop, networkPolicy: db, identities: [serviceaccount/shop/client]}]\n")
		expect(t, c.generated(), "IstioDeniesMore shop/client-0 -> shop/db-0 ports [5432] dry=false: IdentityPending shop/db")
	})
}
