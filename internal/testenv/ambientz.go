package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Ambientz is what istiod's /debug/ambientz says it sends ztunnel: the
// compiled Authorization of every policy, and the workloads.
type Ambientz struct {
	Workloads []ZtunnelWorkload `json:"workloads"`
	Policies  []ZtunnelPolicy   `json:"policies"`
}

// ZtunnelWorkload is one workload as ztunnel knows it.
type ZtunnelWorkload struct {
	Name                  string   `json:"name"`
	Namespace             string   `json:"namespace"`
	ServiceAccount        string   `json:"serviceAccount"`
	AuthorizationPolicies []string `json:"authorizationPolicies"`
}

// ZtunnelPolicy is one compiled Authorization: every group is one Istio
// rule; a group's rules all must match (from, to); one match of a rule
// suffices.
type ZtunnelPolicy struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Scope     string `json:"scope"`
	Action    string `json:"action"`
	DryRun    bool   `json:"dryRun"`
	Groups    []struct {
		Rules []struct {
			Matches []ZtunnelMatch `json:"matches"`
		} `json:"rules"`
	} `json:"groups"`
}

// ZtunnelMatch is one alternative of a rule.
type ZtunnelMatch struct {
	Namespaces          []StringMatch `json:"namespaces"`
	NotNamespaces       []StringMatch `json:"notNamespaces"`
	Principals          []StringMatch `json:"principals"`
	NotPrincipals       []StringMatch `json:"notPrincipals"`
	SourceIPs           []Prefix      `json:"sourceIps"`
	NotSourceIPs        []Prefix      `json:"notSourceIps"`
	DestinationIPs      []Prefix      `json:"destinationIps"`
	NotDestinationIPs   []Prefix      `json:"notDestinationIps"`
	DestinationPorts    []int         `json:"destinationPorts"`
	NotDestinationPorts []int         `json:"notDestinationPorts"`
}

// StringMatch is ztunnel's string matcher.
type StringMatch struct {
	Exact    string `json:"exact,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Suffix   string `json:"suffix,omitempty"`
	Presence *struct {
	} `json:"presence,omitempty"`
}

func (m StringMatch) String() string {
	switch {
	case m.Presence != nil:
		return "*"
	case m.Prefix != "":
		return m.Prefix + "*"
	case m.Suffix != "":
		return "*" + m.Suffix
	default:
		return m.Exact
	}
}

// Prefix is an address and a prefix length (the address base64 in JSON).
type Prefix struct {
	Address []byte `json:"address"`
	Length  int    `json:"length"`
}

func (p Prefix) String() string {
	a, ok := netip.AddrFromSlice(p.Address)
	if !ok {
		return fmt.Sprintf("invalid(%x)/%d", p.Address, p.Length)
	}
	return netip.PrefixFrom(a.Unmap(), p.Length).String()
}

// Debug reads istiod's debug endpoint path (e.g. /debug/ambientz) and
// decodes its JSON into out.
func (i *Istiod) Debug(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+i.HTTPAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Ambientz reads /debug/ambientz.
func (i *Istiod) Ambientz(ctx context.Context) (*Ambientz, error) {
	out := &Ambientz{}
	return out, i.Debug(ctx, "/debug/ambientz", out)
}

// Policy returns the compiled policy ns/name, or nil.
func (a *Ambientz) Policy(ns, name string) *ZtunnelPolicy {
	for i := range a.Policies {
		if a.Policies[i].Namespace == ns && a.Policies[i].Name == name {
			return &a.Policies[i]
		}
	}
	return nil
}

// Summary renders a compiled policy in a few lines, one per rule.
func (p *ZtunnelPolicy) Summary() []string {
	out := []string{fmt.Sprintf("%s/%s: scope %s, action %s", p.Namespace, p.Name, p.Scope, strings.ToUpper(orDefault(p.Action, "ALLOW")))}
	for gi, g := range p.Groups {
		var parts []string
		for _, r := range g.Rules {
			var alts []string
			for _, m := range r.Matches {
				alts = append(alts, m.summary())
			}
			if len(alts) > 1 {
				parts = append(parts, "("+strings.Join(alts, " OR ")+")")
			} else {
				parts = append(parts, strings.Join(alts, " OR "))
			}
		}
		out = append(out, fmt.Sprintf("rule %d: %s", gi, strings.Join(parts, " AND ")))
	}
	return out
}

func (m ZtunnelMatch) summary() string {
	var f []string
	add := func(name string, vals []string) {
		if len(vals) > 0 {
			f = append(f, name+"="+strings.Join(vals, ","))
		}
	}
	strs := func(ms []StringMatch) []string {
		var out []string
		for _, s := range ms {
			out = append(out, s.String())
		}
		return out
	}
	prefixes := func(ps []Prefix) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.String())
		}
		return out
	}
	ports := func(ps []int) []string {
		var out []string
		for _, p := range ps {
			out = append(out, strconv.Itoa(p))
		}
		return out
	}
	add("principals", strs(m.Principals))
	add("namespaces", strs(m.Namespaces))
	add("sourceIps", prefixes(m.SourceIPs))
	add("notSourceIps", prefixes(m.NotSourceIPs))
	add("ports", ports(m.DestinationPorts))
	add("notPrincipals", strs(m.NotPrincipals))
	add("notNamespaces", strs(m.NotNamespaces))
	add("notPorts", ports(m.NotDestinationPorts))
	if len(f) == 0 {
		return "{any}"
	}
	return "{" + strings.Join(f, " ") + "}"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// AmbientzWaypoints is which waypoint ambientz gives each Service and pod,
// by namespace/name: the waypoint's hostname (a Gateway's status address
// of type Hostname) or address, "" for none.
type AmbientzWaypoints struct {
	Services  map[string]string
	Workloads map[string]string
}

// gatewayAddress is istio.workload.GatewayAddress as protojson writes it.
type gatewayAddress struct {
	Hostname *struct {
		Namespace string `json:"namespace"`
		Hostname  string `json:"hostname"`
	} `json:"hostname"`
	Address *struct {
		Network string `json:"network"`
		Address []byte `json:"address"`
	} `json:"address"`
}

func (g *gatewayAddress) String() string {
	switch {
	case g == nil:
		return ""
	case g.Hostname != nil:
		return g.Hostname.Hostname
	case g.Address != nil:
		if a, ok := netip.AddrFromSlice(g.Address.Address); ok {
			return a.String()
		}
		return fmt.Sprintf("invalid(%x)", g.Address.Address)
	}
	return "?"
}

// AmbientzWaypoints reads /debug/ambientz for the waypoints of the Services
// and workloads of istiod's ambient index.
func (i *Istiod) AmbientzWaypoints(ctx context.Context) (*AmbientzWaypoints, error) {
	var z struct {
		Workloads []struct {
			Name      string          `json:"name"`
			Namespace string          `json:"namespace"`
			Waypoint  *gatewayAddress `json:"waypoint"`
		} `json:"workloads"`
		Services []struct {
			Name      string          `json:"name"`
			Namespace string          `json:"namespace"`
			Waypoint  *gatewayAddress `json:"waypoint"`
		} `json:"services"`
	}
	if err := i.Debug(ctx, "/debug/ambientz", &z); err != nil {
		return nil, err
	}
	out := &AmbientzWaypoints{Services: map[string]string{}, Workloads: map[string]string{}}
	for _, s := range z.Services {
		out.Services[s.Namespace+"/"+s.Name] = s.Waypoint.String()
	}
	for _, w := range z.Workloads {
		out.Workloads[w.Namespace+"/"+w.Name] = w.Waypoint.String()
	}
	return out, nil
}
