/*
Copyright 2026 The netpol2authz Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command netpol2authz translates Kubernetes NetworkPolicies into Istio
// AuthorizationPolicies with ServiceAccount principals: as an operator
// (no subcommand, or `manager`) or offline on manifests (`translate`).
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netpol2authz/netpol2authz/internal/cli"
)

const usage = `netpol2authz translates label-based NetworkPolicies into Istio
AuthorizationPolicies with ServiceAccount principals.

Usage:
  netpol2authz [manager] [flags]      run the operator (the default)
  netpol2authz translate -f PATH...   translate manifests offline (CI, reviews)
  netpol2authz verify -f PATH...      prove what the AuthorizationPolicies allow against the NetworkPolicies
  netpol2authz approve -n NS NETWORKPOLICY IDENTITY...|--all
                                      approve identities pending review (see kubectl get npt)
  netpol2authz revoke -n NS NETWORKPOLICY IDENTITY...
                                      revoke approved identities
  netpol2authz version                print the version (also --version)
  netpol2authz help                   show this help

Run 'netpol2authz COMMAND -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "manager"
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "manager":
		return runManager(args, stderr)
	case "translate":
		return cli.RunTranslate(args, stdin, stdout, stderr)
	case "verify":
		return cli.RunVerify(args, stdin, stdout, stderr)
	case "approve":
		return cli.RunApprove(args, stdout, stderr)
	case "revoke":
		return cli.RunRevoke(args, stdout, stderr)
	case "version":
		return runVersion(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "netpol2authz: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}
