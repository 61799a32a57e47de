package translate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestPolicyName(t *testing.T) {
	// 246 characters: netpol-<name> is exactly 253.
	fits := "a" + strings.Repeat("b", 245)
	// 250 characters with a dot where the cut falls.
	long := "a" + strings.Repeat("x", 235) + "." + strings.Repeat("y", 13)
	cases := map[string]struct {
		np, projection string
		want           string
	}{
		"single policy": {
			np:   "web",
			want: "netpol-web",
		},
		"projection hash is fnv32a of the sorted pairs": {
			np: "web", projection: "app=web,track=canary",
			want: "netpol-web-511ffa5b",
		},
		"253 characters fit": {
			np:   fits,
			want: "netpol-" + fits,
		},
		"longer names are cut, the dot at the cut dropped, the full name's hash appended": {
			np:   long,
			want: "netpol-a" + strings.Repeat("x", 235) + "-ef75a2b6",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := policyName(tc.np, tc.projection)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("policyName (-want,+got):\n%s", diff)
			}
			if len(got) > maxNameLength || len(validation.IsDNS1123Subdomain(got)) > 0 {
				t.Errorf("%q is not a valid object name", got)
			}
		})
	}
}

// TestOverlayName pins the names of named-port overlays: the hash of the
// projection, "|" and the overlay's selector, so that an overlay never
// takes the name of a projection's policy, even one with its labels.
func TestOverlayName(t *testing.T) {
	v2 := map[string]string{"app": "web", "version": "v2"}
	if got, want := overlayName("web", "", v2), "netpol-web-"+hash8("|app=web,version=v2"); got != want {
		t.Errorf("overlayName = %q, want %q", got, want)
	}
	if overlayName("web", "app=web,version=v2", v2) == policyName("web", "app=web,version=v2") {
		t.Error("an overlay with a projection's labels takes the projection's name")
	}
	if overlayName("web", "app=web", v2) == overlayName("web", "", v2) {
		t.Error("overlays of two projections with one selector share a name")
	}
}

func TestLabelValue(t *testing.T) {
	name63 := strings.Repeat("a", 63)
	name64 := strings.Repeat("a", 64)
	cases := map[string]struct {
		np   string
		want string
	}{
		"short name":         {np: "web", want: "web"},
		"63 characters":      {np: name63, want: name63},
		"64 characters":      {np: name64, want: strings.Repeat("a", 54) + "-" + hash8(name64)},
		"article name, long": {np: "allow-ingress-from-the-reporting-service-of-the-analytics-team-in-prod", want: "allow-ingress-from-the-reporting-service-of-the-analyt-51910edf"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := labelValue(tc.np)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("labelValue (-want,+got):\n%s", diff)
			}
			if msgs := content.IsLabelValue(got); len(msgs) > 0 {
				t.Errorf("%q is not a label value: %v", got, msgs)
			}
		})
	}
}

func TestSeverityOf(t *testing.T) {
	want := map[FindingType]Severity{
		NoPodsSelected:       SeverityInfo,
		DryRunNotEvaluated:   SeverityWarning,
		NamespaceUnknown:     SeverityWarning,
		EgressNotTranslated:  SeverityWarning,
		SelectorOverreach:    SeverityWarning,
		PortRangeTooLarge:    SeverityWarning,
		NamedPortVaries:      SeverityWarning,
		NonTCPNotEnforced:    SeverityWarning,
		SharedIdentity:       SeverityWarning,
		SourceNotInMesh:      SeverityWarning,
		TargetNotInMesh:      SeverityWarning,
		RootNamespaceSkipped: SeverityWarning,
		AmbientPortBlocked:   SeverityWarning,
		InvalidAnnotation:    SeverityError,
		InvalidPolicy:        SeverityError,
		Conflict:             SeverityError,
	}
	got := map[FindingType]Severity{}
	for ft := range want {
		got[ft] = SeverityOf(ft)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("severities (-want,+got):\n%s", diff)
	}
}

func TestNameList(t *testing.T) {
	cases := map[string]struct {
		names []string
		want  string
	}{
		"one":    {names: []string{"a"}, want: "a"},
		"ten":    {names: strings.Split("a,b,c,d,e,f,g,h,i,j", ","), want: "a, b, c, d, e, f, g, h, i, j"},
		"twelve": {names: strings.Split("a,b,c,d,e,f,g,h,i,j,k,l", ","), want: "a, b, c, d, e, f, g, h, i, j and 2 more"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, nameList(tc.names)); diff != "" {
				t.Errorf("nameList (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestFindingsSorted(t *testing.T) {
	var l findingList
	l.add(SharedIdentity, "b", ObjectRef{Kind: "Pod", Namespace: "ns", Name: "z"}, ObjectRef{Kind: "Pod", Namespace: "ns", Name: "a"})
	l.add(NoPodsSelected, "x")
	l.add(SharedIdentity, "a")
	l.add(SharedIdentity, "b", ObjectRef{Kind: "Pod", Namespace: "ns", Name: "a"}, ObjectRef{Kind: "Pod", Namespace: "ns", Name: "z"}, ObjectRef{Kind: "Pod", Namespace: "ns", Name: "a"})
	want := []Finding{
		{Type: NoPodsSelected, Severity: SeverityInfo, Message: "x"},
		{Type: SharedIdentity, Severity: SeverityWarning, Message: "a"},
		{Type: SharedIdentity, Severity: SeverityWarning, Message: "b", Objects: []ObjectRef{
			{Kind: "Pod", Namespace: "ns", Name: "a"}, {Kind: "Pod", Namespace: "ns", Name: "z"},
		}},
	}
	if diff := cmp.Diff(want, l.sorted()); diff != "" {
		t.Errorf("sorted findings (-want,+got):\n%s", diff)
	}
}
