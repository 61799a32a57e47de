package istio_test

// The ztunnel side of the comparison: an AuthorizationPolicy as ztunnel
// receives it (istio.workload.Authorization, read from istiod's
// /debug/ambientz), and what a generated AuthorizationPolicy must compile
// to, in one normal form so that the two can be compared exactly.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-cmp/cmp"
	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

// ztPolicy is one ztunnel Authorization in normal form. The action is
// ALLOW or DENY, the scope GLOBAL, NAMESPACE or WORKLOAD_SELECTOR. Groups
// are OR'ed (one per Istio rule); within a group the clauses are AND'ed;
// within a clause the matches are OR'ed. Each level is sorted, so that
// order does not count but every element does.
type ztPolicy struct {
	Namespace, Name string
	Scope, Action   string
	DryRun          bool
	Groups          []ztGroup
}

type ztGroup struct{ Clauses []ztClause }

type ztClause struct{ Matches []ztMatch }

// ztMatch holds each field as sorted strings: string matches written back
// in AuthorizationPolicy syntax ("*" presence, "*x" suffix, "x*" prefix,
// else exact), addresses as CIDRs, ports in decimal, service accounts as
// namespace/name.
type ztMatch struct {
	Namespaces, NotNamespaces           []string
	Principals, NotPrincipals           []string
	ServiceAccounts, NotServiceAccounts []string
	SourceIPs, NotSourceIPs             []string
	DestinationIPs, NotDestinationIPs   []string
	DestinationPorts, NotDestPorts      []string
}

func (p ztPolicy) key() string { return p.Namespace + "/" + p.Name }

// diffPolicies compares the expected policies with the compiled ones by
// namespace/name: it returns "" when both sets are the same, else a
// readable difference (-expected +compiled).
func diffPolicies(expected, compiled []ztPolicy) string {
	index := func(ps []ztPolicy) map[string]ztPolicy {
		m := make(map[string]ztPolicy, len(ps))
		for _, p := range ps {
			m[p.key()] = p
		}
		return m
	}
	return cmp.Diff(index(expected), index(compiled))
}

// normalize sorts every level of p.
func (p ztPolicy) normalize() ztPolicy {
	for gi := range p.Groups {
		g := &p.Groups[gi]
		for ci := range g.Clauses {
			c := &g.Clauses[ci]
			for mi := range c.Matches {
				m := &c.Matches[mi]
				for _, f := range []*[]string{&m.Namespaces, &m.NotNamespaces, &m.Principals, &m.NotPrincipals,
					&m.ServiceAccounts, &m.NotServiceAccounts, &m.SourceIPs, &m.NotSourceIPs,
					&m.DestinationIPs, &m.NotDestinationIPs, &m.DestinationPorts, &m.NotDestPorts} {
					slices.Sort(*f)
				}
			}
			sortByKey(c.Matches)
		}
		sortByKey(g.Clauses)
	}
	sortByKey(p.Groups)
	return p
}

func sortByKey[T any](s []T) {
	key := func(v T) string { b, _ := json.Marshal(v); return string(b) }
	slices.SortStableFunc(s, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}

// expectedZtunnel is what ap must compile to for ztunnel, from the meaning
// of its fields (not from istiod's code): a policy without selector applies
// to its namespace (to the mesh in the root namespace), each rule is a
// group, its to (when present) one clause whose matches are the
// operations, its from (when present) another whose matches are the
// sources; a rule with neither is a group without clauses (it matches
// everything). Values are kept as written, so that anything istiod drops
// or rewrites shows as a difference. Fields ztunnel cannot enforce (HTTP
// attributes, conditions) are an error: generated policies never use them.
func expectedZtunnel(ap *securityv1.AuthorizationPolicy, rootNamespace string) (ztPolicy, error) {
	p := ztPolicy{Namespace: ap.Namespace, Name: ap.Name, Scope: "WORKLOAD_SELECTOR"}
	if ap.Spec.Selector == nil {
		p.Scope = "NAMESPACE"
		if ap.Namespace == rootNamespace {
			p.Scope = "GLOBAL"
		}
	}
	if len(ap.Spec.GetTargetRefs()) > 0 || ap.Spec.GetTargetRef() != nil {
		return p, fmt.Errorf("%s: targetRefs are not for ztunnel", p.key())
	}
	switch ap.Spec.Action {
	case secv1beta1.AuthorizationPolicy_ALLOW:
		p.Action = "ALLOW"
	case secv1beta1.AuthorizationPolicy_DENY:
		p.Action = "DENY"
	default:
		return p, fmt.Errorf("%s: action %s is not for ztunnel", p.key(), ap.Spec.Action)
	}
	if v, ok := ap.Annotations["istio.io/dry-run"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, fmt.Errorf("%s: istio.io/dry-run %q: %w", p.key(), v, err)
		}
		p.DryRun = b
	}
	for i, r := range ap.Spec.Rules {
		if len(r.When) > 0 {
			return p, fmt.Errorf("%s: rule %d has conditions", p.key(), i)
		}
		g := ztGroup{Clauses: []ztClause{}}
		if len(r.To) > 0 {
			var c ztClause
			for _, to := range r.To {
				op := to.GetOperation()
				if len(op.GetHosts())+len(op.GetNotHosts())+len(op.GetMethods())+len(op.GetNotMethods())+len(op.GetPaths())+len(op.GetNotPaths()) > 0 {
					return p, fmt.Errorf("%s: rule %d has HTTP operations", p.key(), i)
				}
				c.Matches = append(c.Matches, ztMatch{DestinationPorts: clone(op.GetPorts()), NotDestPorts: clone(op.GetNotPorts())})
			}
			g.Clauses = append(g.Clauses, c)
		}
		if len(r.From) > 0 {
			var c ztClause
			for _, from := range r.From {
				s := from.GetSource()
				if len(s.GetRequestPrincipals())+len(s.GetNotRequestPrincipals())+len(s.GetRemoteIpBlocks())+len(s.GetNotRemoteIpBlocks()) > 0 {
					return p, fmt.Errorf("%s: rule %d has HTTP sources", p.key(), i)
				}
				c.Matches = append(c.Matches, ztMatch{
					Namespaces: clone(s.GetNamespaces()), NotNamespaces: clone(s.GetNotNamespaces()),
					Principals: clone(s.GetPrincipals()), NotPrincipals: clone(s.GetNotPrincipals()),
					ServiceAccounts:    qualify(s.GetServiceAccounts(), ap.Namespace),
					NotServiceAccounts: qualify(s.GetNotServiceAccounts(), ap.Namespace),
					SourceIPs:          cidrs(s.GetIpBlocks()), NotSourceIPs: cidrs(s.GetNotIpBlocks()),
				})
			}
			g.Clauses = append(g.Clauses, c)
		}
		p.Groups = append(p.Groups, g)
	}
	return p.normalize(), nil
}

func clone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// qualify writes service accounts as namespace/name.
func qualify(sas []string, ns string) []string {
	var out []string
	for _, sa := range sas {
		if !strings.Contains(sa, "/") {
			sa = ns + "/" + sa
		}
		out = append(out, sa)
	}
	return out
}

// cidrs writes each IP or CIDR as a CIDR, the address kept as written (no
// masking); what does not parse is kept as "invalid:<value>", which no
// compiled address equals.
func cidrs(blocks []string) []string {
	var out []string
	for _, b := range blocks {
		if p, err := netip.ParsePrefix(b); err == nil {
			out = append(out, p.String())
		} else if a, err := netip.ParseAddr(b); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()).String())
		} else {
			out = append(out, "invalid:"+b)
		}
	}
	return out
}

// ambientz is istiod's /debug/ambientz: the workloads and policies it
// sends ztunnel (workload addresses as base64 of their text form, policy
// addresses as base64 bytes; enum fields at their zero value omitted).
type ambientz struct {
	Workloads []ambWorkload     `json:"workloads"`
	Policies  []json.RawMessage `json:"policies"`
}

type ambWorkload struct {
	UID                   string   `json:"uid"`
	Name                  string   `json:"name"`
	Namespace             string   `json:"namespace"`
	Addresses             [][]byte `json:"addresses"`
	ServiceAccount        string   `json:"serviceAccount"`
	TunnelProtocol        string   `json:"tunnelProtocol"`
	AuthorizationPolicies []string `json:"authorizationPolicies"`
}

// ambPolicy is istio.workload.Authorization as protojson writes it. It is
// decoded strictly: a field this test does not know fails the comparison.
type ambPolicy struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Scope     string `json:"scope"`
	Action    string `json:"action"`
	DryRun    bool   `json:"dryRun"`
	Groups    []struct {
		Rules []struct {
			Matches []ambMatch `json:"matches"`
		} `json:"rules"`
	} `json:"groups"`
}

type ambMatch struct {
	Namespaces          []ambString  `json:"namespaces"`
	NotNamespaces       []ambString  `json:"notNamespaces"`
	ServiceAccounts     []ambSA      `json:"serviceAccounts"`
	NotServiceAccounts  []ambSA      `json:"notServiceAccounts"`
	Principals          []ambString  `json:"principals"`
	NotPrincipals       []ambString  `json:"notPrincipals"`
	SourceIps           []ambAddress `json:"sourceIps"`
	NotSourceIps        []ambAddress `json:"notSourceIps"`
	DestinationIps      []ambAddress `json:"destinationIps"`
	NotDestinationIps   []ambAddress `json:"notDestinationIps"`
	DestinationPorts    []uint32     `json:"destinationPorts"`
	NotDestinationPorts []uint32     `json:"notDestinationPorts"`
}

type ambString struct {
	Exact    *string          `json:"exact"`
	Prefix   *string          `json:"prefix"`
	Suffix   *string          `json:"suffix"`
	Presence *json.RawMessage `json:"presence"`
}

type ambSA struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
}

type ambAddress struct {
	Address []byte `json:"address"`
	Length  uint32 `json:"length"`
}

// parseAmbientz decodes ambientz and its policies in normal form.
func parseAmbientz(data []byte) (ambientz, []ztPolicy, error) {
	var z ambientz
	if err := json.Unmarshal(data, &z); err != nil {
		return z, nil, err
	}
	var out []ztPolicy
	for _, raw := range z.Policies {
		var ap ambPolicy
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ap); err != nil {
			return z, nil, fmt.Errorf("policy %s: %w", raw, err)
		}
		p, err := ap.normal()
		if err != nil {
			return z, nil, err
		}
		out = append(out, p)
	}
	return z, out, nil
}

func (a ambPolicy) normal() (ztPolicy, error) {
	p := ztPolicy{Namespace: a.Namespace, Name: a.Name, Scope: a.Scope, Action: a.Action, DryRun: a.DryRun}
	if p.Scope == "" {
		p.Scope = "GLOBAL"
	}
	if p.Action == "" {
		p.Action = "ALLOW"
	}
	for _, g := range a.Groups {
		zg := ztGroup{Clauses: []ztClause{}}
		for _, r := range g.Rules {
			var c ztClause
			for _, m := range r.Matches {
				zm, err := m.normal()
				if err != nil {
					return p, fmt.Errorf("%s: %w", p.key(), err)
				}
				c.Matches = append(c.Matches, zm)
			}
			zg.Clauses = append(zg.Clauses, c)
		}
		p.Groups = append(p.Groups, zg)
	}
	return p.normalize(), nil
}

func (m ambMatch) normal() (ztMatch, error) {
	var err error
	strs := func(in []ambString) []string {
		var out []string
		for _, s := range in {
			v, e := s.text()
			if e != nil {
				err = e
			}
			out = append(out, v)
		}
		return out
	}
	sas := func(in []ambSA) []string {
		var out []string
		for _, s := range in {
			out = append(out, s.Namespace+"/"+s.ServiceAccount)
		}
		return out
	}
	addrs := func(in []ambAddress) []string {
		var out []string
		for _, a := range in {
			ip, ok := netip.AddrFromSlice(a.Address)
			if !ok || int(a.Length) > ip.BitLen() {
				err = fmt.Errorf("address %v/%d is not a CIDR", a.Address, a.Length)
				continue
			}
			out = append(out, netip.PrefixFrom(ip, int(a.Length)).String())
		}
		return out
	}
	ports := func(in []uint32) []string {
		var out []string
		for _, p := range in {
			out = append(out, strconv.FormatUint(uint64(p), 10))
		}
		return out
	}
	zm := ztMatch{
		Namespaces: strs(m.Namespaces), NotNamespaces: strs(m.NotNamespaces),
		Principals: strs(m.Principals), NotPrincipals: strs(m.NotPrincipals),
		ServiceAccounts: sas(m.ServiceAccounts), NotServiceAccounts: sas(m.NotServiceAccounts),
		SourceIPs: addrs(m.SourceIps), NotSourceIPs: addrs(m.NotSourceIps),
		DestinationIPs: addrs(m.DestinationIps), NotDestinationIPs: addrs(m.NotDestinationIps),
		DestinationPorts: ports(m.DestinationPorts), NotDestPorts: ports(m.NotDestinationPorts),
	}
	return zm, err
}

// text writes a string match in AuthorizationPolicy syntax. An exact
// value that this syntax would read as a wildcard is written exact:<v>.
func (s ambString) text() (string, error) {
	switch {
	case s.Presence != nil:
		return "*", nil
	case s.Prefix != nil:
		return *s.Prefix + "*", nil
	case s.Suffix != nil:
		return "*" + *s.Suffix, nil
	case s.Exact != nil:
		if strings.HasPrefix(*s.Exact, "*") || strings.HasSuffix(*s.Exact, "*") {
			return "exact:" + *s.Exact, nil
		}
		return *s.Exact, nil
	}
	return "", fmt.Errorf("string match without a match type")
}

// workloadIP is the address of an ambientz workload (written as text).
func (w ambWorkload) ips() []string {
	var out []string
	for _, a := range w.Addresses {
		out = append(out, string(a))
	}
	return out
}

// rowsOf names the rows of the translation contract that policies use, as
// ztunnel sees them.
func rowsOf(policies []*securityv1.AuthorizationPolicy) map[string]bool {
	rows := map[string]bool{}
	for _, ap := range policies {
		if ap.Annotations[annotationDryRun] == "true" {
			rows["dry-run"] = true
		}
		if ap.Spec.Selector == nil {
			rows["namespace scope"] = true
		}
		if len(ap.Spec.Rules) == 0 {
			rows["deny-all (no rules)"] = true
		}
		for _, r := range ap.Spec.Rules {
			switch {
			case len(r.From) == 0 && len(r.To) == 0:
				rows["allow-all (one empty rule)"] = true
			case len(r.From) == 0:
				rows["rule without from"] = true
			case len(r.To) == 0:
				rows["rule without to"] = true
			}
			for _, to := range r.To {
				if len(to.GetOperation().GetPorts()) > 1 {
					rows["port list"] = true
				}
			}
			for _, f := range r.From {
				s := f.GetSource()
				if len(s.GetPrincipals()) > 0 {
					rows["principals"] = true
				}
				for _, ns := range s.GetNamespaces() {
					rows["namespaces"] = true
					if ns == "*" {
						rows[`namespaces ["*"]`] = true
					}
				}
				if len(s.GetNotIpBlocks()) > 0 {
					rows["ipBlocks with excepts"] = true
				}
				for _, b := range s.GetIpBlocks() {
					rows["ipBlocks"] = true
					if strings.Contains(b, ":") {
						rows["IPv6"] = true
					}
				}
			}
		}
	}
	return rows
}
