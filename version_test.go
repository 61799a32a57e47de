package main

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
)

// `netpol2authz version` and `--version` print the release of the VERSION
// file, which the binary embeds, and the Go release.
func TestVersionPrintsTheVersionFile(t *testing.T) {
	data, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(data))
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d, stderr: %s", args, code, stderr.String())
		}
		lines := strings.Split(stdout.String(), "\n")
		if lines[0] != "netpol2authz "+want {
			t.Errorf("%q: first line %q, want %q", args, lines[0], "netpol2authz "+want)
		}
		if !strings.Contains(stdout.String(), "go: "+runtime.Version()+" ") {
			t.Errorf("%q: no Go release in %q", args, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version", "extra"}, strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Errorf("version extra: exit %d, want 2 (usage)", code)
	}
}
