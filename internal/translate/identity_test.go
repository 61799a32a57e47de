package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
)

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

// checkReview is the fuzzer's identity review property: record what the
// first translation r resolved, minus a few identities chosen by drop; the
// next translation must report exactly those as pending, write none of
// their principals, and otherwise give r's policies when nothing is dropped.
func checkReview(s Snapshot, o Options, r Result, drop []byte) []string {
	var errs []string
	var approvals []Approval
	dropped := map[[2]string]map[Identity]bool{}
	k := 0
	for _, t := range r.Translations {
		if t.Action != ActionApply || t.Identity != IdentityReview {
			continue
		}
		if !t.Baseline && len(s.Approvals) == 0 {
			errs = append(errs, fmt.Sprintf("%s: review without an approval record is not a baseline", t.NetworkPolicy))
		}
		key := [2]string{t.NetworkPolicy.Namespace, t.NetworkPolicy.Name}
		a := Approval{Namespace: key[0], NetworkPolicy: key[1]}
		for _, id := range t.Identities {
			k++
			if len(drop) > 0 && drop[k%len(drop)]%3 == 0 {
				if dropped[key] == nil {
					dropped[key] = map[Identity]bool{}
				}
				dropped[key][id] = true
				continue
			}
			a.Identities = append(a.Identities, id)
		}
		approvals = append(approvals, a)
	}
	next := s
	next.Approvals = approvals
	r2 := Translate(next, o)
	before := map[[2]string]Translation{}
	for _, t := range r.Translations {
		before[[2]string{t.NetworkPolicy.Namespace, t.NetworkPolicy.Name}] = t
	}
	for _, t := range r2.Translations {
		key := [2]string{t.NetworkPolicy.Namespace, t.NetworkPolicy.Name}
		if t.Action != ActionApply || t.Identity != IdentityReview {
			continue
		}
		var pending []Identity
		for _, p := range t.Pending {
			pending = append(pending, p.Identity)
		}
		want := slices.Sorted(maps.Keys(dropped[key]))
		if !slices.Equal(pending, want) {
			errs = append(errs, fmt.Sprintf("%s: pending %v, want the identities left out of the record %v", t.NetworkPolicy, pending, want))
		}
		for _, ap := range t.Policies {
			for _, rule := range ap.Spec.Rules {
				for _, from := range rule.From {
					for _, p := range from.Source.Principals {
						parts := strings.Split(p, "/")
						if len(parts) == 5 && dropped[key][ServiceAccountIdentity(parts[2], parts[4])] {
							errs = append(errs, fmt.Sprintf("%s: pending %s written into %s", t.NetworkPolicy, p, ap.Name))
						}
					}
				}
			}
		}
		if len(dropped[key]) == 0 && !slices.EqualFunc(t.Policies, before[key].Policies, func(a, b *securityv1.AuthorizationPolicy) bool {
			return proto.Equal(&a.Spec, &b.Spec) && a.Name == b.Name
		}) {
			errs = append(errs, fmt.Sprintf("%s: recording every identity of the first translation changed its policies", t.NetworkPolicy))
		}
	}
	return errs
}
