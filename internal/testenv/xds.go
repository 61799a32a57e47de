package testenv

// An xDS client that poses as a sidecar's proxy, and a decoder that reads the
// RBAC filters istiod sends it back into the L4 fields of AuthorizationPolicy
// rules. The mapping is Istio's (pilot/pkg/security/authz/builder and model),
// written down in docs/istio.md, "Sidecars". test/istio compares them with
// the generated policies; the demo shows one.

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
)

const (
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	// virtualInbound is the listener of a sidecar's inbound traffic.
	virtualInbound = "virtualInbound"
	// blackhole is its filter chain for traffic to its own port.
	blackhole   = "virtualInbound-blackhole"
	netRBAC     = "envoy.filters.network.rbac"
	httpRBAC    = "envoy.filters.http.rbac"
	httpManager = "envoy.filters.network.http_connection_manager"
	// ProxyVersion is the ISTIO_VERSION the fake proxy announces.
	ProxyVersion = "1.31.0"
)

// SidecarNode is the node the istio-agent of pod's sidecar announces: the ID
// sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local and the metadata of
// Istio's NodeMetadata (pkg/model/proxy.go) a sidecar sends.
func SidecarNode(pod *corev1.Pod) (*corev3.Node, error) {
	ip := pod.Status.PodIP
	if ip == "" {
		return nil, fmt.Errorf("pod %s/%s has no IP", pod.Namespace, pod.Name)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	labels := map[string]any{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	var ports []corev1.ContainerPort
	for _, c := range pod.Spec.Containers {
		if c.Name != "istio-proxy" {
			ports = append(ports, c.Ports...)
		}
	}
	podPorts, err := json.Marshal(ports)
	if err != nil {
		return nil, err
	}
	md, err := structpb.NewStruct(map[string]any{
		"NAME":              pod.Name,
		"NAMESPACE":         pod.Namespace,
		"CLUSTER_ID":        "Kubernetes",
		"LABELS":            labels,
		"SERVICE_ACCOUNT":   sa,
		"ISTIO_VERSION":     ProxyVersion,
		"INTERCEPTION_MODE": "REDIRECT",
		"INSTANCE_IPS":      ip,
		"WORKLOAD_NAME":     pod.Name,
		"POD_PORTS":         string(podPorts),
	})
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod.Name, pod.Namespace, pod.Namespace)
	return &corev3.Node{Id: id, Metadata: md}, nil
}

// FetchListeners opens an ADS stream (state of the world) to istiod's
// plaintext xDS address, asks for node's listeners and returns istiod's
// first answer.
func FetchListeners(ctx context.Context, addr string, node *corev3.Node) ([]*listenerv3.Listener, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: listenerType}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("receiving listeners for %s: %w", node.Id, err)
	}
	if resp.TypeUrl != listenerType {
		return nil, fmt.Errorf("istiod answered %s, not listeners", resp.TypeUrl)
	}
	var out []*listenerv3.Listener
	for _, r := range resp.Resources {
		l := &listenerv3.Listener{}
		if err := r.UnmarshalTo(l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// RBACFilter is what one proxy's RBAC filter holds, by Istio's policy name
// ns[NS]-policy[NAME]-rule[N]: Rules are enforced, Shadow (dry-run) only
// logged. A nil map is one the filter does not have.
type RBACFilter struct {
	Rules  map[string]RBACRule
	Shadow map[string]RBACRule
}

// RBACRule is one ALLOW rule, in the L4 fields netpol2authz writes, every list
// a sorted set. From nil is any source, To nil any port; Never is a policy
// without rules, which matches nothing.
type RBACRule struct {
	Never bool
	From  []RBACSource
	To    []RBACOperation
}

type RBACSource struct {
	Principals  []string
	Namespaces  []string
	IPBlocks    []string
	NotIPBlocks []string
}

type RBACOperation struct {
	Ports []string
}

// InboundRBAC reads the RBAC filters of the inbound listener: the network
// filter of TCP filter chains and the HTTP filter of HTTP ones. Every chain
// but the blackhole (traffic to the listener's own port) must carry one,
// and the same rules, or none may; it returns them and the chains read.
func InboundRBAC(listeners []*listenerv3.Listener) (RBACFilter, []string, error) {
	i := slices.IndexFunc(listeners, func(l *listenerv3.Listener) bool { return l.Name == virtualInbound })
	if i < 0 {
		return RBACFilter{}, nil, fmt.Errorf("no %s listener among %d", virtualInbound, len(listeners))
	}
	var (
		first        *RBACFilter
		chains, bare []string
	)
	add := func(chain string, rules, shadow *rbacv3.RBAC) error {
		f, err := DecodeFilter(rules, shadow)
		if err != nil {
			return fmt.Errorf("filter chain %s: %w", chain, err)
		}
		if first == nil {
			first = &f
		} else if d := DiffRBAC(*first, f); d != "" {
			return fmt.Errorf("filter chain %s differs from %s (-first +this):\n%s", chain, chains[0], d)
		}
		chains = append(chains, chain)
		return nil
	}
	for n, fc := range listeners[i].FilterChains {
		chain := fmt.Sprintf("%s#%d", fc.Name, n)
		had := len(chains)
		for _, f := range fc.Filters {
			switch f.Name {
			case netRBAC:
				r := &rbacnet.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
					return RBACFilter{}, nil, err
				}
				if err := add(chain, r.Rules, r.ShadowRules); err != nil {
					return RBACFilter{}, nil, err
				}
			case httpManager:
				m := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					return RBACFilter{}, nil, err
				}
				for _, hf := range m.HttpFilters {
					if hf.Name != httpRBAC {
						continue
					}
					r := &rbachttp.RBAC{}
					if err := hf.GetTypedConfig().UnmarshalTo(r); err != nil {
						return RBACFilter{}, nil, err
					}
					if err := add(chain+" (HTTP)", r.Rules, r.ShadowRules); err != nil {
						return RBACFilter{}, nil, err
					}
				}
			}
		}
		if len(chains) == had && fc.Name != blackhole {
			bare = append(bare, chain)
		}
	}
	if first == nil {
		return RBACFilter{}, nil, nil
	}
	if len(bare) > 0 {
		return RBACFilter{}, nil, fmt.Errorf("filter chains %v carry no RBAC filter, %v do", bare, chains)
	}
	return *first, chains, nil
}

func DecodeFilter(rules, shadow *rbacv3.RBAC) (RBACFilter, error) {
	var c RBACFilter
	var err error
	if c.Rules, err = decodeRBAC(rules); err != nil {
		return c, fmt.Errorf("rules: %w", err)
	}
	if c.Shadow, err = decodeRBAC(shadow); err != nil {
		return c, fmt.Errorf("shadow_rules: %w", err)
	}
	return c, nil
}

func decodeRBAC(r *rbacv3.RBAC) (map[string]RBACRule, error) {
	if r == nil {
		return nil, nil
	}
	if r.Action != rbacv3.RBAC_ALLOW {
		return nil, fmt.Errorf("action %s, not ALLOW", r.Action)
	}
	out := map[string]RBACRule{}
	for name, p := range r.Policies {
		rule, err := decodePolicy(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = rule
	}
	return out, nil
}

// rbacMatchNever is the policy Istio writes for an AuthorizationPolicy without
// rules.
var rbacMatchNever = &rbacv3.Policy{
	Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}}}},
	Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}},
}

// decodePolicy reads one Envoy policy: one principal per `from` (an and_ids of
// one matcher set per source field), one permission per `to` (an and_rules
// of the ports), or a lone `any` where the rule has no from or no to.
// Anything else is an error, so a change in Istio's output cannot pass
// unnoticed.
func decodePolicy(p *rbacv3.Policy) (RBACRule, error) {
	if proto.Equal(p, rbacMatchNever) {
		return RBACRule{Never: true}, nil
	}
	if p.Condition != nil || p.CheckedCondition != nil {
		return RBACRule{}, fmt.Errorf("unexpected condition: %s", prototext.Format(p))
	}
	var rule RBACRule
	for _, pr := range p.Principals {
		ids := pr.GetAndIds().GetIds()
		if len(ids) == 1 && ids[0].GetAny() && len(p.Principals) == 1 {
			break // no from: any source
		}
		src, err := decodeSource(ids)
		if err != nil {
			return RBACRule{}, fmt.Errorf("%w in principal %s", err, prototext.Format(pr))
		}
		rule.From = append(rule.From, src)
	}
	for _, pm := range p.Permissions {
		rules := pm.GetAndRules().GetRules()
		if len(rules) == 1 && rules[0].GetAny() && len(p.Permissions) == 1 {
			break // no to: any port
		}
		if len(rules) != 1 || rules[0].GetOrRules() == nil {
			return RBACRule{}, fmt.Errorf("unexpected permission %s", prototext.Format(pm))
		}
		var op RBACOperation
		for _, r := range rules[0].GetOrRules().GetRules() {
			port, ok := r.Rule.(*rbacv3.Permission_DestinationPort)
			if !ok {
				return RBACRule{}, fmt.Errorf("unexpected permission %s", prototext.Format(pm))
			}
			op.Ports = append(op.Ports, fmt.Sprint(port.DestinationPort))
		}
		slices.Sort(op.Ports)
		rule.To = append(rule.To, op)
	}
	return rule, nil
}

// decodeSource reads the matcher sets of one source: or_ids of
// authenticated principal names (principals: exact spiffe://PRINCIPAL;
// namespaces: the regex .*/ns/NAMESPACE/.*), or_ids of direct_remote_ip
// (ipBlocks), not_id of those (notIpBlocks).
func decodeSource(ids []*rbacv3.Principal) (RBACSource, error) {
	var s RBACSource
	if len(ids) == 0 {
		return s, fmt.Errorf("empty source")
	}
	for _, id := range ids {
		field, values, err := decodeMatchers(id)
		if err != nil {
			return s, err
		}
		var dst *[]string
		switch field {
		case "principals":
			dst = &s.Principals
		case "namespaces":
			dst = &s.Namespaces
		case "ipBlocks":
			dst = &s.IPBlocks
		case "notIpBlocks":
			dst = &s.NotIPBlocks
		}
		if *dst != nil {
			return s, fmt.Errorf("%s twice", field)
		}
		slices.Sort(values)
		*dst = values
	}
	return s, nil
}

func decodeMatchers(id *rbacv3.Principal) (field string, values []string, err error) {
	if not := id.GetNotId(); not != nil {
		field, values, err := decodeMatchers(not)
		if err != nil || field != "ipBlocks" {
			return "", nil, fmt.Errorf("unexpected not_id %s", prototext.Format(id))
		}
		return "notIpBlocks", values, nil
	}
	or := id.GetOrIds().GetIds()
	if len(or) == 0 {
		return "", nil, fmt.Errorf("unexpected matcher %s", prototext.Format(id))
	}
	for _, m := range or {
		f, v, err := decodeMatcher(m)
		if err != nil {
			return "", nil, err
		}
		if field != "" && f != field {
			return "", nil, fmt.Errorf("%s and %s in one or_ids", field, f)
		}
		field = f
		values = append(values, v)
	}
	return field, values, nil
}

func decodeMatcher(m *rbacv3.Principal) (field, value string, err error) {
	if cidr := m.GetDirectRemoteIp(); cidr != nil {
		return "ipBlocks", fmt.Sprintf("%s/%d", cidr.AddressPrefix, cidr.GetPrefixLen().GetValue()), nil
	}
	name := m.GetAuthenticated().GetPrincipalName()
	if exact, ok := strings.CutPrefix(name.GetExact(), "spiffe://"); ok && !name.IgnoreCase {
		return "principals", exact, nil
	}
	if re := name.GetSafeRegex().GetRegex(); re != "" {
		if ns, ok := rbacNamespaceOf(re); ok {
			return "namespaces", ns, nil
		}
	}
	return "", "", fmt.Errorf("unexpected matcher %s", prototext.Format(m))
}

// rbacNamespaceRegex is Istio's matcher for a namespace of a source: the
// literal parts between "*" quoted, joined by ".*".
func rbacNamespaceRegex(ns string) string {
	parts := strings.Split(ns, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return ".*/ns/" + strings.Join(parts, ".*") + "/.*"
}

// rbacNamespaceOf inverts rbacNamespaceRegex.
func rbacNamespaceOf(re string) (string, bool) {
	mid, ok := strings.CutPrefix(re, ".*/ns/")
	if !ok {
		return "", false
	}
	if mid, ok = strings.CutSuffix(mid, "/.*"); !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(mid); i++ {
		switch {
		case mid[i] == '\\' && i+1 < len(mid):
			i++
			b.WriteByte(mid[i])
		case strings.HasPrefix(mid[i:], ".*"):
			i++
			b.WriteByte('*')
		default:
			b.WriteByte(mid[i])
		}
	}
	ns := b.String()
	return ns, rbacNamespaceRegex(ns) == re
}

// DiffRBAC is empty when two filters hold the same rules.
func DiffRBAC(want, got RBACFilter) string { return cmp.Diff(want, got) }
