package verify

import "testing"

// An overreaching matchExpressions projection when other policies select
// the same pods: Istio ALLOW policies add up, so skipping the projection
// (permissive) would deny web-1 what stable-web allows, and keeping its
// rules (strict) would let client reach web-canary, which default-deny
// isolates. The translator gives the projection a policy that allows
// everything (permissive) or nothing (strict), and these tests pin that
// both fidelity promises hold, with the differences explained.
const overreach = `
namespaces:
- name: shop
  annotations: {netpol2authz.io/fidelity: %s}
pods:
- {namespace: shop, name: web-1, labels: {tier: web}, serviceAccount: web, sidecar: true}
- {namespace: shop, name: web-canary, labels: {tier: web, canary: "true"}, serviceAccount: web, sidecar: true}
- {namespace: shop, name: client, labels: {app: client}, serviceAccount: client, sidecar: true}
networkPolicies:
- metadata: {name: default-deny, namespace: shop}
  spec: {podSelector: {}, policyTypes: [Ingress]}
- metadata: {name: stable-web, namespace: shop}
  spec:
    podSelector:
      matchLabels: {tier: web}
      matchExpressions: [{key: canary, operator: DoesNotExist}]
    ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
`

// Permissive allows everything to {tier: web}: Istio denies nothing
// stable-web allows, and allows more to both pods, explained.
func TestSelectorOverreachPermissiveOnlyWidens(t *testing.T) {
	c := readCluster(t, sprintf(overreach, "permissive"))
	assertDifferences(t, Verify(c.generated()), []differenceSummary{
		{dir: IstioAllowsMore, expl: "SelectorOverreach", from: "shop/web-1,shop/web-canary", to: "shop/web-1", ports: "1-65535"},
		// From outside the cluster too, which the NetworkPolicies deny.
		{dir: IstioAllowsMore, expl: "SelectorOverreach", from: "0.0.0.0/0; ::/0", to: "shop/web-1,shop/web-canary", ports: "1-65535"},
		{dir: IstioAllowsMore, expl: "SelectorOverreach", from: "shop/*", to: "shop/web-canary", ports: "1-65535"},
	})
}

// Strict allows nothing through {tier: web}: client loses web-1, explained,
// and web-canary gains nothing.
func TestSelectorOverreachStrictOnlyNarrows(t *testing.T) {
	c := readCluster(t, sprintf(overreach, "strict"))
	assertDifferences(t, Verify(c.generated()), []differenceSummary{
		{dir: IstioDeniesMore, expl: "SelectorOverreach", from: "shop/client", to: "shop/web-1", ports: "1-65535"},
	})
}
