package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// ReportVersion is the version of the JSON report. It changes when a field
// changes meaning or disappears; new fields may appear without a change.
const ReportVersion = 1

// TranslateReport is the JSON report of `netpol2authz translate
// --report-format json`. Lists are never null, maps never null.
type TranslateReport struct {
	// Version is ReportVersion.
	Version int `json:"version"`
	// Summary counts the input and the result.
	Summary reportSummary `json:"summary"`
	// NetworkPolicies has one entry per NetworkPolicy read, sorted by
	// namespace and name.
	NetworkPolicies []policyReport `json:"networkPolicies"`
}

type reportSummary struct {
	// Files and Documents read (empty documents not counted; a List is one
	// document).
	Files     int `json:"files"`
	Documents int `json:"documents"`
	// Objects read, by kind.
	Objects map[string]int `json:"objects"`
	// Skipped objects of kinds not read, by apiVersion/kind.
	Skipped map[string]int `json:"skipped"`
	// WorkloadTemplates: workloads whose pod template stands for their
	// pods. WorkloadsCovered: workloads not expanded because their pods or
	// their controlling workload are in the input.
	WorkloadTemplates int `json:"workloadTemplates"`
	WorkloadsCovered  int `json:"workloadsCovered"`
	// NamespacesByNameOnly: namespaces referenced but not in the input; the
	// engine knows only their kubernetes.io/metadata.name label.
	NamespacesByNameOnly []string   `json:"namespacesByNameOnly"`
	Mesh                 meshReport `json:"mesh"`
	// NetworkPolicies read, Translated (the others were skipped: root
	// namespace, invalid annotation), AuthorizationPolicies generated.
	NetworkPolicies       int           `json:"networkPolicies"`
	Translated            int           `json:"translated"`
	AuthorizationPolicies int           `json:"authorizationPolicies"`
	Findings              findingCounts `json:"findings"`
	// PendingIdentities counts the identities left out pending review
	// (IdentityPending findings), over every NetworkPolicy.
	PendingIdentities int `json:"pendingIdentities"`
}

type findingCounts struct {
	Error   int `json:"error"`
	Warning int `json:"warning"`
	Info    int `json:"info"`
}

type policyReport struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Translated bool   `json:"translated"`
	// Mode, Fidelity and Identity (review or follow) applied; empty when
	// not translated.
	Mode     string `json:"mode,omitempty"`
	Fidelity string `json:"fidelity,omitempty"`
	Identity string `json:"identity,omitempty"`
	// PendingIdentities are the identities its selectors resolve that its
	// IdentityApproval does not list: left out of the generated policies.
	PendingIdentities []string `json:"pendingIdentities"`
	// AuthorizationPolicies generated (names, in the same namespace).
	AuthorizationPolicies []string        `json:"authorizationPolicies"`
	Principals            int             `json:"principals"`
	Rules                 int             `json:"rules"`
	Findings              []findingReport `json:"findings"`
}

type findingReport struct {
	Type     string         `json:"type"`
	Severity string         `json:"severity"`
	Message  string         `json:"message"`
	Objects  []objectReport `json:"objects"`
}

type objectReport struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func buildReport(loaded *manifest.Result, mesh meshReport, r translate.Result) TranslateReport {
	st := loaded.Stats
	rep := TranslateReport{
		Version: ReportVersion,
		Summary: reportSummary{
			Files:                st.Files,
			Documents:            st.Documents,
			Objects:              nonNilMap(st.Objects),
			Skipped:              nonNilMap(st.Skipped),
			WorkloadTemplates:    st.Templates,
			WorkloadsCovered:     st.WorkloadsCovered,
			NamespacesByNameOnly: nonNil(st.PartialNamespaces),
			Mesh:                 mesh,
			NetworkPolicies:      len(r.Translations),
		},
		NetworkPolicies: []policyReport{},
	}
	for _, t := range r.Translations {
		pr := policyReport{
			Namespace:             t.NetworkPolicy.Namespace,
			Name:                  t.NetworkPolicy.Name,
			Translated:            t.Action == translate.ActionApply,
			AuthorizationPolicies: []string{},
			Principals:            t.Principals,
			Rules:                 t.Rules,
			PendingIdentities:     []string{},
			Findings:              []findingReport{},
		}
		if t.Action == translate.ActionApply {
			rep.Summary.Translated++
			pr.Mode, pr.Fidelity, pr.Identity = string(t.Mode), string(t.Fidelity), string(t.Identity)
		}
		for _, p := range t.Pending {
			pr.PendingIdentities = append(pr.PendingIdentities, string(p.Identity))
		}
		rep.Summary.PendingIdentities += len(t.Pending)
		for _, ap := range t.Policies {
			pr.AuthorizationPolicies = append(pr.AuthorizationPolicies, ap.Name)
			rep.Summary.AuthorizationPolicies++
		}
		for _, f := range t.Findings {
			fr := findingReport{Type: string(f.Type), Severity: string(f.Severity), Message: f.Message, Objects: []objectReport{}}
			for _, o := range f.Objects {
				fr.Objects = append(fr.Objects, objectReport(o))
			}
			pr.Findings = append(pr.Findings, fr)
			switch f.Severity {
			case translate.SeverityError:
				rep.Summary.Findings.Error++
			case translate.SeverityWarning:
				rep.Summary.Findings.Warning++
			default:
				rep.Summary.Findings.Info++
			}
		}
		rep.NetworkPolicies = append(rep.NetworkPolicies, pr)
	}
	return rep
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

// report is what translate and verify print about a run.
type report interface {
	writeJSON(w io.Writer) error
	writeText(w io.Writer) error
}

// render writes rep in format, json or text.
func render(rep report, format string) ([]byte, error) {
	var b bytes.Buffer
	var err error
	if format == "json" {
		err = rep.writeJSON(&b)
	} else {
		err = rep.writeText(&b)
	}
	return b.Bytes(), err
}

func (rep TranslateReport) writeJSON(w io.Writer) error {
	out, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// writeText writes the report for a person at a terminal: a summary, then
// one block per NetworkPolicy. No colours, so it reads the same in a file.
func (rep TranslateReport) writeText(w io.Writer) error {
	var b strings.Builder
	s := rep.Summary
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	b.WriteString("netpol2authz translate\n")
	line("Input", "%s, %s", plural(s.Files, "file"), plural(s.Documents, "document"))
	line("Read", "%s", counts(s.Objects))
	line("Skipped", "%s", counts(s.Skipped))
	line("Workloads", "%s expanded into pods; %d skipped (their pods or controller are in the input)",
		plural(s.WorkloadTemplates, "pod template"), s.WorkloadsCovered)
	if len(s.NamespacesByNameOnly) > 0 {
		line("Namespaces", "known by name only: %s", strings.Join(s.NamespacesByNameOnly, ", "))
	}
	line("Mesh", "trust domain %s (%s), root namespace %s (%s)",
		s.Mesh.TrustDomain, s.Mesh.TrustDomainSource, s.Mesh.RootNamespace, s.Mesh.RootNamespaceSource)
	line("Result", "%s, %d translated, %s generated",
		plural(s.NetworkPolicies, "NetworkPolicy"), s.Translated, plural(s.AuthorizationPolicies, "AuthorizationPolicy"))
	line("Findings", "%s, %s, %d info", plural(s.Findings.Error, "error"), plural(s.Findings.Warning, "warning"), s.Findings.Info)
	if s.PendingIdentities > 0 {
		line("Pending", "%s left out until approved (IdentityPending)", plural(s.PendingIdentities, "identity"))
	}

	typeWidth := 0
	for _, p := range rep.NetworkPolicies {
		for _, f := range p.Findings {
			typeWidth = max(typeWidth, len(f.Type))
		}
	}
	for _, p := range rep.NetworkPolicies {
		fmt.Fprintf(&b, "\nNetworkPolicy %s/%s", p.Namespace, p.Name)
		if p.Translated {
			fmt.Fprintf(&b, "  (%s, %s)\n", p.Mode, p.Fidelity)
			names := "none"
			if len(p.AuthorizationPolicies) > 0 {
				names = strings.Join(p.AuthorizationPolicies, ", ")
			}
			fmt.Fprintf(&b, "  generated: %s\n", names)
			if len(p.PendingIdentities) > 0 {
				fmt.Fprintf(&b, "  pending:   %s\n", strings.Join(p.PendingIdentities, ", "))
			}
		} else {
			b.WriteString("  (not translated)\n")
		}
		indent := 2 + 7 + 2 + typeWidth + 2
		for _, f := range p.Findings {
			msg := strings.Join(wrap(f.Message, max(reportWidth-indent, 40)), "\n"+strings.Repeat(" ", indent))
			fmt.Fprintf(&b, "  %-7s  %-*s  %s\n", f.Severity, typeWidth, f.Type, msg)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// reportWidth is the width the text report wraps finding messages at.
const reportWidth = 100

// wrap breaks text into lines of at most width characters, at spaces; a
// longer word gets a line of its own.
func wrap(text string, width int) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			switch {
			case line == "":
				line = word
			case len(line)+1+len(word) <= width:
				line += " " + word
			default:
				lines = append(lines, line)
				line = word
			}
		}
		lines = append(lines, line)
	}
	return lines
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	switch {
	case strings.HasSuffix(word, "y"):
		word = strings.TrimSuffix(word, "y") + "ies"
	default:
		word += "s"
	}
	return fmt.Sprintf("%d %s", n, word)
}

// counts renders a map of counts as "A 1, B 2", sorted by key.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
