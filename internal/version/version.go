// Package version says which netpol2authz this binary is: its release, the
// commit it was built from and the Go release that built it.
//
// The release comes from the VERSION file at the repository's root: the
// main package embeds it (so `go run .` and `go install` know it too), and
// `make build` and the Dockerfile stamp it with
//
//	-ldflags "-X github.com/netpol2authz/netpol2authz/internal/version.Version=v0.2.0
//	          -X github.com/netpol2authz/netpol2authz/internal/version.Commit=SHA"
//
// which wins over the embedded file.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version and Commit are set by -ldflags -X; empty when not stamped.
var (
	Version string
	Commit  string
)

// Unknown stands for what the binary cannot tell.
const Unknown = "unknown"

// Info is what Get reports.
type Info struct {
	// Version is the release (v0.2.0), Unknown if neither stamped nor
	// set by SetDefault.
	Version string
	// Commit is the stamped commit, else the revision the go command
	// recorded (with "-dirty" when the tree had changes), else Unknown.
	Commit string
	// GoVersion is the Go release that built the binary (go1.26.8).
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

// SetDefault sets the release when none was stamped: the main package calls
// it with the content of the VERSION file it embeds.
func SetDefault(v string) {
	if Version == "" {
		Version = strings.TrimSpace(v)
	}
}

// Get returns the binary's version information.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if i.Version == "" {
		i.Version = Unknown
	}
	if i.Commit == "" {
		i.Commit = vcsRevision()
	}
	return i
}

// vcsRevision returns the commit the go command recorded when it built the
// binary in a Git checkout (-buildvcs), or Unknown.
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Unknown
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return Unknown
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}
