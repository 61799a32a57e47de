package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const verifyFixtureRoot = "../../test/fixtures/verify"

// verifyCases run `netpol2authz verify args...` in
// test/fixtures/verify/<name>, whose in/ holds the input; goldens there:
// stdout.golden and stderr.golden (absent when empty). The exit code is
// asserted here, never regenerated.
var verifyCases = map[string]goldenCase{
	// The generated policies allow exactly what the NetworkPolicies allow.
	"exact": {args: []string{"-f", "in"}, exit: ExitOK},
	// batch shares web's ServiceAccount: Istio lets it reach db too.
	"shared-identity": {args: []string{"-f", "in"}, exit: ExitOK},
	"json-output":     {args: []string{"-f", "in", "-o", "json"}, exit: ExitOK},
	// A pod without sidecar in a strict namespace loses db:5432.
	"non-mesh-source": {args: []string{"-f", "in"}, exit: ExitOK},
	// Strict and in dry-run: web loses db:5432 (it shares batch's
	// ServiceAccount) once the dry-run policies are enforced, and says so.
	"dry-run": {args: []string{"-f", "in"}, exit: ExitOK},
	// ipBlock over pod addresses: whether it matches is the plugin's call.
	"ipblock":       {args: []string{"-f", "in"}, exit: ExitOK},
	"ipblock-match": {args: []string{"-f", "in", "--ipblock-pods", "match"}, exit: ExitOK},
	// A skipped matchExpressions projection: its pods stay restricted by
	// the default-deny policy, so permissive denies what it allows.
	"selector-overreach": {args: []string{"-f", "in"}, exit: ExitOK},
	"namespace-scope":    {args: []string{"-f", "in", "-n", "ops"}, exit: ExitOK},
	// --existing: the generated policies as they are in the cluster.
	"existing-exact": {args: []string{"-f", "in", "--existing"}, exit: ExitOK},
	// A hand-written policy lets all of shop reach db: unexplained.
	"existing-too-wide": {args: []string{"-f", "in", "--existing"}, exit: ExitUnexplained},
	// A hand-written DENY in dry-run would cut web off db once enforced.
	"existing-dry-run-deny": {args: []string{"-f", "in", "--existing"}, exit: ExitUnexplained},
	// db's IdentityApproval lacks reporting's ServiceAccount and the
	// namespace staging: Istio denies them what the NetworkPolicy allows,
	// explained by IdentityPending.
	"identity-pending": {args: []string{"-f", "in"}, exit: ExitOK},
	// The same with --identity follow: no difference.
	"identity-follow": {args: []string{"-f", "../identity-pending/in", "--identity", "follow"}, exit: ExitOK},
	// Sources outside the cluster: api's ipBlocks with excepts (IPv4 and
	// IPv6) translate exactly; the any-address fallback for report, a
	// CronJob outside the mesh, lets every address reach db:5432,
	// explained by its SourceNotInMesh.
	"external":      {args: []string{"-f", "in"}, exit: ExitOK},
	"external-json": {args: []string{"-f", "../external/in", "-o", "json"}, exit: ExitOK},
	// api's policy written by hand without the excepts: the excepted
	// ranges reach api:8443, unexplained.
	"existing-external": {args: []string{"-f", "../external/in", "-f", "in", "--existing"}, exit: ExitUnexplained},
	// Ambient with a waypoint: the generated policies allow exactly what
	// the NetworkPolicies allow, through the waypoint and around it.
	"waypoint":       {args: []string{"-f", "../../translate/waypoint/in"}, exit: ExitOK},
	"waypoint-admin": {args: []string{"-f", "../../translate/waypoint-admin/in"}, exit: ExitOK},
	// The policies generated before the waypoint was added list the
	// clients only: ztunnel sees the waypoint on the Services' paths and
	// denies them, unexplained.
	"existing-waypoint": {args: []string{"-f", "../../translate/waypoint/in", "-f", "in", "--existing"}, exit: ExitUnexplained},
	"broken-input":      {args: []string{"-f", "in"}, exit: ExitBadInput},
	"usage-no-input":    {args: []string{"--existing"}, exit: ExitUsage},
	"usage-both-inputs": {args: []string{"-f", "in", "--kubeconfig", "kubeconfig"}, exit: ExitUsage},
	"usage-bad-value":   {args: []string{"-f", "in", "--ipblock-pods", "sometimes"}, exit: ExitUsage},
}

func TestVerifyGolden(t *testing.T) {
	names := make([]string, 0, len(verifyCases))
	for name := range verifyCases {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		tc := verifyCases[name]
		t.Run(name, func(t *testing.T) {
			dir, err := filepath.Abs(filepath.Join(verifyFixtureRoot, name))
			if err != nil {
				t.Fatal(err)
			}
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			code := RunVerify(tc.args, nil, &stdout, &stderr)
			if code != tc.exit {
				t.Errorf("exit code = %d, want %d\nstderr:\n%s", code, tc.exit, stderr.String())
			}
			golden(t, "stdout.golden", stdout.Bytes())
			golden(t, "stderr.golden", stderr.Bytes())
			if (code == ExitBadInput || code == ExitUsage) && stdout.Len() > 0 {
				t.Errorf("exit %d wrote to stdout:\n%s", code, stdout.String())
			}
		})
	}
}

// TestVerifyFixturesHaveCases keeps fixture directories and the case table
// in step.
func TestVerifyFixturesHaveCases(t *testing.T) {
	entries, err := os.ReadDir(verifyFixtureRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := verifyCases[e.Name()]; e.IsDir() && !ok {
			t.Errorf("fixture %s has no entry in verifyCases", e.Name())
		}
	}
}

// TestVerifyJSONReport: the JSON report is the documented, versioned
// struct, with lists never null.
func TestVerifyJSONReport(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := RunVerify([]string{"-f", filepath.Join(verifyFixtureRoot, "existing-too-wide", "in"), "--existing", "-o", "json"}, nil, &stdout, &stderr); code != ExitUnexplained {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep VerifyReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.Version != VerifyReportVersion || rep.Checked != "existing" || rep.Summary.Unexplained == 0 {
		t.Errorf("unexpected report header: version %d, checked %q, %d unexplained", rep.Version, rep.Checked, rep.Summary.Unexplained)
	}
	for _, d := range rep.Differences {
		if d.Explained != (d.Explanation != nil) {
			t.Errorf("explained %t with explanation %v", d.Explained, d.Explanation)
		}
		if d.Sources.Pods == nil || d.Sources.AllOf == nil || d.NetworkPolicies == nil || d.AuthorizationPolicies == nil {
			t.Errorf("null list in %+v", d)
		}
	}
	if !slices.IsSortedFunc(rep.Differences, func(a, b differenceReport) int {
		switch {
		case a.Explained == b.Explained:
			return 0
		case !a.Explained:
			return -1
		}
		return 1
	}) {
		t.Error("unexplained differences are not first")
	}
}

func TestVerifyUsageMessages(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"no input":       {args: nil, want: "give -f PATH, or --cluster"},
		"both inputs":    {args: []string{"-f", "x", "--cluster"}, want: "exclude each other"},
		"context":        {args: []string{"-f", "x", "--context", "kind"}, want: "exclude each other"},
		"bad output":     {args: []string{"-f", "x", "-o", "yaml"}, want: "must be one of text, json"},
		"bad ipblock":    {args: []string{"-f", "x", "--ipblock-pods", "yes"}, want: "must be one of unknown, match, no-match"},
		"empty ns":       {args: []string{"-f", "x", "-n", ""}, want: "-namespace must not be empty"},
		"port range":     {args: []string{"-f", "x", "--max-port-range", "0"}, want: "must be at least 1"},
		"stdin twice":    {args: []string{"-f", "-", "-f", "-"}, want: "may be given only once"},
		"positional":     {args: []string{"x.yaml"}, want: `unexpected argument "x.yaml"`},
		"empty kubecfg":  {args: []string{"--kubeconfig", ""}, want: "-kubeconfig must not be empty"},
		"unknown flag":   {args: []string{"-f", "x", "--strict"}, want: "flag provided but not defined: -strict"},
		"bad fidelity":   {args: []string{"-f", "x", "--fidelity", "exact"}, want: "must be one of permissive, strict"},
		"bad identity":   {args: []string{"-f", "x", "--identity", "approve"}, want: "must be one of review, follow"},
		"empty root ns":  {args: []string{"-f", "x", "--root-namespace", ""}, want: "-root-namespace must not be empty"},
		"empty trust":    {args: []string{"-f", "x", "--trust-domain", ""}, want: "-trust-domain must not be empty"},
		"empty istio ns": {args: []string{"-f", "x", "--istio-namespace", ""}, want: "-istio-namespace must not be empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := RunVerify(tc.args, nil, &stdout, &stderr); code != ExitUsage {
				t.Errorf("exit code = %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), "Usage: netpol2authz verify") {
				t.Errorf("stderr has no usage:\n%s", stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout not empty: %s", stdout.String())
			}
		})
	}
}

// The same input read twice, or its files in another order, gives the
// same report.
func TestVerifyDeterministic(t *testing.T) {
	dir := filepath.Join(verifyFixtureRoot, "namespace-scope", "in")
	run := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		RunVerify(args, nil, &stdout, &stderr)
		return stdout.String()
	}
	first := run("-f", dir)
	if again := run("-f", dir); again != first {
		t.Error("second run differs")
	}
	if rev := run("-f", filepath.Join(dir, "shop.yaml"), "-f", filepath.Join(dir, "ops.yaml")); strings.ReplaceAll(rev, "2 files", "") != strings.ReplaceAll(first, "2 files", "") {
		t.Errorf("file order changes the report:\n%s\n---\n%s", first, rev)
	}
}
