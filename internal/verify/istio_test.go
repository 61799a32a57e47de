package verify

import "testing"

// istioCase is a cluster and what its AuthorizationPolicies say about
// connections, worked out by hand: "allow", "deny", or "dry-run deny"
// (denied once the dry-run policies are enforced, allowed today).
type istioCase struct {
	cluster string
	want    map[string]string
}

func runIstioCases(t *testing.T, cases map[string]istioCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEngine(readCluster(t, tc.cluster).existing())
			for conn, want := range tc.want {
				asEnforced, today := e.istioAllows(t, parseConnection(t, conn))
				got := "deny"
				switch {
				case asEnforced && today:
					got = "allow"
				case !asEnforced && today:
					got = "dry-run deny"
				case asEnforced && !today:
					got = "dry-run allow"
				}
				if got != want {
					t.Errorf("%s: got %s, want %s", conn, got, want)
				}
			}
		})
	}
}

// The workloads of Istio's documentation: sleep and httpbin in foo, and
// clients elsewhere, one of them without a sidecar.
const istioPods = `
mesh: {rootNamespace: istio-system}
pods:
- {namespace: foo, name: httpbin, labels: {app: httpbin, version: v1}, serviceAccount: httpbin, sidecar: true, ip: 10.1.0.1}
- {namespace: foo, name: tcp-echo, labels: {app: tcp-echo}, serviceAccount: tcp-echo, sidecar: true, ip: 10.1.0.2}
- {namespace: foo, name: plain, labels: {app: plain}, ip: 10.1.0.3}
- {namespace: default, name: sleep, labels: {app: sleep}, serviceAccount: sleep, sidecar: true, ip: 10.2.0.1}
- {namespace: test, name: client, labels: {app: client}, sidecar: true, ip: 10.3.0.1}
- {namespace: dev, name: client, labels: {app: client}, serviceAccount: dev-client, sidecar: true, ip: 10.4.0.1}
- {namespace: dev, name: legacy, labels: {app: legacy}, ip: 10.4.0.2}
- {namespace: bar, name: httpbin, labels: {app: httpbin, version: v1}, sidecar: true, ip: 10.5.0.1}
- {namespace: bar, name: other, labels: {app: other, version: v2}, sidecar: true, ip: 10.5.0.2}
authorizationPolicies:
`

func ap(spec string) string {
	return istioPods + indent(spec, "")
}

// TestIstioDocsExamples are the examples of Istio's AuthorizationPolicy
// reference, read for TCP traffic.
func TestIstioDocsExamples(t *testing.T) {
	runIstioCases(t, map[string]istioCase{
		// Its rule names HTTP methods and paths, which TCP traffic does not
		// carry: Istio drops the ALLOW rule, so nothing is allowed.
		"httpbin ALLOW with HTTP fields allows no TCP": {
			cluster: ap(`
- metadata: {name: httpbin, namespace: foo}
  spec:
    action: ALLOW
    rules:
    - from:
      - source: {principals: [cluster.local/ns/default/sa/sleep]}
      - source: {namespaces: [test]}
      to:
      - operation: {methods: [GET], paths: [/info*]}
      when:
      - {key: "request.auth.claims[iss]", values: ["https://accounts.google.com"]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:8000": "deny", "test/client -> foo/httpbin:8000": "deny"},
		},
		"the same ALLOW without HTTP fields": {
			cluster: ap(`
- metadata: {name: httpbin, namespace: foo}
  spec:
    rules:
    - from:
      - source: {principals: [cluster.local/ns/default/sa/sleep]}
      - source: {namespaces: [test]}
`),
			want: map[string]string{
				"default/sleep -> foo/httpbin:8000": "allow",
				"test/client -> foo/httpbin:8000":   "allow",
				"dev/client -> foo/httpbin:8000":    "deny",
				// The policy has no selector: every workload of foo.
				"dev/client -> foo/tcp-echo:9000": "deny",
				// Without a sidecar, foo/plain enforces nothing.
				"dev/client -> foo/plain:80": "allow",
			},
		},
		// DENY from dev on POST: for TCP the method is left out, so all
		// TCP traffic from dev is denied.
		"DENY with HTTP fields denies all TCP from dev": {
			cluster: ap(`
- metadata: {name: httpbin, namespace: foo}
  spec:
    action: DENY
    rules:
    - from: [{source: {namespaces: [dev]}}]
      to: [{operation: {methods: [POST]}}]
`),
			want: map[string]string{
				"dev/client -> foo/httpbin:8000":    "deny",
				"default/sleep -> foo/httpbin:8000": "allow",
				// No identity, no namespace: a legacy pod of dev is not "from dev".
				"dev/legacy -> foo/httpbin:8000": "allow",
			},
		},
		// The reference says it: all TCP traffic on 8080 is denied.
		"DENY POST on port 8080 denies all TCP on 8080": {
			cluster: ap(`
- metadata: {name: httpbin, namespace: foo}
  spec:
    action: DENY
    rules: [{to: [{operation: {methods: [POST], ports: ["8080"]}}]}]
`),
			want: map[string]string{"default/sleep -> foo/httpbin:8080": "deny", "default/sleep -> foo/httpbin:8081": "allow"},
		},
		"allow-nothing in foo": {
			cluster: ap(`
- metadata: {name: allow-nothing, namespace: foo}
  spec: {}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "deny", "default/sleep -> bar/httpbin:80": "allow"},
		},
		"allow-all in foo": {
			cluster: ap(`
- metadata: {name: allow-nothing, namespace: foo}
  spec: {}
- metadata: {name: allow-all, namespace: foo}
  spec: {rules: [{}]}
`),
			want: map[string]string{"dev/legacy -> foo/httpbin:80": "allow", "default/sleep -> foo/tcp-echo:9000": "allow"},
		},
		"allow-nothing for app httpbin in bar": {
			cluster: ap(`
- metadata: {name: allow-nothing, namespace: bar}
  spec: {selector: {matchLabels: {app: httpbin}}}
`),
			want: map[string]string{"default/sleep -> bar/httpbin:80": "deny", "default/sleep -> bar/other:80": "allow", "default/sleep -> foo/httpbin:80": "allow"},
		},
		"root namespace: version v1 everywhere": {
			cluster: ap(`
- metadata: {name: allow-nothing, namespace: istio-system}
  spec: {selector: {matchLabels: {version: v1}}}
`),
			want: map[string]string{
				"default/sleep -> bar/httpbin:80": "deny", "default/sleep -> foo/httpbin:80": "deny",
				"default/sleep -> bar/other:80": "allow", "default/sleep -> foo/tcp-echo:80": "allow",
			},
		},
		"dry-run DENY is evaluated as if enforced, and marked": {
			cluster: ap(`
- metadata: {name: dry-run-example, namespace: foo, annotations: {istio.io/dry-run: "true"}}
  spec:
    selector: {matchLabels: {app: httpbin}}
    action: DENY
    rules: [{to: [{operation: {ports: ["8000"]}}]}]
`),
			want: map[string]string{"default/sleep -> foo/httpbin:8000": "dry-run deny", "default/sleep -> foo/httpbin:80": "allow"},
		},
		"dry-run ALLOW restricts only as if enforced": {
			cluster: ap(`
- metadata: {name: only-sleep, namespace: foo, annotations: {istio.io/dry-run: "true"}}
  spec: {rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "dry-run deny"},
		},
	})
}

// TestIstioActions: CUSTOM > DENY > ALLOW, and what an ALLOW policy without
// rules does.
func TestIstioActions(t *testing.T) {
	runIstioCases(t, map[string]istioCase{
		"DENY wins over ALLOW": {
			cluster: ap(`
- metadata: {name: allow-sleep, namespace: foo}
  spec: {rules: [{from: [{source: {namespaces: [default, dev]}}]}]}
- metadata: {name: deny-dev, namespace: foo}
  spec: {action: DENY, rules: [{from: [{source: {namespaces: [dev]}}]}]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny", "test/client -> foo/httpbin:80": "deny"},
		},
		"DENY alone leaves the rest open": {
			cluster: ap(`
- metadata: {name: deny-dev, namespace: foo}
  spec: {action: DENY, rules: [{from: [{source: {namespaces: [dev]}}]}]}
`),
			want: map[string]string{"test/client -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny"},
		},
		"ALLOW with no rules allows nothing, beside another ALLOW": {
			cluster: ap(`
- metadata: {name: none, namespace: foo}
  spec: {selector: {matchLabels: {app: httpbin}}}
- metadata: {name: sleep, namespace: foo}
  spec: {selector: {matchLabels: {app: httpbin}}, rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow", "test/client -> foo/httpbin:80": "deny"},
		},
		"DENY and CUSTOM with no rules match nothing": {
			cluster: ap(`
- metadata: {name: deny, namespace: foo}
  spec: {action: DENY}
- metadata: {name: ext, namespace: foo}
  spec: {action: CUSTOM, provider: {name: ext-authz}}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow"},
		},
		// verify cannot ask an external authorizer: CUSTOM is not
		// evaluated (it is listed with the differences it matches), and
		// AUDIT never changes a verdict.
		"CUSTOM and AUDIT do not decide": {
			cluster: ap(`
- metadata: {name: ext, namespace: foo}
  spec: {action: CUSTOM, provider: {name: ext-authz}, rules: [{}]}
- metadata: {name: audit, namespace: foo}
  spec: {action: AUDIT, rules: [{}]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow"},
		},
		"targetRefs bind gateways and waypoints, not pods": {
			cluster: ap(`
- metadata: {name: waypoint, namespace: foo}
  spec: {targetRefs: [{kind: Service, group: "", name: httpbin}]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow"},
		},
	})
}

// TestIstioMatching: Istio's string matching, negative fields, ports,
// addresses, sources without identity and conditions.
func TestIstioMatching(t *testing.T) {
	allow := func(source string) string {
		return ap(`
- metadata: {name: p, namespace: foo}
  spec:
    selector: {matchLabels: {app: httpbin}}
    rules: [{from: [{source: ` + source + `}]}]
`)
	}
	runIstioCases(t, map[string]istioCase{
		"principal prefix": {
			cluster: allow(`{principals: ["cluster.local/ns/dev/*"]}`),
			want:    map[string]string{"dev/client -> foo/httpbin:80": "allow", "default/sleep -> foo/httpbin:80": "deny", "dev/legacy -> foo/httpbin:80": "deny"},
		},
		"principal suffix": {
			cluster: allow(`{principals: ["*/sa/sleep"]}`),
			want:    map[string]string{"default/sleep -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny"},
		},
		"principal presence: any mesh identity": {
			cluster: allow(`{principals: ["*"]}`),
			want:    map[string]string{"test/client -> foo/httpbin:80": "allow", "dev/legacy -> foo/httpbin:80": "deny", "foo/plain -> foo/httpbin:80": "deny"},
		},
		"default ServiceAccount": {
			cluster: allow(`{principals: [cluster.local/ns/test/sa/default]}`),
			want:    map[string]string{"test/client -> foo/httpbin:80": "allow"},
		},
		"namespace prefix and suffix": {
			cluster: allow(`{namespaces: ["de*", "*ult"]}`),
			want:    map[string]string{"dev/client -> foo/httpbin:80": "allow", "default/sleep -> foo/httpbin:80": "allow", "test/client -> foo/httpbin:80": "deny"},
		},
		"notPrincipals matches sources without identity": {
			cluster: allow(`{notPrincipals: ["*"]}`),
			want:    map[string]string{"dev/legacy -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny"},
		},
		"notNamespaces": {
			cluster: allow(`{notNamespaces: [dev]}`),
			want:    map[string]string{"default/sleep -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny", "dev/legacy -> foo/httpbin:80": "allow"},
		},
		"fields of one source are ANDed": {
			cluster: allow(`{namespaces: [dev], notPrincipals: [cluster.local/ns/dev/sa/dev-client]}`),
			want:    map[string]string{"dev/client -> foo/httpbin:80": "deny", "dev/legacy -> foo/httpbin:80": "deny"},
		},
		"serviceAccounts": {
			cluster: allow(`{serviceAccounts: [default/sleep, tcp-echo]}`),
			want:    map[string]string{"default/sleep -> foo/httpbin:80": "allow", "foo/tcp-echo -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny"},
		},
		"ipBlocks match every source address, with or without identity": {
			cluster: allow(`{ipBlocks: [10.4.0.0/16, 10.2.0.1], notIpBlocks: [10.4.0.1]}`),
			want: map[string]string{
				"dev/legacy -> foo/httpbin:80": "allow", "default/sleep -> foo/httpbin:80": "allow",
				"dev/client -> foo/httpbin:80": "deny", "test/client -> foo/httpbin:80": "deny",
			},
		},
		"remoteIpBlocks are the source address without proxies": {
			cluster: allow(`{remoteIpBlocks: [10.4.0.2/32]}`),
			want:    map[string]string{"dev/legacy -> foo/httpbin:80": "allow", "dev/client -> foo/httpbin:80": "deny"},
		},
		"requestPrincipals: the ALLOW rule is dropped for TCP": {
			cluster: allow(`{namespaces: [dev], requestPrincipals: ["*"]}`),
			want:    map[string]string{"dev/client -> foo/httpbin:80": "deny"},
		},
		"ports and notPorts": {
			cluster: ap(`
- metadata: {name: p, namespace: foo}
  spec:
    rules:
    - to: [{operation: {ports: ["80", "8000"]}}, {operation: {notPorts: ["1-9", "443"]}}]
      from: [{source: {namespaces: [default]}}]
    - to: [{operation: {notPorts: ["9000"]}}]
      from: [{source: {namespaces: [test]}}]
`),
			want: map[string]string{
				// "1-9" is no port number: notPorts holds only 443.
				"default/sleep -> foo/httpbin:443": "deny", "default/sleep -> foo/httpbin:5": "allow",
				"test/client -> foo/tcp-echo:9000": "deny", "test/client -> foo/tcp-echo:9001": "allow",
			},
		},
		"when conditions": {
			cluster: ap(`
- metadata: {name: p, namespace: foo}
  spec:
    rules:
    - when:
      - {key: source.namespace, values: [default, test]}
      - {key: destination.port, notValues: ["22"]}
      - {key: source.principal, notValues: ["*/sa/default"]}
`),
			want: map[string]string{
				"default/sleep -> foo/httpbin:80": "allow", "default/sleep -> foo/httpbin:22": "deny",
				"test/client -> foo/httpbin:80": "deny", "dev/client -> foo/httpbin:80": "deny",
			},
		},
		"request conditions drop an ALLOW rule, and narrow nothing in a DENY": {
			cluster: ap(`
- metadata: {name: a, namespace: foo}
  spec: {rules: [{from: [{source: {namespaces: [default]}}], when: [{key: "request.headers[x]", values: [v]}]}]}
- metadata: {name: d, namespace: bar}
  spec: {action: DENY, rules: [{from: [{source: {namespaces: [dev]}}], when: [{key: "request.headers[x]", values: [v]}]}]}
`),
			want: map[string]string{"default/sleep -> foo/httpbin:80": "deny", "dev/client -> bar/httpbin:80": "deny", "test/client -> bar/httpbin:80": "allow"},
		},
	})
}

// TestIstioTrustDomain: sidecars read cluster.local in a policy as the
// mesh's own trust domain; ztunnel (ambient) does not.
func TestIstioTrustDomain(t *testing.T) {
	runIstioCases(t, map[string]istioCase{
		"cluster.local alias": {
			cluster: `
mesh: {trustDomain: corp.example}
namespaces:
- {name: amb, labels: {istio.io/dataplane-mode: ambient}}
pods:
- {namespace: default, name: sleep, serviceAccount: sleep, sidecar: true}
- {namespace: foo, name: httpbin, labels: {app: httpbin}, sidecar: true}
- {namespace: amb, name: httpbin, labels: {app: httpbin}}
authorizationPolicies:
- metadata: {name: alias, namespace: foo}
  spec: {rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]}
- metadata: {name: alias, namespace: amb}
  spec: {rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]}
- metadata: {name: real, namespace: amb}
  spec: {rules: [{from: [{source: {principals: [corp.example/ns/default/sa/sleep]}}]}], selector: {matchLabels: {app: other}}}
`,
			want: map[string]string{"default/sleep -> foo/httpbin:80": "allow", "default/sleep -> amb/httpbin:80": "deny"},
		},
	})
}
