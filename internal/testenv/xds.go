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
// logged, of ALLOW policies. A nil map is one the filter does not have.
type RBACFilter struct {
	Rules  map[string]RBACRule
	Shadow map[string]RBACRule
	// Deny and DenyShadow are the same for DENY policies, which Istio
	// writes in an RBAC filter of their own (action DENY), before the
	// ALLOW one.
	Deny       map[string]RBACRule `json:",omitempty"`
	DenyShadow map[string]RBACRule `json:",omitempty"`
}

// merge adds the rules of o, an RBAC filter of the same chain.
func (f *RBACFilter) merge(o RBACFilter) error {
	for _, p := range []struct {
		name     string
		dst, src *map[string]RBACRule
	}{{"rules", &f.Rules, &o.Rules}, {"shadow rules", &f.Shadow, &o.Shadow}, {"DENY rules", &f.Deny, &o.Deny}, {"DENY shadow rules", &f.DenyShadow, &o.DenyShadow}} {
		if *p.src == nil {
			continue
		}
		if *p.dst != nil {
			return fmt.Errorf("two RBAC filters with %s", p.name)
		}
		*p.dst = *p.src
	}
	return nil
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
	for n, fc := range listeners[i].FilterChains {
		chain := fmt.Sprintf("%s#%d", fc.Name, n)
		var f *RBACFilter
		add := func(what string, rules, shadow *rbacv3.RBAC) error {
			g, err := DecodeFilter(rules, shadow)
			if err != nil {
				return fmt.Errorf("filter chain %s%s: %w", chain, what, err)
			}
			if f == nil {
				f = &RBACFilter{}
			}
			if err := f.merge(g); err != nil {
				return fmt.Errorf("filter chain %s%s: %w", chain, what, err)
			}
			return nil
		}
		for _, flt := range fc.Filters {
			switch flt.Name {
			case netRBAC:
				r := &rbacnet.RBAC{}
				if err := flt.GetTypedConfig().UnmarshalTo(r); err != nil {
					return RBACFilter{}, nil, err
				}
				if err := add("", r.Rules, r.ShadowRules); err != nil {
					return RBACFilter{}, nil, err
				}
			case httpManager:
				m := &hcm.HttpConnectionManager{}
				if err := flt.GetTypedConfig().UnmarshalTo(m); err != nil {
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
					if err := add(" (HTTP)", r.Rules, r.ShadowRules); err != nil {
						return RBACFilter{}, nil, err
					}
				}
			}
		}
		switch {
		case f == nil:
			if fc.Name != blackhole {
				bare = append(bare, chain)
			}
			continue
		case first == nil:
			first = f
		default:
			if d := DiffRBAC(*first, *f); d != "" {
				return RBACFilter{}, nil, fmt.Errorf("filter chain %s differs from %s (-first +this):\n%s", chain, chains[0], d)
			}
		}
		chains = append(chains, chain)
	}
	if first == nil {
		return RBACFilter{}, nil, nil
	}
	if len(bare) > 0 {
		return RBACFilter{}, nil, fmt.Errorf("filter chains %v carry no RBAC filter, %v do", bare, chains)
	}
	return *first, chains, nil
}

// DecodeFilter reads a sidecar's RBAC filter, where a peer's identity is
// the authenticated principal of its mTLS connection.
func DecodeFilter(rules, shadow *rbacv3.RBAC) (RBACFilter, error) {
	return decoder{}.filter(rules, shadow)
}

// DecodeWaypointFilter reads a waypoint's RBAC filter, where a peer's
// identity is the filter state io.istio.peer_principal: the client's,
// taken from the HBONE connection by connect_terminate.
func DecodeWaypointFilter(rules, shadow *rbacv3.RBAC) (RBACFilter, error) {
	return decoder{filterState: true}.filter(rules, shadow)
}

// decoder inverts Istio's RBAC for one kind of proxy: filterState says
// principals and namespaces are matched on the filter state
// io.istio.peer_principal (waypoints), not on the authenticated principal
// (sidecars). A matcher of the other kind is an error.
type decoder struct{ filterState bool }

// peerPrincipalKey is the filter state a waypoint keeps the client's
// identity under.
const peerPrincipalKey = "io.istio.peer_principal"

func (d decoder) filter(rules, shadow *rbacv3.RBAC) (RBACFilter, error) {
	var c RBACFilter
	for _, r := range []struct {
		name        string
		rbac        *rbacv3.RBAC
		allow, deny *map[string]RBACRule
	}{{"rules", rules, &c.Rules, &c.Deny}, {"shadow_rules", shadow, &c.Shadow, &c.DenyShadow}} {
		if r.rbac == nil {
			continue
		}
		dst := r.allow
		switch r.rbac.Action {
		case rbacv3.RBAC_ALLOW:
		case rbacv3.RBAC_DENY:
			dst = r.deny
		default:
			return c, fmt.Errorf("%s: action %s, not ALLOW or DENY", r.name, r.rbac.Action)
		}
		var err error
		if *dst, err = d.rbac(r.rbac); err != nil {
			return c, fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return c, nil
}

func (d decoder) rbac(r *rbacv3.RBAC) (map[string]RBACRule, error) {
	out := map[string]RBACRule{}
	for name, p := range r.Policies {
		rule, err := d.policy(p)
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

// policy reads one Envoy policy: one principal per `from` (an and_ids of
// one matcher set per source field), one permission per `to` (an and_rules
// of the ports), or a lone `any` where the rule has no from or no to.
// Anything else is an error, so a change in Istio's output cannot pass
// unnoticed.
func (d decoder) policy(p *rbacv3.Policy) (RBACRule, error) {
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
		src, err := d.source(ids)
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

// source reads the matcher sets of one source: or_ids of
// authenticated principal names (on a waypoint: filter state
// io.istio.peer_principal) (principals: exact spiffe://PRINCIPAL;
// namespaces: the regex .*/ns/NAMESPACE/.*), or_ids of direct_remote_ip
// (ipBlocks), not_id of those (notIpBlocks).
func (d decoder) source(ids []*rbacv3.Principal) (RBACSource, error) {
	var s RBACSource
	if len(ids) == 0 {
		return s, fmt.Errorf("empty source")
	}
	for _, id := range ids {
		field, values, err := d.matchers(id)
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

func (d decoder) matchers(id *rbacv3.Principal) (field string, values []string, err error) {
	if not := id.GetNotId(); not != nil {
		field, values, err := d.matchers(not)
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
		f, v, err := d.matcher(m)
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

func (d decoder) matcher(m *rbacv3.Principal) (field, value string, err error) {
	if cidr := m.GetDirectRemoteIp(); cidr != nil {
		return "ipBlocks", fmt.Sprintf("%s/%d", cidr.AddressPrefix, cidr.GetPrefixLen().GetValue()), nil
	}
	name := m.GetAuthenticated().GetPrincipalName()
	if d.filterState {
		name = nil
		if fs := m.GetFilterState(); fs.GetKey() == peerPrincipalKey {
			name = fs.GetStringMatch()
		}
	}
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

// Waypoints. The waypoint's proxy (a Gateway of class istio-waypoint)
// enforces AuthorizationPolicies bound to its Services (targetRefs) on the
// filter chains of its internal listener main_internal: one chain per
// Service port and protocol, inbound-vip|PORT|tcp|HOST and
// inbound-vip|PORT|http|HOST, and the chains direct-tcp and direct-http for
// traffic sent to the pod IPs of workloads bound to it.
const (
	mainInternal = "main_internal"
	// gatewayManaged is the value of gateway.istio.io/managed on the pods
	// of Istio's own waypoints.
	gatewayManaged = "istio.io-mesh-controller"
)

// WaypointNode is the node the istio-agent of a waypoint's pod announces:
// the ID waypoint~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local and
// metadata whose labels name the Gateway
// (gateway.networking.k8s.io/gateway-name), which is what makes istiod
// treat the proxy as that Gateway's: it serves the Services whose address
// is the Gateway's status address, and attaches the policies bound to
// those Services. pod need not exist: istiod then takes the labels from
// the metadata.
func WaypointNode(gateway, namespace, pod, ip, serviceAccount string) (*corev3.Node, error) {
	md, err := structpb.NewStruct(map[string]any{
		"NAME":       pod,
		"NAMESPACE":  namespace,
		"CLUSTER_ID": "Kubernetes",
		"LABELS": map[string]any{
			"gateway.networking.k8s.io/gateway-name": gateway,
			"gateway.istio.io/managed":               gatewayManaged,
		},
		"SERVICE_ACCOUNT": serviceAccount,
		"ISTIO_VERSION":   ProxyVersion,
		"INSTANCE_IPS":    ip,
		"WORKLOAD_NAME":   gateway,
	})
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("waypoint~%s~%s.%s~%s.svc.cluster.local", ip, pod, namespace, namespace)
	return &corev3.Node{Id: id, Metadata: md}, nil
}

// WaypointRBAC reads the RBAC filters of a waypoint's main_internal
// listener, by filter chain name: the network filter of a TCP chain, the
// HTTP filter of an HTTP one; a chain without one maps to nil (it lets
// everything through). Principals and namespaces are read from the filter
// state io.istio.peer_principal, where the waypoint keeps the client's
// identity. A chain's DENY and ALLOW filters make one RBACFilter.
func WaypointRBAC(listeners []*listenerv3.Listener) (map[string]*RBACFilter, error) {
	i := slices.IndexFunc(listeners, func(l *listenerv3.Listener) bool { return l.Name == mainInternal })
	if i < 0 {
		var names []string
		for _, l := range listeners {
			names = append(names, l.Name)
		}
		return nil, fmt.Errorf("no %s listener among %v", mainInternal, names)
	}
	out := map[string]*RBACFilter{}
	for _, fc := range listeners[i].FilterChains {
		if _, dup := out[fc.Name]; dup {
			return nil, fmt.Errorf("filter chain %s twice", fc.Name)
		}
		out[fc.Name] = nil
		set := func(rules, shadow *rbacv3.RBAC) error {
			f, err := DecodeWaypointFilter(rules, shadow)
			if err != nil {
				return fmt.Errorf("filter chain %s: %w", fc.Name, err)
			}
			if out[fc.Name] == nil {
				out[fc.Name] = &RBACFilter{}
			}
			if err := out[fc.Name].merge(f); err != nil {
				return fmt.Errorf("filter chain %s: %w", fc.Name, err)
			}
			return nil
		}
		for _, f := range fc.Filters {
			switch f.Name {
			case netRBAC:
				r := &rbacnet.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(r); err != nil {
					return nil, err
				}
				if err := set(r.Rules, r.ShadowRules); err != nil {
					return nil, err
				}
			case httpManager:
				m := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					return nil, err
				}
				for _, hf := range m.HttpFilters {
					if hf.Name != httpRBAC {
						continue
					}
					r := &rbachttp.RBAC{}
					if err := hf.GetTypedConfig().UnmarshalTo(r); err != nil {
						return nil, err
					}
					if err := set(r.Rules, r.ShadowRules); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return out, nil
}
