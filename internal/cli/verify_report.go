package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/verify"
)

// VerifyReportVersion is the version of the JSON report of verify. It
// changes when a field changes meaning or disappears; new fields may appear
// without a change.
const VerifyReportVersion = 1

// VerifyReport is the report of `netpol2authz verify`, as `-o json` prints
// it. Lists are never null.
type VerifyReport struct {
	// Version is VerifyReportVersion.
	Version int         `json:"version"`
	Input   inputReport `json:"input"`
	// Checked is "generated" (the policies netpol2authz would generate) or
	// "existing" (those in the input or the cluster).
	Checked string     `json:"checked"`
	Mesh    meshReport `json:"mesh"`
	// IPBlockPods is how NetworkPolicy ipBlocks were read for pod
	// addresses: unknown (both ways), match, no-match.
	IPBlockPods string `json:"ipBlockPods"`
	// Namespaces limits the destinations checked; empty means all.
	Namespaces  []string           `json:"namespaces"`
	Summary     verifySummary      `json:"summary"`
	Differences []differenceReport `json:"differences"`
	Notes       []verify.Note      `json:"notes"`
}

type inputReport struct {
	// Source is "files" or "cluster".
	Source    string `json:"source"`
	Files     int    `json:"files,omitempty"`
	Documents int    `json:"documents,omitempty"`
	// Server and Context name the cluster read.
	Server  string `json:"server,omitempty"`
	Context string `json:"context,omitempty"`
}

type verifySummary struct {
	Pods               int `json:"pods"`
	SourceClasses      int `json:"sourceClasses"`
	DestinationClasses int `json:"destinationClasses"`
	// ExternalSources are the ranges of addresses outside the cluster
	// evaluated as sources.
	ExternalSources     int `json:"externalSources"`
	DestinationsChecked int `json:"destinationClassesChecked"`
	NetworkPolicies     int `json:"networkPolicies"`
	// AuthorizationPolicies checked; NotChecked were in the input but not
	// checked (without --existing).
	AuthorizationPolicies  int   `json:"authorizationPolicies"`
	NotChecked             int   `json:"authorizationPoliciesNotChecked"`
	Unexplained            int   `json:"unexplained"`
	Explained              int   `json:"explained"`
	UnexplainedConnections int64 `json:"unexplainedConnections"`
	ExplainedConnections   int64 `json:"explainedConnections"`
}

type differenceReport struct {
	Explained bool `json:"explained"`
	// Direction is IstioAllowsMore or IstioDeniesMore.
	Direction string `json:"direction"`
	// DryRun: the Istio verdict depends on dry-run policies.
	DryRun bool `json:"dryRun"`
	// Deviates (--existing): the generated policies would decide these
	// connections differently.
	Deviates bool `json:"deviates"`
	// Ports are TCP ports and ranges ("5432", "8080-8090").
	Ports        []string      `json:"ports"`
	Destinations verify.PodSet `json:"destinations"`
	Sources      verify.PodSet `json:"sources"`
	// Connections: source pods times destination pods.
	Connections           int64              `json:"connections"`
	Explanation           *explanationReport `json:"explanation"`
	NetworkPolicies       []verify.PolicyRef `json:"networkPolicies"`
	AuthorizationPolicies []verify.PolicyRef `json:"authorizationPolicies"`
	// Waypoints some of these connections pass; absent when none.
	Waypoints []verify.WaypointPath `json:"waypoints,omitempty"`
}

type explanationReport struct {
	Type string `json:"type"`
	// By is "translation" (a finding) or "verify".
	By            string         `json:"by"`
	NetworkPolicy string         `json:"networkPolicy,omitempty"`
	Severity      string         `json:"severity"`
	Message       string         `json:"message"`
	Objects       []objectReport `json:"objects"`
}

func buildVerifyReport(c *verifyConfig, in inputReport, mesh meshReport, loaded *manifest.Result, r verify.Result) VerifyReport {
	rep := VerifyReport{
		Version:     VerifyReportVersion,
		Input:       in,
		Checked:     "generated",
		Mesh:        mesh,
		IPBlockPods: c.ipBlockPods.value,
		Namespaces:  nonNil(slices.Clone([]string(c.namespaces))),
		Summary: verifySummary{
			Pods: r.Stats.Pods, SourceClasses: r.Stats.SourceClasses, DestinationClasses: r.Stats.DestinationClasses,
			ExternalSources:     r.Stats.ExternalSources,
			DestinationsChecked: r.Stats.DestinationsChecked, NetworkPolicies: r.Stats.NetworkPolicies,
			AuthorizationPolicies: r.Stats.AuthorizationPolicies,
			Unexplained:           r.Stats.Unexplained, Explained: r.Stats.Explained,
			UnexplainedConnections: r.Stats.UnexplainedConnections, ExplainedConnections: r.Stats.ExplainedConnections,
		},
		Differences: []differenceReport{},
		Notes:       nonNil(r.Notes),
	}
	if c.existing {
		rep.Checked = "existing"
	} else {
		rep.Summary.NotChecked = len(loaded.AuthorizationPolicies)
	}
	for _, d := range r.Differences {
		dr := differenceReport{
			Explained: d.Explained, Direction: string(d.Direction), DryRun: d.DryRun, Deviates: d.Deviates,
			Destinations: d.Destinations, Sources: d.Sources, Connections: d.Connections,
			NetworkPolicies: nonNil(d.NetworkPolicies), AuthorizationPolicies: nonNil(d.AuthorizationPolicies),
			Waypoints: d.Waypoints,
		}
		for _, p := range d.Ports {
			dr.Ports = append(dr.Ports, p.String())
		}
		if x := d.Explanation; x != nil {
			dr.Explanation = &explanationReport{Type: x.Type, By: x.By, NetworkPolicy: x.NetworkPolicy, Severity: x.Severity, Message: x.Message, Objects: []objectReport{}}
			for _, o := range x.Objects {
				dr.Explanation.Objects = append(dr.Explanation.Objects, objectReport(o))
			}
		}
		rep.Differences = append(rep.Differences, dr)
	}
	return rep
}

func (rep VerifyReport) writeJSON(w io.Writer) error {
	out, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// maxNames bounds the pods a text line names.
const maxNames = 8

// writeText writes the report for a person: a summary, the unexplained
// differences under a loud heading, then the explained ones, then notes.
func (rep VerifyReport) writeText(w io.Writer) error {
	var b strings.Builder
	s := rep.Summary
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	b.WriteString("netpol2authz verify\n")
	if rep.Input.Source == "cluster" {
		ctx := ""
		if rep.Input.Context != "" {
			ctx = ", context " + rep.Input.Context
		}
		line("Input", "cluster %s%s", rep.Input.Server, ctx)
	} else {
		line("Input", "%s, %s", plural(rep.Input.Files, "file"), plural(rep.Input.Documents, "document"))
	}
	checked := "the AuthorizationPolicies netpol2authz would generate"
	if rep.Checked == "existing" {
		checked = "the AuthorizationPolicies present (--existing)"
	}
	line("Checked", "%s (%d), against %s", checked, s.AuthorizationPolicies, plural(s.NetworkPolicies, "NetworkPolicy"))
	if s.NotChecked > 0 {
		where := "the input"
		if rep.Input.Source == "cluster" {
			where = "the cluster"
		}
		line("Not checked", "%s in %s; use --existing to check them", plural(s.NotChecked, "AuthorizationPolicy"), where)
	}
	line("Mesh", "trust domain %s (%s), root namespace %s (%s)",
		rep.Mesh.TrustDomain, rep.Mesh.TrustDomainSource, rep.Mesh.RootNamespace, rep.Mesh.RootNamespaceSource)
	scope := "every namespace"
	switch len(rep.Namespaces) {
	case 0:
	case 1:
		scope = "namespace " + rep.Namespaces[0]
	default:
		scope = "namespaces " + strings.Join(rep.Namespaces, ", ")
	}
	line("Scope", "TCP between %s and from %s outside the cluster; destinations in %s; %d source and %d destination classes; ipBlock on pod addresses: %s",
		plural(s.Pods, "pod"), plural(s.ExternalSources, "address range"), scope, s.SourceClasses, s.DestinationClasses, rep.IPBlockPods)
	switch {
	case s.Unexplained+s.Explained == 0:
		line("Result", "no difference: Istio allows exactly what the NetworkPolicies allow")
	default:
		line("Result", "%s: %d unexplained (%s), %d explained (%s)", plural(s.Unexplained+s.Explained, "difference"),
			s.Unexplained, plural64(s.UnexplainedConnections, "connection"),
			s.Explained, plural64(s.ExplainedConnections, "connection"))
	}

	n := 0
	if s.Unexplained > 0 {
		fmt.Fprintf(&b, "\nUNEXPLAINED DIFFERENCES (%d): no finding says why Istio and the NetworkPolicies disagree here\n", s.Unexplained)
		for _, d := range rep.Differences {
			if !d.Explained {
				n++
				writeDifference(&b, n, d, 0)
			}
		}
	}
	if s.Explained > 0 {
		// Each finding is written once, after the differences it explains.
		var findings []*explanationReport
		index := map[string]int{}
		fmt.Fprintf(&b, "\nExplained differences (%d)\n", s.Explained)
		for _, d := range rep.Differences {
			if !d.Explained {
				continue
			}
			key := d.Explanation.Type + "\x00" + d.Explanation.NetworkPolicy + "\x00" + d.Explanation.Message
			if _, ok := index[key]; !ok {
				findings = append(findings, d.Explanation)
				index[key] = len(findings)
			}
			n++
			writeDifference(&b, n, d, index[key])
		}
		fmt.Fprintf(&b, "\nExplanations (%d)\n", len(findings))
		for i, x := range findings {
			head := x.Type
			if x.NetworkPolicy != "" {
				head += ", NetworkPolicy " + x.NetworkPolicy
			}
			text := fmt.Sprintf("[E%d] %s: %s", i+1, head, x.Message)
			b.WriteString("  " + strings.Join(wrap(text, reportWidth-6), "\n      ") + "\n")
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, note := range rep.Notes {
			text := fmt.Sprintf("%s %s/%s: %s", note.Kind, note.Namespace, note.Name, note.Message)
			b.WriteString("  " + strings.Join(wrap(text, reportWidth-4), "\n    ") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeDifference writes one difference: in full when it is unexplained;
// when explained, in short with a reference to its explanation (ref).
func writeDifference(b *strings.Builder, n int, d differenceReport, ref int) {
	verdict := "Istio allows, NetworkPolicy denies"
	if d.Direction == string(verify.IstioDeniesMore) {
		verdict = "Istio denies, NetworkPolicy allows"
	}
	mark := "  "
	if !d.Explained {
		verdict = strings.ToUpper(verdict)
		mark = "!!"
	}
	const indent, more = "      ", "        "
	field := func(label, text string) {
		b.WriteString(indent + strings.Join(wrap(label+text, reportWidth-len(more)), "\n"+more) + "\n")
	}
	fmt.Fprintf(b, "\n%s[%d] %s: %s\n", mark, n, verdict, portsText(d.Ports))
	field("to   ", podSetText(d.Destinations))
	field("from ", podSetText(d.Sources))
	if x := d.Explanation; x != nil {
		head := fmt.Sprintf("explained by %s [E%d]", x.Type, ref)
		if x.NetworkPolicy != "" {
			head = fmt.Sprintf("explained by %s of NetworkPolicy %s [E%d]", x.Type, x.NetworkPolicy, ref)
		}
		field("", head)
	}
	if d.DryRun {
		field("dry-run: ", "Istio only logs this today; it takes effect when the dry-run policies are enforced")
	}
	if d.Deviates {
		field("deviates: ", "the policies netpol2authz generates would decide this differently")
	}
	for _, w := range d.Waypoints {
		checks := "no policy bound to them: it lets every client through"
		if len(w.Policies) > 0 {
			checks = "checks " + strings.Join(w.Policies, ", ") + " with the client's identity"
		}
		field("waypoint: ", fmt.Sprintf("%s for %s (%s); the pods' ztunnel then sees %s", w.Waypoint, strings.Join(w.Via, ", "), checks, strings.Join(w.Principals, ", ")))
	}
	if d.Explained {
		return
	}
	field("Istio: ", policiesText(d.AuthorizationPolicies, "no AuthorizationPolicy applies"))
	field("NetworkPolicy: ", policiesText(d.NetworkPolicies, "no NetworkPolicy selects these pods"))
}

// portsText renders TCP ports: "TCP 5432", "TCP 8080-8090, 9090", "any TCP
// port", "any TCP port but 5432".
func portsText(ports []string) string {
	if len(ports) == 1 && ports[0] == "1-65535" {
		return "any TCP port"
	}
	// The complement reads better when it is short: "but 5432".
	var gaps []string
	next := 1
	for _, p := range ports {
		first, last, ok := strings.Cut(p, "-")
		if !ok {
			last = first
		}
		f, l := atoi(first), atoi(last)
		if f > next {
			gaps = append(gaps, rangeText(next, f-1))
		}
		next = l + 1
	}
	if next <= 65535 {
		gaps = append(gaps, rangeText(next, 65535))
	}
	if len(gaps) < len(ports) && len(gaps) <= 3 {
		return "any TCP port but " + strings.Join(gaps, ", ")
	}
	if len(ports) <= 6 {
		return "TCP " + strings.Join(ports, ", ")
	}
	return fmt.Sprintf("TCP %s and %d more ranges", strings.Join(ports[:6], ", "), len(ports)-6)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func rangeText(first, last int) string {
	if first == last {
		return fmt.Sprint(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}

// podSetText renders pods grouped by namespace and ServiceAccount, at most
// maxNames names in all: "pods shop/web-1, shop/web-2 (sa web)"; or
// addresses outside the cluster.
func podSetText(s verify.PodSet) string {
	if len(s.Addresses) > 0 {
		return addressesText(s.Addresses)
	}
	var parts []string
	if len(s.AllOf) > 0 {
		word := "namespace"
		if len(s.AllOf) > 1 {
			word = "namespaces"
		}
		parts = append(parts, "every pod of "+word+" "+listNames(s.AllOf, maxNames))
	}
	type group struct {
		ns, sa string
		mesh   bool
		names  []string
	}
	var groups []*group
	named := 0
	for _, p := range s.Pods {
		var g *group
		if n := len(groups); n > 0 && groups[n-1].ns == p.Namespace && groups[n-1].sa == p.ServiceAccount && groups[n-1].mesh == p.InMesh {
			g = groups[n-1]
		} else {
			g = &group{ns: p.Namespace, sa: p.ServiceAccount, mesh: p.InMesh}
			groups = append(groups, g)
		}
		name := p.Namespace + "/" + p.Name
		if p.Workload != "" {
			name = p.Workload
		}
		g.names = append(g.names, name)
	}
	// Pods are sorted by name, so one ServiceAccount may come back: merge.
	merged := map[string]*group{}
	var order []*group
	for _, g := range groups {
		key := fmt.Sprint(g.ns, "/", g.sa, g.mesh)
		if m, ok := merged[key]; ok {
			m.names = append(m.names, g.names...)
			continue
		}
		merged[key] = g
		order = append(order, g)
	}
	left := s.Omitted
	for _, g := range order {
		what := "sa " + g.sa
		if !g.mesh {
			what += ", no mesh identity"
		}
		if named >= maxNames {
			left += len(g.names)
			continue
		}
		shown := g.names[:min(len(g.names), maxNames-named)]
		named += len(shown)
		left += len(g.names) - len(shown)
		parts = append(parts, strings.Join(shown, ", ")+" ("+what+")")
	}
	text := strings.Join(parts, "; ")
	if left > 0 {
		text += fmt.Sprintf(" and %d more", left)
	}
	return plural(s.Count, "pod") + ": " + text
}

// addressesText renders address ranges outside the cluster, at most
// maxNames ranges and maxNames excepts each: "1 address range outside the
// cluster: 0.0.0.0/0 except 10.0.0.0/8".
func addressesText(ranges []verify.AddressRange) string {
	var parts []string
	for _, r := range ranges {
		text := r.CIDR
		if len(r.Except) > 0 {
			text += " except " + listNames(r.Except, maxNames)
		}
		parts = append(parts, text)
	}
	list := strings.Join(parts[:min(len(parts), maxNames)], "; ")
	if len(parts) > maxNames {
		list += fmt.Sprintf(" and %d more", len(parts)-maxNames)
	}
	return plural(len(ranges), "address range") + " outside the cluster: " + list
}

func listNames(names []string, limit int) string {
	if len(names) <= limit {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:limit], ", "), len(names)-limit)
}

// policiesText renders policies with their role, matched ones marked.
func policiesText(refs []verify.PolicyRef, none string) string {
	if len(refs) == 0 {
		return none
	}
	var parts []string
	for _, r := range refs {
		p := fmt.Sprintf("%s/%s (%s", r.Namespace, r.Name, r.Role)
		if r.DryRun {
			p += ", dry-run"
		}
		if r.Matched {
			p += ", matches"
		}
		parts = append(parts, p+")")
	}
	return listNames(parts, maxNames)
}

func plural64(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
