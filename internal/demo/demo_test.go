package demo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpol2authz/netpol2authz/internal/demo"
	"github.com/netpol2authz/netpol2authz/internal/testenv"
)

// The demo runs end to end on the shipped samples, so that it cannot rot.
func TestDemoTellsTheStory(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = demo.Run(ctx, demo.Options{
		Out:     &out,
		Samples: filepath.Join(root, "config", "samples"),
		Wait:    45 * time.Second,
	})
	story := out.String()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, story)
	}
	for _, want := range []string{
		// The generated policies, with principals.
		"name: netpol-db-admins-only",
		"cluster.local/ns/shop/sa/ops-console",
		"istio.io/dry-run: \"true\"",
		// The dashboard, rendered by the API server from the printer columns.
		"NAMESPACE   NAME",
		"MODE", "READY", "EXACT", "FINDINGS",
		"payments    ledger-from-gateway",
		// istiod's verdict and ztunnel's compiled rule.
		"==> What istiod made of them",
		"istiod's webhook admitted all",
		"shop/db-admins-only              IstioAccepted=True (Accepted)",
		"ztunnel's compiled shop/netpol-db-admins-only",
		"rule 0: {ports=5432} AND ({principals=cluster.local/ns/shop/sa/default,cluster.local/ns/shop/sa/ops-console} OR {sourceIps=",
		"the RBAC filter istiod sends shop/db-0's sidecar",
		"ns[shop]-policy[netpol-db-admins-only]-rule[0]: from {principals=cluster.local/ns/shop/sa/default,cluster.local/ns/shop/sa/ops-console} OR {ipBlocks=",
		// The findings the samples are built to show.
		"SharedIdentity",
		"SourceNotInMesh",
		// The relabelled pod's ServiceAccount is held back, pending, and
		// named with who wrote the label, until a reviewer approves it.
		"held back, pending review",
		"IdentityPending",
		"ServiceAccount shop/reporting is pending review",
		"last written by kubectl-label",
		"netpol2authz approve -n shop db-admins-only serviceaccount/shop/reporting",
		"principals of shop/netpol-db-admins-only after:",
		"cluster.local/ns/shop/sa/reporting",
		"==> Done",
	} {
		if !strings.Contains(story, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	held := story[strings.Index(story, "still:"):]
	if strings.Contains(held[:strings.Index(held, "\n")], "sa/reporting") {
		t.Errorf("the relabelled pod's principal reached the policy before it was approved:\n%s", held)
	}
	after := story[strings.Index(story, "after:"):]
	if !strings.Contains(after[:strings.Index(after, "\n")], "sa/reporting") {
		t.Errorf("the relabelled pod's principal is not in the policy after the relabel:\n%s", after)
	}
	if t.Failed() {
		t.Logf("output:\n%s", story)
	}
}
