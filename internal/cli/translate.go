// Package cli holds the netpol2authz subcommands that run without a cluster.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// Exit codes of RunTranslate.
const (
	ExitOK       = 0
	ExitBadInput = 1 // input could not be read or decoded, or output not written
	ExitUsage    = 2
	ExitFindings = 3 // --fail-on matched; output and report were written
)

// DefaultTrustDomain is Istio's default trust domain.
const DefaultTrustDomain = translate.DefaultTrustDomain

const translateUsage = `Usage: netpol2authz translate -f PATH [-f PATH...] [flags]

Translate Kubernetes NetworkPolicies into Istio AuthorizationPolicies whose
sources are ServiceAccount principals, offline. PATH is a file, a directory
(walked for .yaml, .yml and .json files) or - for standard input; manifests
may be multi-document YAML, JSON, or Lists as printed by kubectl get -o yaml.
The AuthorizationPolicies go to standard output, ready for kubectl apply -f -;
the report goes to standard error unless --report names a file.

Exit codes: 0 done; 1 bad input; 2 usage; 3 findings at or above --fail-on.

Flags:
`

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// choice is a flag whose value is one of a fixed set.
type choice struct {
	value   string
	allowed []string
}

func (c *choice) String() string { return c.value }
func (c *choice) Set(v string) error {
	for _, a := range c.allowed {
		if v == a {
			c.value = v
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(c.allowed, ", "))
}

type translateConfig struct {
	files stringList
	translationFlags
	output       choice
	report       string
	reportFormat choice
	failOn       choice
	set          map[string]bool
}

// translationFlags say how to translate; translate and verify share them.
type translationFlags struct {
	mode           choice
	fidelity       choice
	identity       choice
	trustDomain    string
	rootNamespace  string
	istioNamespace string
	maxPortRange   int
}

func newTranslationFlags() translationFlags {
	return translationFlags{
		mode:     choice{value: string(translate.ModeEnforce), allowed: []string{string(translate.ModeEnforce), string(translate.ModeDryRun)}},
		fidelity: choice{value: string(translate.FidelityPermissive), allowed: []string{string(translate.FidelityPermissive), string(translate.FidelityStrict)}},
		// review, as the operator: offline there is no history, so
		// without IdentityApprovals in the input every NetworkPolicy is at
		// its first translation and review gives what follow gives; with
		// the IdentityApprovals kept in Git, CI reports the identities
		// pending there, as the operator would.
		identity: choice{value: string(translate.IdentityReview), allowed: []string{string(translate.IdentityReview), string(translate.IdentityFollow)}},
	}
}

// options are the engine's options offline: every NetworkPolicy is
// translated, with the flags as defaults that namespace annotations override.
func (t *translationFlags) options() translate.Options {
	return translate.Options{
		DefaultMode:     translate.Mode(t.mode.value),
		DefaultFidelity: translate.Fidelity(t.fidelity.value),
		DefaultIdentity: translate.IdentityMode(t.identity.value),
		MaxPortRange:    t.maxPortRange,
	}
}

func (t *translationFlags) register(fs *flag.FlagSet) {
	fs.Var(&t.mode, "mode", "mode where a namespace has no netpol2authz.io/mode annotation")
	fs.Var(&t.fidelity, "fidelity", "fidelity where a namespace has no netpol2authz.io/fidelity annotation")
	fs.Var(&t.identity, "identity", "identity mode where a namespace has no netpol2authz.io/identity annotation. "+
		"review leaves out the identities that the IdentityApproval of a NetworkPolicy in the input does not list, and reports them IdentityPending, "+
		"as the operator does; offline there is no history, so a NetworkPolicy without IdentityApproval is at its first translation "+
		"and review gives what follow gives")
	fs.StringVar(&t.trustDomain, "trust-domain", "", "trust domain; default: trustDomain of the mesh ConfigMap, else "+DefaultTrustDomain)
	fs.StringVar(&t.rootNamespace, "root-namespace", "", "Istio root namespace; default: rootNamespace of the mesh ConfigMap, else --istio-namespace")
	fs.StringVar(&t.istioNamespace, "istio-namespace", manifest.DefaultIstioNamespace, "Istio control-plane namespace, which holds the mesh ConfigMap istio")
	fs.IntVar(&t.maxPortRange, "max-port-range", translate.DefaultMaxPortRange, "most ports the port/endPort ranges of one rule may expand to")
}

func newTranslateFlags(stderr io.Writer) (*flag.FlagSet, *translateConfig) {
	c := &translateConfig{
		translationFlags: newTranslationFlags(),
		output:           choice{value: "yaml", allowed: []string{"yaml", "json"}},
		reportFormat:     choice{value: "text", allowed: []string{"text", "json"}},
		failOn:           choice{value: "none", allowed: []string{"none", "warning", "error"}},
	}
	fs := flag.NewFlagSet("netpol2authz translate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr, fs) }
	fs.Var(&c.files, "f", "manifest file, directory, or - for standard input (repeatable, required)")
	fs.Var(&c.files, "filename", "")
	c.translationFlags.register(fs)
	fs.Var(&c.output, "o", "output format of the AuthorizationPolicies")
	fs.Var(&c.output, "output", "")
	fs.StringVar(&c.report, "report", "", "write the report to this file instead of standard error")
	fs.Var(&c.reportFormat, "report-format", "format of the report")
	fs.Var(&c.failOn, "fail-on", "exit 3 when there are findings of at least this severity")
	return fs, c
}

// translateHelp orders the flags in the usage text and names their
// arguments; alias is the long form of a one-letter flag.
var translateHelp = []struct{ name, alias, arg string }{
	{"f", "filename", "PATH"},
	{"o", "output", "yaml|json"},
	{"mode", "", "enforce|dry-run"},
	{"fidelity", "", "permissive|strict"},
	{"identity", "", "review|follow"},
	{"trust-domain", "", "DOMAIN"},
	{"root-namespace", "", "NAMESPACE"},
	{"istio-namespace", "", "NAMESPACE"},
	{"max-port-range", "", "N"},
	{"report", "", "FILE"},
	{"report-format", "", "text|json"},
	{"fail-on", "", "none|warning|error"},
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	printFlagUsage(w, fs, translateUsage, translateHelp)
}

// printFlagUsage writes header, then the flags in the order of help.
func printFlagUsage(w io.Writer, fs *flag.FlagSet, header string, help []struct{ name, alias, arg string }) {
	var b strings.Builder
	b.WriteString(header)
	const width = 36
	for _, h := range help {
		f := fs.Lookup(h.name)
		left := "      --" + h.name + " " + h.arg
		if h.alias != "" {
			left = "  -" + h.name + ", --" + h.alias + " " + h.arg
		}
		left = strings.TrimRight(left, " ")
		usage := f.Usage
		if f.DefValue != "" && f.DefValue != "[]" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		// Long help wraps under itself.
		usage = strings.Join(wrap(usage, reportWidth-width), "\n"+strings.Repeat(" ", width))
		if len(left) >= width {
			fmt.Fprintf(&b, "%s\n%s%s\n", left, strings.Repeat(" ", width), usage)
		} else {
			fmt.Fprintf(&b, "%-*s%s\n", width, left, usage)
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// usageError is a usage problem found after the flag package parsed the
// arguments (which reports its own).
type usageError struct{ error }

// parse reads the arguments. It returns flag.ErrHelp, an error the flag
// package has already printed, or a usageError.
func (c *translateConfig) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return usageError{err}
	}
	return nil
}

func (c *translateConfig) check(fs *flag.FlagSet) error {
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q: inputs are given with -f", fs.Arg(0))
	case len(c.files) == 0:
		return errors.New("at least one -f is required")
	case c.maxPortRange < 1:
		return fmt.Errorf("invalid value %d for flag -max-port-range: must be at least 1", c.maxPortRange)
	case c.set["trust-domain"] && c.trustDomain == "":
		return errors.New("flag -trust-domain must not be empty")
	case c.set["root-namespace"] && c.rootNamespace == "":
		return errors.New("flag -root-namespace must not be empty")
	case c.istioNamespace == "":
		return errors.New("flag -istio-namespace must not be empty")
	}
	stdin := 0
	for _, f := range c.files {
		if f == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return errors.New("-f - (standard input) may be given only once")
	}
	return nil
}

// usageExit returns the exit code for an error of flag parsing: 0 for -h,
// else 2, after printing our own usage errors with the usage (the flag
// package has already printed its own).
func usageExit(fs *flag.FlagSet, stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%v\n", ue.error)
		fs.Usage()
	}
	return ExitUsage
}

// RunTranslate runs `netpol2authz translate ARGS...` (args exclude the word
// translate) and returns the process exit code.
func RunTranslate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, c := newTranslateFlags(stderr)
	if err := c.parse(fs, args); err != nil {
		return usageExit(fs, stderr, err)
	}

	loaded, err := manifest.Load(c.files, manifest.Options{IstioNamespace: c.istioNamespace, Stdin: stdin})
	if err != nil {
		printLoadError(stderr, err)
		return ExitBadInput
	}

	snap := loaded.Snapshot
	mesh := c.meshSettings(loaded)
	snap.Mesh = translate.MeshSettings{TrustDomain: mesh.TrustDomain, RootNamespace: mesh.RootNamespace}
	result := translate.Translate(snap, c.options())

	var out bytes.Buffer
	if err := writePolicies(&out, result, c.output.value); err != nil {
		fmt.Fprintf(stderr, "error: rendering the AuthorizationPolicies: %v\n", err)
		return ExitBadInput
	}
	rep := buildReport(loaded, mesh, result)
	repOut, err := render(rep, c.reportFormat.value)
	if err != nil {
		fmt.Fprintf(stderr, "error: rendering the report: %v\n", err)
		return ExitBadInput
	}

	if _, err := stdout.Write(out.Bytes()); err != nil {
		fmt.Fprintf(stderr, "error: writing the output: %v\n", err)
		return ExitBadInput
	}
	if c.report != "" {
		if err := os.WriteFile(c.report, repOut, 0o644); err != nil {
			fmt.Fprintf(stderr, "error: writing the report: %v\n", err)
			return ExitBadInput
		}
	} else if _, err := stderr.Write(repOut); err != nil {
		return ExitBadInput
	}

	if failOn(c.failOn.value, rep.Summary.Findings) {
		return ExitFindings
	}
	return ExitOK
}

// meshReport is the mesh settings used and where each came from.
type meshReport struct {
	TrustDomain         string `json:"trustDomain"`
	TrustDomainSource   string `json:"trustDomainSource"`
	RootNamespace       string `json:"rootNamespace"`
	RootNamespaceSource string `json:"rootNamespaceSource"`
	IstioNamespace      string `json:"istioNamespace"`
	// MeshConfig names where the mesh ConfigMap was read; empty when it was
	// not in the input.
	MeshConfig string `json:"meshConfig,omitempty"`
}

// printLoadError writes every problem of a failed manifest load.
func printLoadError(stderr io.Writer, err error) {
	fmt.Fprintf(stderr, "error: cannot read the input:\n")
	var errs manifest.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintf(stderr, "  %v\n", e)
		}
	} else {
		fmt.Fprintf(stderr, "  %v\n", err)
	}
}

// meshFlags are the mesh settings given on the command line.
type meshFlags struct {
	trustDomain, rootNamespace, istioNamespace string
	set                                        map[string]bool
}

// meshSettings applies the precedence flag > mesh ConfigMap > default.
func (c *translateConfig) meshSettings(loaded *manifest.Result) meshReport {
	return meshFlags{c.trustDomain, c.rootNamespace, c.istioNamespace, c.set}.resolve(loaded.Mesh)
}

// resolve applies the operator's precedence (translate.ResolveMesh); flags
// given empty are refused before.
func (c meshFlags) resolve(mc manifest.MeshConfig) meshReport {
	var flags translate.MeshOverrides
	if c.set["trust-domain"] {
		flags.TrustDomain = c.trustDomain
	}
	if c.set["root-namespace"] {
		flags.RootNamespace = c.rootNamespace
	}
	flags.IstioNamespace = c.istioNamespace
	r := translate.ResolveMesh(flags, translate.MeshConfig{TrustDomain: mc.TrustDomain, RootNamespace: mc.RootNamespace})
	return meshReport{
		TrustDomain: r.TrustDomain, TrustDomainSource: string(r.TrustDomainSource),
		RootNamespace: r.RootNamespace, RootNamespaceSource: string(r.RootNamespaceSource),
		IstioNamespace: c.istioNamespace, MeshConfig: mc.Origin,
	}
}

func failOn(level string, n findingCounts) bool {
	switch level {
	case "warning":
		return n.Warning+n.Error > 0
	case "error":
		return n.Error > 0
	}
	return false
}
