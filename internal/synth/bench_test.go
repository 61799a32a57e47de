package synth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/synth"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

func decode(tb testing.TB, data []byte) *manifest.Result {
	res, err := manifest.Decode([]manifest.Input{{Name: "synthetic.yaml", Data: data}}, manifest.Options{})
	if err != nil {
		tb.Fatalf("the synthetic cluster does not decode: %v", err)
	}
	return res
}

func clusterYAML(tb testing.TB, s synth.Size) []byte {
	data, err := synth.Generate(s).YAML()
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

var benchOptions = translate.Options{RequireOptIn: true}

// BenchmarkPipeline decodes the YAML of each synthetic cluster and
// translates it, timing both steps in the same run. Its metrics:
//   - decode-ns/op and translate-ns/op: the two steps;
//   - translate/decode: their ratio (the engine is meant to stay ≤ 1.0);
//   - translate-ns/pod·policy: translate time over pods × policies per
//     namespace, flat across sizes when the engine grows linearly.
func BenchmarkPipeline(b *testing.B) {
	for _, s := range synth.Sizes {
		data := clusterYAML(b, s)
		b.Run(fmt.Sprintf("%s-%dpods-%dpolicies", s.Name, s.Pods(), s.Policies()), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var dec, tr time.Duration
			for b.Loop() {
				t0 := time.Now()
				res := decode(b, data)
				t1 := time.Now()
				translate.Translate(res.Snapshot, benchOptions)
				dec += t1.Sub(t0)
				tr += time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(dec.Nanoseconds())/n, "decode-ns/op")
			b.ReportMetric(float64(tr.Nanoseconds())/n, "translate-ns/op")
			b.ReportMetric(float64(tr)/float64(dec), "translate/decode")
			b.ReportMetric(float64(tr.Nanoseconds())/n/float64(s.Pods()*s.PoliciesPerNamespace), "translate-ns/pod·policy")
		})
	}
}

// BenchmarkTranslate is the engine alone, with its allocations.
func BenchmarkTranslate(b *testing.B) {
	for _, s := range synth.Sizes {
		snap := decode(b, clusterYAML(b, s)).Snapshot
		b.Run(s.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				translate.Translate(snap, benchOptions)
			}
		})
	}
}

// BenchmarkDecode is the manifest decoder alone, with its allocations.
func BenchmarkDecode(b *testing.B) {
	for _, s := range synth.Sizes {
		data := clusterYAML(b, s)
		b.Run(s.Name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				decode(b, data)
			}
		})
	}
}
