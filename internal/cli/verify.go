package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/translate"
	"github.com/netpol2authz/netpol2authz/internal/verify"
)

// ExitUnexplained: verify found a difference no finding explains.
const ExitUnexplained = 4

const verifyUsage = `Usage: netpol2authz verify -f PATH [-f PATH...] [flags]
       netpol2authz verify --cluster [--kubeconfig FILE] [flags]

Prove which TCP connections to pods, from pods or from outside the cluster,
the AuthorizationPolicies allow or deny that the NetworkPolicies do not, and
explain each difference with the findings of the translation. Addresses
outside the cluster are checked in ranges cut by every CIDR the policies
name. By default the policies netpol2authz would generate are checked; with
--existing, the AuthorizationPolicies already in the input or the cluster
(generated or hand-written). Reading a cluster is read-only: Namespaces,
Pods, NetworkPolicies, AuthorizationPolicies, IdentityApprovals and the mesh
ConfigMap.

The report goes to standard output, unexplained differences first.
Exit codes: 0 every difference explained (or none); 4 some unexplained;
1 bad input or cluster unreachable; 2 usage.

Flags:
`

type verifyConfig struct {
	files       stringList
	cluster     bool
	kubeconfig  string
	kubeContext string
	existing    bool
	namespaces  stringList
	translationFlags
	output      choice
	ipBlockPods choice
	set         map[string]bool
}

func newVerifyFlags(stderr io.Writer) (*flag.FlagSet, *verifyConfig) {
	c := &verifyConfig{
		translationFlags: newTranslationFlags(),
		output:           choice{value: "text", allowed: []string{"text", "json"}},
		ipBlockPods:      choice{value: string(verify.IPBlockPodsUnknown), allowed: []string{string(verify.IPBlockPodsUnknown), string(verify.IPBlockPodsMatch), string(verify.IPBlockPodsNoMatch)}},
	}
	fs := flag.NewFlagSet("netpol2authz verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printFlagUsage(stderr, fs, verifyUsage, verifyHelp) }
	fs.Var(&c.files, "f", "manifest file, directory, or - for standard input (repeatable)")
	fs.Var(&c.files, "filename", "")
	fs.BoolVar(&c.cluster, "cluster", false, "read the cluster of the kubeconfig (KUBECONFIG, ~/.kube/config, or in-cluster) instead of files")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster to read (implies --cluster)")
	fs.StringVar(&c.kubeContext, "context", "", "kubeconfig context to use (implies --cluster)")
	fs.BoolVar(&c.existing, "existing", false, "check the AuthorizationPolicies present, not those netpol2authz would generate")
	fs.Var(&c.namespaces, "n", "check only destinations in this namespace (repeatable)")
	fs.Var(&c.namespaces, "namespace", "")
	c.translationFlags.register(fs)
	fs.Var(&c.output, "o", "format of the report")
	fs.Var(&c.output, "output", "")
	fs.Var(&c.ipBlockPods, "ipblock-pods", "whether your network plugin applies NetworkPolicy ipBlock to pod addresses")
	return fs, c
}

var verifyHelp = []struct{ name, alias, arg string }{
	{"f", "filename", "PATH"},
	{"cluster", "", ""},
	{"kubeconfig", "", "FILE"},
	{"context", "", "NAME"},
	{"existing", "", ""},
	{"n", "namespace", "NAMESPACE"},
	{"o", "output", "text|json"},
	{"mode", "", "enforce|dry-run"},
	{"fidelity", "", "permissive|strict"},
	{"identity", "", "review|follow"},
	{"trust-domain", "", "DOMAIN"},
	{"root-namespace", "", "NAMESPACE"},
	{"istio-namespace", "", "NAMESPACE"},
	{"max-port-range", "", "N"},
	{"ipblock-pods", "", "unknown|match|no-match"},
}

func (c *verifyConfig) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if c.set["kubeconfig"] || c.set["context"] {
		c.cluster = true
	}
	stdin := 0
	for _, f := range c.files {
		if f == "-" {
			stdin++
		}
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q: inputs are given with -f", fs.Arg(0))
	case len(c.files) == 0 && !c.cluster:
		err = errors.New("give -f PATH, or --cluster (or --kubeconfig FILE) to read a cluster")
	case len(c.files) > 0 && c.cluster:
		err = errors.New("-f and --cluster (--kubeconfig, --context) exclude each other")
	case c.set["kubeconfig"] && c.kubeconfig == "":
		err = errors.New("flag -kubeconfig must not be empty")
	case c.maxPortRange < 1:
		err = fmt.Errorf("invalid value %d for flag -max-port-range: must be at least 1", c.maxPortRange)
	case c.set["trust-domain"] && c.trustDomain == "":
		err = errors.New("flag -trust-domain must not be empty")
	case c.set["root-namespace"] && c.rootNamespace == "":
		err = errors.New("flag -root-namespace must not be empty")
	case c.istioNamespace == "":
		err = errors.New("flag -istio-namespace must not be empty")
	case slices.Contains(c.namespaces, ""):
		err = errors.New("flag -namespace must not be empty")
	case stdin > 1:
		err = errors.New("-f - (standard input) may be given only once")
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}

// RunVerify runs `netpol2authz verify ARGS...` (args exclude the word
// verify) and returns the process exit code.
func RunVerify(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, c := newVerifyFlags(stderr)
	if err := c.parse(fs, args); err != nil {
		return usageExit(fs, stderr, err)
	}

	var (
		loaded *manifest.Result
		source inputReport
		err    error
	)
	if c.cluster {
		loaded, source, err = readCluster(c.kubeconfig, c.kubeContext, c.istioNamespace)
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return ExitBadInput
		}
	} else {
		loaded, err = manifest.Load(c.files, manifest.Options{IstioNamespace: c.istioNamespace, Stdin: stdin})
		if err != nil {
			printLoadError(stderr, err)
			return ExitBadInput
		}
		source = inputReport{Source: "files", Files: loaded.Stats.Files, Documents: loaded.Stats.Documents}
	}

	mesh := meshFlags{c.trustDomain, c.rootNamespace, c.istioNamespace, c.set}.resolve(loaded.Mesh)
	snap := loaded.Snapshot
	snap.Mesh = translate.MeshSettings{TrustDomain: mesh.TrustDomain, RootNamespace: mesh.RootNamespace}
	in := verify.Input{
		Snapshot:      snap,
		Translation:   translate.Translate(snap, c.options()),
		CheckExisting: c.existing,
		Existing:      loaded.AuthorizationPolicies,
		Namespaces:    c.namespaces,
		IPBlockPods:   verify.IPBlockPods(c.ipBlockPods.value),
	}
	result := verify.Verify(in)
	out, err := render(buildVerifyReport(c, source, mesh, loaded, result), c.output.value)
	if err != nil {
		fmt.Fprintf(stderr, "error: rendering the report: %v\n", err)
		return ExitBadInput
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "error: writing the report: %v\n", err)
		return ExitBadInput
	}
	if result.Stats.Unexplained > 0 {
		return ExitUnexplained
	}
	return ExitOK
}
