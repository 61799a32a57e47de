package main

import (
	_ "embed"
	"fmt"
	"io"

	"github.com/netpol2authz/netpol2authz/internal/version"
)

// versionFile is the release this tree is: `go run .` and `go install` know
// it without -ldflags; a stamped version.Version wins.
//
//go:embed VERSION
var versionFile string

func init() { version.SetDefault(versionFile) }

// runVersion prints the release, the commit when known and the Go release
// of the binary.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "netpol2authz version: unexpected argument %q\n", args[0])
		return 2
	}
	i := version.Get()
	fmt.Fprintf(stdout, "netpol2authz %s\n", i.Version)
	if i.Commit != version.Unknown {
		fmt.Fprintf(stdout, "commit: %s\n", i.Commit)
	}
	fmt.Fprintf(stdout, "go: %s %s\n", i.GoVersion, i.Platform)
	return 0
}
