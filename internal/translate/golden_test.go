package translate

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/netpol2authz/netpol2authz/internal/adminpolicy"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/cases")

// caseInput is testdata/cases/<name>/input.yaml: a snapshot and options.
type caseInput struct {
	Options         Options                      `json:"options"`
	Mesh            MeshSettings                 `json:"mesh"`
	Namespaces      []Namespace                  `json:"namespaces"`
	Pods            []Pod                        `json:"pods"`
	NetworkPolicies []networkingv1.NetworkPolicy `json:"networkPolicies"`
	Approvals       []Approval                   `json:"approvals"`
	// AdminPolicies are AdminNetworkPolicies, BaselineAdminNetworkPolicies
	// and ClusterNetworkPolicies (v1alpha2, v1beta1), as manifests.
	AdminPolicies []json.RawMessage `json:"adminPolicies"`
	admin         []adminpolicy.Policy
	Services      []Service                    `json:"services"`
	Gateways      []Gateway                    `json:"gateways"`
	OtherPolicies []networkingv1.NetworkPolicy `json:"otherPolicies"`
}

func (in caseInput) snapshot() Snapshot {
	return Snapshot{Namespaces: in.Namespaces, Pods: in.Pods, NetworkPolicies: in.NetworkPolicies, Mesh: in.Mesh, Approvals: in.Approvals, AdminPolicies: in.admin,
		Services: in.Services, Gateways: in.Gateways, OtherPolicies: in.OtherPolicies}
}

func readInput(t testing.TB, path string) caseInput {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in caseInput
	if err := yaml.UnmarshalStrict(data, &in); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i, raw := range in.AdminPolicies {
		p, err := adminpolicy.Decode(raw)
		if err != nil {
			t.Fatalf("%s: adminPolicies[%d]: %v", path, i, err)
		}
		in.admin = append(in.admin, p)
	}
	return in
}

// golden is the reviewed form of a Result written to expected*.yaml.
type golden struct {
	Translations []goldenTranslation `json:"translations"`
}

type goldenTranslation struct {
	NetworkPolicy string           `json:"networkPolicy"`
	Generation    int64            `json:"generation,omitempty"`
	Action        Action           `json:"action"`
	Mode          Mode             `json:"mode,omitempty"`
	Fidelity      Fidelity         `json:"fidelity,omitempty"`
	Identity      IdentityMode     `json:"identity,omitempty"`
	Baseline      bool             `json:"baseline,omitempty"`
	Identities    []Identity       `json:"identities,omitempty"`
	Pending       []goldenPending  `json:"pending,omitempty"`
	Principals    int              `json:"principals,omitempty"`
	Rules         int              `json:"rules,omitempty"`
	Findings      []goldenFinding  `json:"findings,omitempty"`
	Policies      []map[string]any `json:"policies,omitempty"`
}

type goldenPending struct {
	Identity Identity `json:"identity"`
	Peers    []string `json:"peers"`
	Sources  []string `json:"sources"`
}

type goldenFinding struct {
	Type     FindingType `json:"type"`
	Severity Severity    `json:"severity"`
	Message  string      `json:"message"`
	Objects  []string    `json:"objects,omitempty"`
}

// policyMap is a generated policy as the API server would store it, without
// the empty status and creationTimestamp the Go types always marshal.
func policyMap(t testing.TB, ap *securityv1.AuthorizationPolicy) map[string]any {
	t.Helper()
	data, err := json.Marshal(ap)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return m
}

func marshalResult(t testing.TB, r Result) []byte {
	t.Helper()
	g := golden{Translations: []goldenTranslation{}}
	for _, tr := range r.Translations {
		gt := goldenTranslation{
			NetworkPolicy: tr.NetworkPolicy.String(),
			Generation:    tr.Generation,
			Action:        tr.Action,
			Mode:          tr.Mode,
			Fidelity:      tr.Fidelity,
			Identity:      tr.Identity,
			Baseline:      tr.Baseline,
			Identities:    tr.Identities,
			Principals:    tr.Principals,
			Rules:         tr.Rules,
		}
		for _, p := range tr.Pending {
			gp := goldenPending{Identity: p.Identity, Peers: p.Peers}
			for _, s := range p.Sources {
				gp.Sources = append(gp.Sources, s.Ref.Kind+" "+refName(s.Ref)+" "+setString(s.Labels))
			}
			gt.Pending = append(gt.Pending, gp)
		}
		for _, f := range tr.Findings {
			gf := goldenFinding{Type: f.Type, Severity: f.Severity, Message: f.Message}
			for _, o := range f.Objects {
				ref := o.Kind + " " + o.Name
				if o.Namespace != "" {
					ref = o.Kind + " " + o.Namespace + "/" + o.Name
				}
				gf.Objects = append(gf.Objects, ref)
			}
			gt.Findings = append(gt.Findings, gf)
		}
		for _, ap := range tr.Policies {
			gt.Policies = append(gt.Policies, policyMap(t, ap))
		}
		g.Translations = append(g.Translations, gt)
	}
	out, err := yaml.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// variants of a case: expected.yaml runs the input as written;
// expected.<fidelity>.yaml runs it with that default fidelity. A case runs
// the variants whose files exist; -update rewrites them (create an empty
// file to start a new one).
var variants = map[string]Fidelity{
	"expected.yaml":            "",
	"expected.permissive.yaml": FidelityPermissive,
	"expected.strict.yaml":     FidelityStrict,
}

// goldenCases maps each directory of testdata/cases to what of the
// translation contract it pins down. Every directory must be listed.
var goldenCases = map[string]string{
	"allow-all-ingress":               "ingress: [{}] gives one empty rule",
	"admin-allow":                     "AdminNetworkPolicy Allow admits a namespace and a pod peer the NetworkPolicy denies: ALLOW rules of their own policy, labelled with the admin policy, in both fidelities; AdminPolicyApplies",
	"admin-allow-not-in-mesh":         "AdminNetworkPolicy Allow whose only source has no mesh identity: strict drops the rule and still reports SourceNotInMesh (why the source loses access), permissive allows its address",
	"admin-deny":                      "AdminNetworkPolicy Deny of traffic the NetworkPolicy allows: permissive reports it (AdminPolicyDenies), strict writes a DENY policy whose shared principal denies more",
	"admin-pass":                      "a Pass of higher priority over an Allow: permissive keeps the Allow and reports the widening, strict drops it; AdminPolicyAllows",
	"admin-baseline":                  "BaselineAdminNetworkPolicy: no change for the pods a NetworkPolicy selects, an Info naming them",
	"admin-cluster-network-policy":    "ClusterNetworkPolicy v1alpha2 Admin tier Accept (subject narrower than the NetworkPolicy, selected by labels) and v1beta1 Baseline tier Deny",
	"admin-same-priority":             "two AdminNetworkPolicies of one priority over the same pods: AdminPolicyConflict; an invalid admin policy: AdminPolicyInvalid",
	"admin-named-port":                "named port in an admin Allow with a number per pod: permissive opens every number, strict none (AdminPolicyAllows); UDP left out",
	"ambient-mesh":                    "in the mesh through the ambient namespace label, pods opted out with dataplane-mode=none; AmbientPortBlocked",
	"ambient-dry-run":                 "DryRunNotEvaluated in an ambient namespace in dry-run; port 15008 allowed by number, range and all-ports rules",
	"chili-shop":                      "article: only backend reaches database, only frontend reaches backend (matchLabels peers and targets, empty serviceAccountName is default)",
	"chili-shop-roles":                "article: the role=backend / role=frontend variant of the chili shop",
	"default-deny-all":                "article: podSelector {} and policyTypes [Ingress] without rules: no selector, no rules",
	"dry-run":                         "mode annotation dry-run adds istio.io/dry-run; DefaultMode from options",
	"egress-external-ips":             "article: egress-only ipBlock 0.0.0.0/0 except private ranges: nothing generated, EgressNotTranslated",
	"egress-only-internal":            "article: egress only to pods of the namespace: nothing generated, EgressNotTranslated; implied policyTypes",
	"fidelity-annotation":             "fidelity annotation overrides the default fidelity",
	"identity-review":                 "identity review: a relabelled pod's ServiceAccount, a relabelled namespace (namespaceSelector and podSelector peers) and the IPs of a pending ServiceAccount's non-mesh pods are pending; a new pod of an approved ServiceAccount is not; a rule whose sources are all pending is dropped",
	"identity-follow":                 "identity follow: every resolved identity is written, approvals are ignored",
	"identity-invalid-annotation":     "invalid identity annotation: inactive, InvalidAnnotation",
	"ingress-and-egress":              "egress rules beside ingress rules are ignored with EgressNotTranslated; implied policyTypes with egress rules",
	"invalid-annotation":              "invalid mode or fidelity annotation: inactive, InvalidAnnotation",
	"invalid-cidr":                    "invalid ipBlock cidr and except: InvalidPolicy naming the field",
	"invalid-policy-shape":            "peer with ipBlock and podSelector, empty peer, bad policyType, bad name: InvalidPolicy",
	"invalid-ports":                   "invalid port, endPort and protocol: InvalidPolicy naming the field",
	"invalid-selector":                "invalid operator and label value in selectors: InvalidPolicy naming the field",
	"ipblock-peer":                    "ipBlock peers: ipBlocks and sorted notIpBlocks, IPv6, each peer its own source",
	"long-name":                       "long NetworkPolicy name: label value hashed, annotation keeps the full name, policy name cut with hash",
	"match-expressions":               "matchExpressions: one policy per projection, named by its hash; named ports resolve per projection",
	"multiple-rules":                  "each ingress rule becomes one rule, in order",
	"name-conflict":                   "two NetworkPolicies generating the same policy name: Conflict",
	"named-port":                      "named port resolves to the container port number of the selected pods",
	"named-port-unmatched":            "named port matching no container port is left out, and a rule left without ports is dropped",
	"named-port-varies":               "named port with different numbers on pods with the same labels: no selector tells them apart, permissive union, strict drops it; NamedPortVaries",
	"named-port-some-replicas":        "dns-tcp declared by some replicas only: an overlay per ReplicaSet opens it where declared, the base keeps what all agree on, pods without it get no rule for it",
	"named-port-versions":             "named port with a number per version: one overlay per version label (preferred to pod-template-hash), the base keeps the numbered port",
	"named-port-fallback":             "named port on a pod whose every label is on a pod with another number: that selector falls back (permissive union, strict none; NamedPortVaries), the others get exact overlays",
	"namespace-selector-any":          "namespaceSelector: {} gives namespaces [\"*\"]; non-mesh pods anywhere are SourceNotInMesh",
	"namespace-selector-peer":         "namespaceSelector only, or with podSelector {}: sorted namespaces; no match contributes nothing",
	"namespace-unknown":               "partial namespaces evaluated by a namespaceSelector: NamespaceUnknown; metadata.name-only selectors are exact",
	"no-pods-selected":                "matchLabels selector matching nothing still yields its policy: NoPodsSelected",
	"no-pods-selected-expressions":    "matchExpressions selector matching nothing yields nothing: NoPodsSelected",
	"non-tcp-ports":                   "UDP/SCTP ports left out with NonTCPNotEnforced; a rule with only UDP ports is dropped",
	"overlapping-policies":            "several NetworkPolicies selecting the same pods each yield their own policy (a union in Istio)",
	"own-namespace-peer":              "podSelector {} alone gives namespaces [N]",
	"owner-reference":                 "a NetworkPolicy with a UID gets a controller owner reference",
	"peer-matches-nothing":            "a peer matching no pod contributes no source; a rule whose peers all resolve to nothing is dropped",
	"pod-phases":                      "Succeeded, Failed and hostNetwork pods are invisible; Pending, Unknown and templates count",
	"port-range":                      "port+endPort expands to every port of the range; ports sorted and de-duplicated",
	"port-range-too-large":            "a range past the cap: permissive any port, strict drops the range; PortRangeTooLarge",
	"prometheus-scraper":              "article: monitoring/prometheus into has-metrics pods on the metrics port (namespaceSelector + podSelector peer)",
	"require-opt-in":                  "with RequireOptIn a namespace without the mode annotation is inactive and silent",
	"root-namespace":                  "a NetworkPolicy in the default root namespace istio-system: RootNamespaceSkipped",
	"root-namespace-custom":           "a custom root namespace is skipped, istio-system is then ordinary",
	"rule-without-from":               "a rule without from, or with from: [], has no from",
	"selector-overreach":              "a projection that selects unselected pods: permissive skips it, strict keeps it; SelectorOverreach",
	"shared-identity":                 "a principal covering unselected pods: permissive keeps it, strict drops it; SharedIdentity",
	"source-template-not-in-mesh":     "non-mesh source read from a workload template (no IP knowable): permissive allows any address in a separate source, strict nothing; SourceNotInMesh",
	"namespace-pods-unknown":          "podSelector peer in a namespace whose pods are not in the input: permissive allows the namespace, strict nothing; NamespaceUnknown",
	"source-not-in-mesh":              "non-mesh source pods: permissive adds their IPs as a separate ipBlocks source, strict nothing; SourceNotInMesh",
	"target-not-in-mesh":              "selected pods without a proxy: TargetNotInMesh",
	"techops-admin-db":                "article: only role=admin pods may reach app=techops-examples-db",
	"trust-domain":                    "principals use the mesh trust domain",
	"waypoint-service-label":          "use-waypoint on one Service only: it gets a policy bound to it, the other Service and pod IPs go direct; Z keeps the client and adds the waypoint",
	"waypoint-pod-label":              "use-waypoint on a pod, workload waypoint: permissive allows the waypoint's principal (widening), strict does not (narrowing); a pod naming a Service-only waypoint is ignored; WaypointInPath, WaypointApplies",
	"waypoint-for-all":                "waypoint-for all from the namespace label: Service policy in both fidelities; pod-IP path reported; strict leaves the waypoint out and reports that podSelector {} (its own namespace) admits it anyway",
	"waypoint-for-none":               "waypoint-for none: an explicit Service label is reported without effect, an inherited one is silent",
	"waypoint-absent":                 "labels naming a waypoint without Gateway (nothing generated) and one without status.addresses (policy bound to the Service generated ahead; permissive allows the principal ahead, strict later)",
	"waypoint-use-none":               "istio.io/use-waypoint: none on a Service opts it out of the namespace's waypoint",
	"waypoint-cross-namespace":        "use-waypoint-namespace: the policy bound to the Service stays in its namespace; a waypoint admitting All is a risk (permissive keeps, strict drops its principal); one admitting Same only is not used",
	"waypoint-named-target-port":      "named targetPort with a number per pod, where no rule lets the waypoint in on the other pod's number: the service port is bound exactly in both fidelities",
	"waypoint-named-target-port-open": "named targetPort with a number per pod, each rule allowing one pod's number: the service port is kept in permissive, left out in strict; WaypointInPath",
	"waypoint-ipblock":                "ipBlock peer behind a waypoint: ipBlocks at the waypoint, the waypoint's principal at ztunnel",
	"waypoint-shared-service":         "Services bound to the waypoint that front pods the NetworkPolicy does not select: unisolated (permissive any source, strict the rules) or isolated by another NetworkPolicy (permissive the rules, strict no rule); OtherPolicies",
	"waypoint-shared-service-shut":    "a Service bound to the waypoint also fronts a pod another NetworkPolicy isolates without any rule: no policy lets the waypoint in there, so the rules are bound exactly in both fidelities",
	"waypoint-identity-review":        "a waypoint's ServiceAccount brought by a use-waypoint label after the first translation is pending: left out at ztunnel, the Service's policy keeps the approved sources",
	"waypoint-admin":                  "admin Allow and Deny behind a waypoint: bound to the Services too (the waypoint sees the client), the waypoint's principal in the admin ALLOW at ztunnel; a Service fronting pods outside the subject (strict binds the Deny, not the Allow; permissive the Allow) and a port matching on one pod only; WaypointInPath, WaypointApplies",
	"waypoint-namespace-label":        "namespace label, service waypoint: Z keeps the client and adds the waypoint's principal, one policy bound to each Service with service ports (targetPort number and name); exact; WaypointApplies; the waypoint pod blocked on 15008 (AmbientPortBlocked)",
}

func TestGolden(t *testing.T) {
	for name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "cases", name)
			in := readInput(t, filepath.Join(dir, "input.yaml"))
			ran := 0
			for file, fidelity := range variants {
				path := filepath.Join(dir, file)
				if _, err := os.Stat(path); err != nil {
					continue
				}
				ran++
				opts := in.Options
				if fidelity != "" {
					opts.DefaultFidelity = fidelity
				}
				got := marshalResult(t, Translate(in.snapshot(), opts))
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s mismatch (-want,+got):\n%s", path, diff)
				}
			}
			if ran == 0 {
				t.Fatalf("%s has no expected*.yaml (create an empty expected.yaml or expected.permissive.yaml and expected.strict.yaml, then run with -update)", dir)
			}
		})
	}
}

// TestGoldenCasesListed keeps goldenCases and testdata/cases in step, so a
// case cannot silently stop running.
func TestGoldenCasesListed(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "cases"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() {
			got[e.Name()] = true
		}
	}
	want := map[string]bool{}
	for name := range goldenCases {
		want[name] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("testdata/cases and goldenCases differ (-want,+got):\n%s", diff)
	}
}

// TestGoldenFindingTypes checks that the goldens pin down every finding
// type of the contract, each with its severity.
func TestGoldenFindingTypes(t *testing.T) {
	all := []FindingType{
		EgressNotTranslated, SelectorOverreach, PortRangeTooLarge, NamedPortVaries,
		NonTCPNotEnforced, SharedIdentity, SourceNotInMesh, TargetNotInMesh,
		RootNamespaceSkipped, Conflict, AmbientPortBlocked, DryRunNotEvaluated,
		NoPodsSelected, NamespaceUnknown, InvalidAnnotation, InvalidPolicy, IdentityPending,
		AdminPolicyApplies, AdminPolicyAllows, AdminPolicyDenies, AdminPolicyConflict, AdminPolicyInvalid,
		WaypointApplies, WaypointInPath,
	}
	want := map[FindingType]Severity{}
	for _, ft := range all {
		want[ft] = SeverityOf(ft)
	}
	got := map[FindingType]Severity{}
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*", "expected*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := yaml.UnmarshalStrict(data, &g); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, tr := range g.Translations {
			for _, f := range tr.Findings {
				got[f.Type] = f.Severity
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("finding types in goldens (-want,+got):\n%s", diff)
	}
}
