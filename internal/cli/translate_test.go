package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files under test/fixtures/translate")

const fixtureRoot = "../../test/fixtures/translate"

// reportArg in a case's args is replaced by a temporary file whose content
// is compared with report.golden.
const reportArg = "$REPORT"

// goldenCase runs `netpol2authz translate args...` in
// test/fixtures/translate/<name>, whose in/ holds the input. The goldens
// there: stdout.golden; report.golden (standard error when the report goes
// there, else the --report file); stderr.golden for everything else written
// to standard error. The exit code is asserted here, never regenerated.
type goldenCase struct {
	args  []string
	stdin string // file of the case directory fed to standard input
	exit  int
}

var translateCases = map[string]goldenCase{
	// A GitOps tree: Deployments, a StatefulSet, a CronJob, Services, a
	// Secret and a Kustomization (skipped and counted) in subdirectories.
	"gitops": {args: []string{"-f", "in"}, exit: ExitOK},
	// A `kubectl get -o yaml` List of real pods and the mesh ConfigMap.
	"kubectl-list": {args: []string{"-f", "in/dump.yaml"}, exit: ExitOK},
	"stdin":        {args: []string{"-f", "-", "--mode", "dry-run"}, stdin: "in/stdin.yaml", exit: ExitOK},
	// YAML files whose documents are flow-style JSON, and a JSON stream
	// saved as .yaml.
	"flow-style-yaml": {args: []string{"-f", "in"}, exit: ExitOK},
	// The strict checks in flow-style documents, and two JSON objects
	// without a --- between them.
	"flow-style-yaml-broken": {args: []string{"-f", "in"}, exit: ExitBadInput},
	// A demo app's repository: manifests next to a dashboard, test results,
	// a package.json and a Helm chart's Chart.yaml and values.yaml, which are
	// not Kubernetes objects: skipped and named in the report, not findings
	// (--fail-on warning passes).
	"not-manifests": {args: []string{"-f", "in", "--fail-on", "warning"}, exit: ExitOK},
	// A dump whose objects carry a status, "status: {}" on NetworkPolicies.
	"status-in-dump": {args: []string{"-f", "in"}, exit: ExitOK},
	"json-output": {
		args: []string{"-f", "in", "-o", "json", "--report-format", "json", "--report", reportArg, "--trust-domain", "corp.example"},
		exit: ExitOK,
	},
	"broken-input":      {args: []string{"-f", "in"}, exit: ExitBadInput},
	"fail-on-warning":   {args: []string{"-f", "in", "--fail-on", "warning"}, exit: ExitFindings},
	"namespace-unknown": {args: []string{"-f", "in"}, exit: ExitOK},
	"usage-no-input":    {args: []string{"--mode", "enforce"}, exit: ExitUsage},
	"usage-unknown-flag": {
		args: []string{"-f", "in", "--dry-run"},
		exit: ExitUsage,
	},
	// Identity review from Git: db's IdentityApproval lacks the
	// ServiceAccount reporting and the namespace staging that its
	// selectors now resolve; they are left out and reported
	// IdentityPending, which --fail-on warning fails CI on.
	"identity-review": {args: []string{"-f", "in", "--fail-on", "warning"}, exit: ExitFindings},
	// Ambient with a waypoint for the namespace's Services: each
	// NetworkPolicy gets a policy bound to its pods' Service (the clients,
	// on the service port) and the waypoint's principal at ztunnel.
	"waypoint":       {args: []string{"-f", "in"}, exit: ExitOK},
	"waypoint-admin": {args: []string{"-f", "in"}, exit: ExitOK},
	// The same input with --identity follow: every resolved identity is in.
	"identity-follow": {args: []string{"-f", "../identity-review/in", "--fail-on", "warning", "--identity", "follow"}, exit: ExitOK},
	// An IdentityApproval listing what is not an identity, and a short
	// form the API server would reject.
	"identity-approval-invalid": {args: []string{"-f", "in"}, exit: ExitBadInput},
	"usage-bad-value":           {args: []string{"-f", "in", "--fidelity", "exact"}, exit: ExitUsage},
	"usage-positional":          {args: []string{"in"}, exit: ExitUsage},
}

func TestTranslateGolden(t *testing.T) {
	names := make([]string, 0, len(translateCases))
	for name := range translateCases {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		tc := translateCases[name]
		t.Run(name, func(t *testing.T) {
			dir, err := filepath.Abs(filepath.Join(fixtureRoot, name))
			if err != nil {
				t.Fatal(err)
			}
			reportFile := filepath.Join(t.TempDir(), "report")
			args := slices.Clone(tc.args)
			hasReport := false
			for i, a := range args {
				if a == reportArg {
					args[i], hasReport = reportFile, true
				}
			}
			t.Chdir(dir)
			var stdin bytes.Reader
			if tc.stdin != "" {
				data, err := os.ReadFile(tc.stdin)
				if err != nil {
					t.Fatal(err)
				}
				stdin.Reset(data)
			}
			var stdout, stderr bytes.Buffer
			code := RunTranslate(args, &stdin, &stdout, &stderr)
			if code != tc.exit {
				t.Errorf("exit code = %d, want %d\nstderr:\n%s", code, tc.exit, stderr.String())
			}

			golden(t, "stdout.golden", stdout.Bytes())
			switch {
			case hasReport:
				report, err := os.ReadFile(reportFile)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "report.golden", report)
				golden(t, "stderr.golden", stderr.Bytes())
			case code == ExitOK || code == ExitFindings:
				golden(t, "report.golden", stderr.Bytes())
			default:
				golden(t, "stderr.golden", stderr.Bytes())
			}
			if code == ExitBadInput && stdout.Len() > 0 {
				t.Errorf("bad input wrote to stdout:\n%s", stdout.String())
			}
		})
	}
}

// golden compares got with the named file of the current directory, or
// rewrites it under -update. An absent file means empty output.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./internal/cli -update to accept):\n--- want\n%s\n--- got\n%s", name, want, got)
	}
}

// TestTranslateFixturesHaveCases keeps fixture directories and the case
// table in step.
func TestTranslateFixturesHaveCases(t *testing.T) {
	entries, err := os.ReadDir(fixtureRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := translateCases[e.Name()]; e.IsDir() && !ok {
			t.Errorf("fixture %s has no entry in translateCases", e.Name())
		}
	}
}

// TestTranslateDeterministic runs the same input twice, and in another
// file order: the output must be byte-identical.
func TestTranslateDeterministic(t *testing.T) {
	dir := filepath.Join(fixtureRoot, "gitops", "in")
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		if code := RunTranslate(args, nil, &stdout, &stderr); code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		return stdout.String()
	}
	first := run("-f", dir)
	if again := run("-f", dir); again != first {
		t.Errorf("second run differs")
	}
	reversed := run("-f", filepath.Join(dir, "apps"), "-f", filepath.Join(dir, "base"))
	if reversed != first {
		t.Errorf("reading the directories in another order changes the output")
	}
}

func TestTranslateUsageMessages(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"missing -f":      {args: nil, want: "at least one -f is required"},
		"unknown flag":    {args: []string{"-f", "x", "--nope"}, want: "flag provided but not defined: -nope"},
		"bad output":      {args: []string{"-f", "x", "-o", "xml"}, want: `invalid value "xml" for flag -o: must be one of yaml, json`},
		"bad fail-on":     {args: []string{"-f", "x", "--fail-on", "info"}, want: "must be one of none, warning, error"},
		"bad port range":  {args: []string{"-f", "x", "--max-port-range", "0"}, want: "must be at least 1"},
		"empty trust":     {args: []string{"-f", "x", "--trust-domain", ""}, want: "-trust-domain must not be empty"},
		"stdin twice":     {args: []string{"-f", "-", "-f", "-"}, want: "may be given only once"},
		"report format":   {args: []string{"-f", "x", "--report-format", "html"}, want: "must be one of text, json"},
		"bad identity":    {args: []string{"-f", "x", "--identity", "approve"}, want: `invalid value "approve" for flag -identity: must be one of review, follow`},
		"positional path": {args: []string{"x.yaml"}, want: `unexpected argument "x.yaml"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := RunTranslate(tc.args, nil, &stdout, &stderr)
			if code != ExitUsage {
				t.Errorf("exit code = %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), "Usage: netpol2authz translate") {
				t.Errorf("stderr has no usage:\n%s", stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout not empty: %s", stdout.String())
			}
		})
	}
}

func TestTranslateHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := RunTranslate([]string{"-h"}, nil, &stdout, &stderr); code != ExitOK {
		t.Errorf("exit code = %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "-fail-on") {
		t.Errorf("help does not list flags:\n%s", stderr.String())
	}
}

// Every flag of each command is in its usage table, so -h shows it.
func TestUsageListsEveryFlag(t *testing.T) {
	translateFlags, _ := newTranslateFlags(&bytes.Buffer{})
	verifyFlags, _ := newVerifyFlags(&bytes.Buffer{})
	for name, tc := range map[string]struct {
		fs   *flag.FlagSet
		help []struct{ name, alias, arg string }
	}{
		"translate": {translateFlags, translateHelp},
		"verify":    {verifyFlags, verifyHelp},
	} {
		listed := map[string]bool{}
		for _, h := range tc.help {
			listed[h.name], listed[h.alias] = true, true
		}
		tc.fs.VisitAll(func(f *flag.Flag) {
			if !listed[f.Name] {
				t.Errorf("%s: flag %s is missing from its usage table", name, f.Name)
			}
		})
	}
}

// The output is what kubectl apply -f - accepts: it decodes strictly back
// into the AuthorizationPolicies, in both formats, without status or null
// timestamps.
func TestTranslateOutputDecodesBack(t *testing.T) {
	dir := filepath.Join(fixtureRoot, "gitops", "in")
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := RunTranslate([]string{"-f", dir, "-o", format}, nil, &stdout, &stderr); code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for _, noise := range []string{"status", "creationTimestamp", "null"} {
				if strings.Contains(stdout.String(), noise) {
					t.Errorf("output contains %q:\n%s", noise, stdout.String())
				}
			}
			res, err := manifest.Decode([]manifest.Input{{Name: "out", Data: stdout.Bytes()}}, manifest.Options{})
			if err != nil {
				t.Fatalf("output does not decode: %v", err)
			}
			if len(res.AuthorizationPolicies) != 6 {
				t.Errorf("decoded %d AuthorizationPolicies, want 6", len(res.AuthorizationPolicies))
			}
		})
	}
}
