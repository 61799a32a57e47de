package translate

import "testing"

func TestParseIdentity(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Identity
		wantErr bool
	}{
		"serviceaccount":   {in: "serviceaccount/shop/reporting", want: "serviceaccount/shop/reporting"},
		"sa alias":         {in: "sa/shop/reporting", want: "serviceaccount/shop/reporting"},
		"namespace":        {in: "namespace/monitoring", want: "namespace/monitoring"},
		"ns alias":         {in: "ns/monitoring", want: "namespace/monitoring"},
		"principal":        {in: "corp.example/ns/shop/sa/reporting", want: "serviceaccount/shop/reporting"},
		"bare name":        {in: "reporting", wantErr: true},
		"missing sa":       {in: "serviceaccount/shop", wantErr: true},
		"bad namespace":    {in: "namespace/Shop", wantErr: true},
		"bad sa name":      {in: "serviceaccount/shop/Re_porting", wantErr: true},
		"empty":            {in: "", wantErr: true},
		"extra segment":    {in: "namespace/shop/x", wantErr: true},
		"principal no sa":  {in: "cluster.local/ns/shop/xx/reporting", wantErr: true},
		"sa with dot name": {in: "sa/shop/build.bot", want: "serviceaccount/shop/build.bot"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseIdentity(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseIdentity(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseIdentity(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestReviewFirstTranslationApprovesAll: without an approval record the
// translation is a baseline that writes every identity; with a record
// listing them all, the output is the same and nothing is pending.
func TestReviewFirstTranslationApprovesAll(t *testing.T) {
	in := readInput(t, "testdata/cases/identity-review/input.yaml")
	s := in.snapshot()
	s.Approvals = nil
	first := Translate(s, in.Options).Translations[0]
	if !first.Baseline || len(first.Pending) != 0 {
		t.Fatalf("first translation: baseline %v, pending %v; want a baseline with nothing pending", first.Baseline, first.Pending)
	}
	s.Approvals = []Approval{{Namespace: "shop", NetworkPolicy: "db", Identities: first.Identities}}
	again := Translate(s, in.Options).Translations[0]
	if again.Baseline || len(again.Pending) != 0 {
		t.Fatalf("with the baseline recorded: baseline %v, pending %v; want neither", again.Baseline, again.Pending)
	}
	if string(marshalResult(t, Result{Translations: []Translation{{Policies: first.Policies}}})) !=
		string(marshalResult(t, Result{Translations: []Translation{{Policies: again.Policies}}})) {
		t.Error("recording the baseline changed the generated policies")
	}
}
