package translate

import (
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// determinismInputs are every golden input plus generated snapshots large
// enough to have duplicates, shared identities and conflicts.
func determinismInputs(t *testing.T) map[string]caseInput {
	inputs := map[string]caseInput{}
	for name := range goldenCases {
		inputs[name] = readInput(t, filepath.Join("testdata", "cases", name, "input.yaml"))
	}
	for seed := range uint64(5) {
		r := rand.New(rand.NewPCG(seed, 42))
		b := make([]byte, 4000)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		var in caseInput
		(&gen{b: b}).grow(&in)
		inputs["generated-"+string(rune('a'+seed))] = in
	}
	return inputs
}

// shuffled returns s with its slices in another order.
func shuffled(s Snapshot, seed uint64) Snapshot {
	r := rand.New(rand.NewPCG(seed, 7))
	s.Namespaces = slices.Clone(s.Namespaces)
	s.Pods = slices.Clone(s.Pods)
	s.NetworkPolicies = slices.Clone(s.NetworkPolicies)
	s.Services = slices.Clone(s.Services)
	s.Gateways = slices.Clone(s.Gateways)
	r.Shuffle(len(s.Services), func(i, j int) { s.Services[i], s.Services[j] = s.Services[j], s.Services[i] })
	r.Shuffle(len(s.Gateways), func(i, j int) { s.Gateways[i], s.Gateways[j] = s.Gateways[j], s.Gateways[i] })
	r.Shuffle(len(s.Namespaces), func(i, j int) { s.Namespaces[i], s.Namespaces[j] = s.Namespaces[j], s.Namespaces[i] })
	r.Shuffle(len(s.Pods), func(i, j int) { s.Pods[i], s.Pods[j] = s.Pods[j], s.Pods[i] })
	r.Shuffle(len(s.NetworkPolicies), func(i, j int) {
		s.NetworkPolicies[i], s.NetworkPolicies[j] = s.NetworkPolicies[j], s.NetworkPolicies[i]
	})
	for i := range s.Pods {
		s.Pods[i].Ports = slices.Clone(s.Pods[i].Ports)
		r.Shuffle(len(s.Pods[i].Ports), func(a, b int) { s.Pods[i].Ports[a], s.Pods[i].Ports[b] = s.Pods[i].Ports[b], s.Pods[i].Ports[a] })
	}
	return s
}

func TestDeterminism(t *testing.T) {
	for name, in := range determinismInputs(t) {
		t.Run(name, func(t *testing.T) {
			s := in.snapshot()
			want := marshalResult(t, Translate(s, in.Options))
			if diff := cmp.Diff(string(want), string(marshalResult(t, Translate(s, in.Options)))); diff != "" {
				t.Fatalf("second run differs (-want,+got):\n%s", diff)
			}
			for seed := range uint64(5) {
				got := marshalResult(t, Translate(shuffled(s, seed), in.Options))
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Fatalf("shuffled input (seed %d) differs (-want,+got):\n%s", seed, diff)
				}
			}
		})
	}
}

// TestInvariants checks the contract's promises about any output on every
// golden and generated input.
func TestInvariants(t *testing.T) {
	for name, in := range determinismInputs(t) {
		t.Run(name, func(t *testing.T) {
			r := Translate(in.snapshot(), in.Options)
			if errs := checkInvariants(in.snapshot(), in.Options, r); len(errs) > 0 {
				t.Error(strings.Join(errs, "\n"))
			}
		})
	}
}

// TestSnapshotUntouched checks that Translate neither changes its input
// nor hands out slices or maps of it: callers may edit the policies.
func TestSnapshotUntouched(t *testing.T) {
	for name, in := range determinismInputs(t) {
		t.Run(name, func(t *testing.T) {
			s := in.snapshot()
			before, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			r := Translate(s, in.Options)
			for _, tr := range r.Translations {
				for _, ap := range tr.Policies {
					ap.Labels["scribble"] = "x"
					ap.Annotations["scribble"] = "x"
					if ap.Spec.Selector != nil {
						for k := range ap.Spec.Selector.MatchLabels {
							ap.Spec.Selector.MatchLabels[k] = "scribbled"
						}
					}
					for _, rule := range ap.Spec.Rules {
						for _, f := range rule.From {
							for _, list := range [][]string{f.Source.Principals, f.Source.Namespaces, f.Source.IpBlocks, f.Source.NotIpBlocks} {
								for i := range list {
									list[i] = "scribbled"
								}
							}
						}
						for _, to := range rule.To {
							for i := range to.Operation.Ports {
								to.Operation.Ports[i] = "scribbled"
							}
						}
					}
				}
			}
			after, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(before), string(after)); diff != "" {
				t.Errorf("snapshot changed (-before,+after):\n%s", diff)
			}
		})
	}
}
