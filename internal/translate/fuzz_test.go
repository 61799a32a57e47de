package translate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzTranslate starts from the real policies of testdata/cases (the
// articles' cases among them): the fuzzer mutates their YAML, and a second
// byte string grows more namespaces, pods and policies from small
// vocabularies (see gen), so that selectors, ports and peers keep matching
// something. Translate must not panic, must be deterministic (also with
// its input reversed) and must keep the contract's invariants.
func FuzzTranslate(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*", "input.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, []byte{})
		f.Add(data, []byte{byte(i), 0, 4, byte(i * 7), 1, 2, 3, 5, 8, 13, 21, 34})
	}
	f.Fuzz(func(t *testing.T, input, grow []byte) {
		in := decodeFuzzInput(input)
		(&gen{b: grow}).grow(&in)
		if len(in.Pods) > 300 || len(in.NetworkPolicies) > 100 || in.Options.MaxPortRange > 4096 {
			t.Skip("too large for one fuzz run")
		}
		s := in.snapshot()
		r := Translate(s, in.Options)
		want := marshalJSON(t, r)
		if got := marshalJSON(t, Translate(s, in.Options)); !bytes.Equal(want, got) {
			t.Fatalf("second run differs:\n%s\n---\n%s", want, got)
		}
		if got := marshalJSON(t, Translate(reversed(s), in.Options)); !bytes.Equal(want, got) {
			t.Fatalf("reversed input differs:\n%s\n---\n%s", want, got)
		}
		if errs := checkInvariants(s, in.Options, r); len(errs) > 0 {
			t.Fatal(strings.Join(errs, "\n"))
		}
		if len(s.Approvals) == 0 {
			if errs := checkReview(s, in.Options, r, grow); len(errs) > 0 {
				t.Fatal(strings.Join(errs, "\n"))
			}
		}
	})
}

// marshalJSON is a cheaper marshalResult for the fuzzer's many runs.
func marshalJSON(t *testing.T, r Result) []byte {
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodeFuzzInput reads mutated YAML; what does not decode is an empty
// input, since the YAML decoder is not under test.
func decodeFuzzInput(data []byte) (in caseInput) {
	defer func() {
		if recover() != nil {
			in = caseInput{}
		}
	}()
	if err := yaml.Unmarshal(data, &in); err != nil {
		return caseInput{}
	}
	return in
}

func reversed(s Snapshot) Snapshot {
	rev := func(n int, swap func(i, j int)) {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			swap(i, j)
		}
	}
	s.Namespaces = append([]Namespace(nil), s.Namespaces...)
	s.Pods = append([]Pod(nil), s.Pods...)
	s.NetworkPolicies = append(s.NetworkPolicies[:0:0], s.NetworkPolicies...)
	s.Services = append([]Service(nil), s.Services...)
	s.Gateways = append([]Gateway(nil), s.Gateways...)
	rev(len(s.Services), func(i, j int) { s.Services[i], s.Services[j] = s.Services[j], s.Services[i] })
	rev(len(s.Gateways), func(i, j int) { s.Gateways[i], s.Gateways[j] = s.Gateways[j], s.Gateways[i] })
	rev(len(s.Namespaces), func(i, j int) { s.Namespaces[i], s.Namespaces[j] = s.Namespaces[j], s.Namespaces[i] })
	rev(len(s.Pods), func(i, j int) { s.Pods[i], s.Pods[j] = s.Pods[j], s.Pods[i] })
	rev(len(s.NetworkPolicies), func(i, j int) {
		s.NetworkPolicies[i], s.NetworkPolicies[j] = s.NetworkPolicies[j], s.NetworkPolicies[i]
	})
	return s
}
