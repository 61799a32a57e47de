package verify

import (
	"strings"
	"testing"
)

// npCase is a cluster and what the NetworkPolicies say about connections,
// worked out by hand: "allow", "deny", or "ipblock" (allowed only when the
// network plugin applies ipBlock to pod addresses).
type npCase struct {
	cluster string
	want    map[string]string
}

func runNPCases(t *testing.T, cases map[string]npCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEngine(readCluster(t, tc.cluster).generated())
			for conn, want := range tc.want {
				strict, loose := e.npAllows(t, parseConnection(t, conn))
				got := "deny"
				switch {
				case strict:
					got = "allow"
				case loose:
					got = "ipblock"
				}
				if got != want {
					t.Errorf("%s: got %s, want %s", conn, got, want)
				}
			}
		})
	}
}

// The pods of the Kubernetes documentation's examples.
const docsPods = `
namespaces:
- {name: default}
- {name: myproject, labels: {project: myproject}}
- {name: other}
pods:
- {namespace: default, name: db, labels: {role: db}, ip: 172.17.2.10, ports: [{name: redis, port: 6379}]}
- {namespace: default, name: frontend, labels: {role: frontend}, ip: 172.17.2.11}
- {namespace: default, name: plain, ip: 172.17.0.5}
- {namespace: default, name: excepted, ip: 172.17.1.5}
- {namespace: default, name: elsewhere, ip: 192.168.0.9}
- {namespace: myproject, name: any, ip: 10.9.0.1}
- {namespace: other, name: frontend, labels: {role: frontend}, ip: 10.9.0.2}
- {namespace: other, name: target, ip: 10.0.0.7}
`

// TestNetworkPolicyDocsExample is the NetworkPolicy resource example of the
// Kubernetes documentation (concepts/services-networking/network-policies).
func TestNetworkPolicyDocsExample(t *testing.T) {
	runNPCases(t, map[string]npCase{
		"test-network-policy": {
			cluster: docsPods + `
networkPolicies:
- metadata: {name: test-network-policy, namespace: default}
  spec:
    podSelector: {matchLabels: {role: db}}
    policyTypes: [Ingress, Egress]
    ingress:
    - from:
      - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
      - namespaceSelector: {matchLabels: {project: myproject}}
      - podSelector: {matchLabels: {role: frontend}}
      ports: [{protocol: TCP, port: 6379}]
    egress:
    - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
      ports: [{protocol: TCP, port: 5978}]
`,
			want: map[string]string{
				// Ingress to db: role=frontend of its own namespace, every
				// pod of myproject, addresses of the block but the except.
				"default/frontend -> default/db:6379":  "allow",
				"default/frontend -> default/db:6380":  "deny",
				"myproject/any -> default/db:6379":     "allow",
				"other/frontend -> default/db:6379":    "deny",
				"default/plain -> default/db:6379":     "ipblock",
				"default/excepted -> default/db:6379":  "deny",
				"default/elsewhere -> default/db:6379": "deny",
				// Egress of db: only the block, only TCP 5978.
				"default/db -> other/target:5978":     "ipblock",
				"default/db -> other/target:5979":     "deny",
				"default/db -> default/frontend:5978": "deny",
				// Pods no policy selects stay open.
				"default/plain -> default/frontend:80": "allow",
				"other/frontend -> other/target:80":    "allow",
			},
		},
	})
}

// TestNetworkPolicyDefaults are the documentation's default policies.
func TestNetworkPolicyDefaults(t *testing.T) {
	policy := func(spec string) string {
		return docsPods + "networkPolicies:\n- metadata: {name: p, namespace: default}\n  spec:\n" + indent(spec, "    ")
	}
	runNPCases(t, map[string]npCase{
		"default deny all ingress": {
			cluster: policy("podSelector: {}\npolicyTypes: [Ingress]\n"),
			want: map[string]string{
				"default/frontend -> default/db:6379": "deny",
				"other/frontend -> default/plain:80":  "deny",
				"default/db -> other/target:80":       "allow", // egress untouched
			},
		},
		"allow all ingress": {
			cluster: policy("podSelector: {}\ningress: [{}]\npolicyTypes: [Ingress]\n"),
			want:    map[string]string{"other/frontend -> default/db:1": "allow", "default/plain -> default/db:65535": "allow"},
		},
		"default deny all egress": {
			cluster: policy("podSelector: {}\npolicyTypes: [Egress]\n"),
			want: map[string]string{
				"default/db -> other/target:80":      "deny",
				"default/db -> default/frontend:80":  "deny",
				"other/frontend -> default/db:6379":  "allow", // ingress untouched
				"other/frontend -> other/target:443": "allow",
			},
		},
		"allow all egress": {
			cluster: policy("podSelector: {}\negress: [{}]\npolicyTypes: [Egress]\n"),
			want:    map[string]string{"default/db -> other/target:80": "allow"},
		},
		"default deny all ingress and egress": {
			cluster: policy("podSelector: {}\npolicyTypes: [Ingress, Egress]\n"),
			want: map[string]string{
				"default/db -> default/frontend:80": "deny",
				"other/frontend -> default/db:80":   "deny",
				"default/db -> other/target:80":     "deny",
			},
		},
		// policyTypes unset: Ingress always, Egress because there are
		// egress rules, so the pod is isolated for ingress too.
		"policyTypes default from egress rules": {
			cluster: policy("podSelector: {matchLabels: {role: db}}\negress: [{to: [{podSelector: {}}]}]\n"),
			want: map[string]string{
				"default/frontend -> default/db:6379": "deny",
				"default/db -> default/frontend:80":   "allow",
				"default/db -> other/target:80":       "deny",
			},
		},
		"policyTypes default without egress rules": {
			cluster: policy("podSelector: {matchLabels: {role: db}}\n"),
			want: map[string]string{
				"default/frontend -> default/db:6379": "deny",
				"default/db -> other/target:80":       "allow",
			},
		},
	})
}

// TestNetworkPolicyPeers is the combination table of podSelector and
// namespaceSelector: alone, together (AND, one peer) and side by side (OR,
// two peers), empty and absent.
func TestNetworkPolicyPeers(t *testing.T) {
	cluster := func(from string) string {
		return `
namespaces:
- {name: shop, labels: {user: alice}}
- {name: ops, labels: {user: alice}}
- {name: dev, labels: {user: bob}}
pods:
- {namespace: shop, name: db, labels: {app: db}}
- {namespace: shop, name: client, labels: {role: client}}
- {namespace: shop, name: other}
- {namespace: ops, name: client, labels: {role: client}}
- {namespace: ops, name: other}
- {namespace: dev, name: client, labels: {role: client}}
- {namespace: dev, name: other}
networkPolicies:
- metadata: {name: db, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: ` + from + `}]
`
	}
	row := func(shopClient, shopOther, opsClient, opsOther, devClient, devOther string) map[string]string {
		return map[string]string{
			"shop/client -> shop/db:80": shopClient, "shop/other -> shop/db:80": shopOther,
			"ops/client -> shop/db:80": opsClient, "ops/other -> shop/db:80": opsOther,
			"dev/client -> shop/db:80": devClient, "dev/other -> shop/db:80": devOther,
		}
	}
	const a, d = "allow", "deny"
	runNPCases(t, map[string]npCase{
		"podSelector: pods of the policy's namespace": {
			cluster: cluster(`[{podSelector: {matchLabels: {role: client}}}]`),
			want:    row(a, d, d, d, d, d),
		},
		"namespaceSelector: every pod of those namespaces": {
			cluster: cluster(`[{namespaceSelector: {matchLabels: {user: alice}}}]`),
			want:    row(a, a, a, a, d, d),
		},
		"both in one peer: AND": {
			cluster: cluster(`[{namespaceSelector: {matchLabels: {user: alice}}, podSelector: {matchLabels: {role: client}}}]`),
			want:    row(a, d, a, d, d, d),
		},
		"two peers: OR": {
			cluster: cluster(`[{namespaceSelector: {matchLabels: {user: alice}}}, {podSelector: {matchLabels: {role: client}}}]`),
			want:    row(a, a, a, a, d, d),
		},
		"empty namespaceSelector: every namespace": {
			cluster: cluster(`[{namespaceSelector: {}}]`),
			want:    row(a, a, a, a, a, a),
		},
		"empty namespaceSelector and a podSelector: those pods anywhere": {
			cluster: cluster(`[{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}]`),
			want:    row(a, d, a, d, a, d),
		},
		"empty podSelector: every pod of the policy's namespace": {
			cluster: cluster(`[{podSelector: {}}]`),
			want:    row(a, a, d, d, d, d),
		},
		"namespace by name": {
			cluster: cluster(`[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}}]`),
			want:    row(d, d, d, d, a, a),
		},
		"matchExpressions NotIn": {
			cluster: cluster(`[{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [shop, dev]}]}}]`),
			want:    row(d, d, a, a, d, d),
		},
		"no from: every source": {
			cluster: cluster(`[]`),
			want:    row(a, a, a, a, a, a),
		},
	})
}

// TestNetworkPolicyPorts: numbers, ranges, named ports resolved on each
// destination, protocols, and rules that add up.
func TestNetworkPolicyPorts(t *testing.T) {
	cluster := func(ports string) string {
		return `
pods:
- {namespace: shop, name: client}
- {namespace: shop, name: web-a, labels: {app: web}, ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]}
- {namespace: shop, name: web-b, labels: {app: web}, ports: [{name: http, port: 80, protocol: TCP}]}
networkPolicies:
- metadata: {name: web, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress: [{ports: ` + ports + `}]
`
	}
	const a, d = "allow", "deny"
	runNPCases(t, map[string]npCase{
		"number": {
			cluster: cluster(`[{port: 8080}]`),
			want:    map[string]string{"shop/client -> shop/web-a:8080": a, "shop/client -> shop/web-a:8081": d, "shop/client -> shop/web-b:8080": a},
		},
		"range with endPort": {
			cluster: cluster(`[{protocol: TCP, port: 32000, endPort: 32768}]`),
			want: map[string]string{
				"shop/client -> shop/web-a:31999": d, "shop/client -> shop/web-a:32000": a,
				"shop/client -> shop/web-a:32768": a, "shop/client -> shop/web-a:32769": d,
			},
		},
		"named port resolves per destination": {
			cluster: cluster(`[{port: http}]`),
			want: map[string]string{
				"shop/client -> shop/web-a:8080": a, "shop/client -> shop/web-a:80": d,
				"shop/client -> shop/web-b:80": a, "shop/client -> shop/web-b:8080": d,
			},
		},
		"named port of another protocol matches no TCP port": {
			cluster: cluster(`[{port: dns}]`),
			want:    map[string]string{"shop/client -> shop/web-a:53": d},
		},
		"UDP only: no TCP port": {
			cluster: cluster(`[{protocol: UDP, port: 8080}]`),
			want:    map[string]string{"shop/client -> shop/web-a:8080": d},
		},
		"SCTP and TCP": {
			cluster: cluster(`[{protocol: SCTP, port: 80}, {protocol: TCP, port: 81}]`),
			want:    map[string]string{"shop/client -> shop/web-a:80": d, "shop/client -> shop/web-a:81": a},
		},
		"protocol without port: every TCP port": {
			cluster: cluster(`[{protocol: TCP}]`),
			want:    map[string]string{"shop/client -> shop/web-a:1": a, "shop/client -> shop/web-a:65535": a},
		},
	})
}

// TestNetworkPolicyAdditive: policies selecting the same pod add up, and a
// connection needs both the destination's ingress and the source's egress.
func TestNetworkPolicyAdditive(t *testing.T) {
	runNPCases(t, map[string]npCase{
		"union of policies and both directions": {
			cluster: `
pods:
- {namespace: shop, name: a, labels: {app: a}}
- {namespace: shop, name: b, labels: {app: b}}
- {namespace: shop, name: db, labels: {app: db}}
networkPolicies:
- metadata: {name: from-a, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 5432}]}]
- metadata: {name: from-b, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 5433}]}]
- metadata: {name: b-egress, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: b}}
    policyTypes: [Egress]
    egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}]
`,
			want: map[string]string{
				"shop/a -> shop/db:5432": "allow",
				"shop/a -> shop/db:5433": "deny",
				// b's ingress allowance is on 5433, its egress on 5432.
				"shop/b -> shop/db:5433": "deny",
				"shop/b -> shop/db:5432": "deny",
				"shop/b -> shop/a:80":    "deny",
				"shop/a -> shop/b:80":    "allow",
			},
		},
	})
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}
