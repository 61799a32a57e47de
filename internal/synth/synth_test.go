package synth_test

import (
	"bytes"
	"testing"

	"github.com/netpol2authz/netpol2authz/internal/synth"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// The smallest cluster decodes cleanly and exercises what the benchmark
// claims it mixes: every kind of selector, named ports, ranges, ipBlocks,
// and the inexact spots that make findings.
func TestGeneratedClusterExercisesTheEngine(t *testing.T) {
	s := synth.Sizes[0]
	data := clusterYAML(t, s)
	again := clusterYAML(t, s)
	if !bytes.Equal(data, again) {
		t.Fatal("Generate is not deterministic")
	}
	snap := decode(t, data).Snapshot
	if got := len(snap.Pods); got != s.Pods() {
		t.Fatalf("decoded %d pods, want %d", got, s.Pods())
	}
	if got := len(snap.NetworkPolicies); got != s.Policies() {
		t.Fatalf("decoded %d policies, want %d", got, s.Policies())
	}
	res := translate.Translate(snap, benchOptions)
	policies := 0
	found := map[translate.FindingType]int{}
	for _, tr := range res.Translations {
		policies += len(tr.Policies)
		for _, f := range tr.Findings {
			found[f.Type]++
		}
	}
	if policies < s.Policies()/2 {
		t.Errorf("only %d AuthorizationPolicies for %d NetworkPolicies", policies, s.Policies())
	}
	for _, want := range []translate.FindingType{
		translate.SharedIdentity, translate.SourceNotInMesh, translate.TargetNotInMesh,
		translate.SelectorOverreach, translate.NamedPortVaries, translate.EgressNotTranslated,
	} {
		if found[want] == 0 {
			t.Errorf("no %s finding: the generator no longer exercises it (found %v)", want, found)
		}
	}
}
