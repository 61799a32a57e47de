package verify

import (
	"fmt"
	"testing"

	"github.com/netpol2authz/netpol2authz/internal/manifest"
	"github.com/netpol2authz/netpol2authz/internal/synth"
	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// synthInput is a synthetic cluster translated once, as verify gets it.
func synthInput(tb testing.TB, s synth.Size) Input {
	tb.Helper()
	data, err := synth.Generate(s).YAML()
	if err != nil {
		tb.Fatal(err)
	}
	res, err := manifest.Decode([]manifest.Input{{Name: "synthetic.yaml", Data: data}}, manifest.Options{})
	if err != nil {
		tb.Fatalf("the synthetic cluster does not decode: %v", err)
	}
	return Input{Snapshot: res.Snapshot, Translation: translate.Translate(res.Snapshot, translate.Options{})}
}

// BenchmarkVerify times verify alone over the engine benchmark's sizes;
// the translation is done once, outside the timer.
func BenchmarkVerify(b *testing.B) {
	for _, s := range synth.Sizes {
		in := synthInput(b, s)
		b.Run(fmt.Sprintf("%s-%dpods-%dpolicies", s.Name, s.Pods(), s.Policies()), func(b *testing.B) {
			b.ReportAllocs()
			var r Result
			for b.Loop() {
				r = Verify(in)
			}
			b.ReportMetric(float64(r.Stats.SourceClasses), "src-classes")
			b.ReportMetric(float64(r.Stats.DestinationClasses), "dst-classes")
			b.ReportMetric(float64(len(r.Differences)), "differences")
		})
	}
}
