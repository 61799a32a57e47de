package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netpol2authz/netpol2authz/api/v1alpha1"
)

const apiDir = "../../api/v1alpha1"

// TestRealAPI checks the reference of api/v1alpha1: every kind and every
// field's JSON name is in it, and two runs give the same bytes.
func TestRealAPI(t *testing.T) {
	first, err := Generate(apiDir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Generate(apiDir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("two runs gave different output")
	}
	text := string(first)

	for _, kind := range []string{"NetworkPolicyTranslation", "IdentityApproval"} {
		if !strings.Contains(text, "\n## "+kind+"\n") {
			t.Errorf("no section for kind %s", kind)
		}
		if !strings.Contains(text, "| kind | `"+kind+"` |") {
			t.Errorf("no kind row for %s", kind)
		}
	}
	if strings.Contains(text, "## NetworkPolicyTranslationList") || strings.Contains(text, "## IdentityApprovalList") {
		t.Error("a list type has a section")
	}

	// Every JSON field name of every type of the API, read by reflection
	// (so that a field added to the types but missed by the parser fails).
	types := []any{
		v1alpha1.NetworkPolicyTranslation{}, v1alpha1.NetworkPolicyTranslationStatus{},
		v1alpha1.Finding{}, v1alpha1.ObjectReference{}, v1alpha1.PendingIdentity{}, v1alpha1.IdentitySource{},
		v1alpha1.IdentityApproval{}, v1alpha1.IdentityApprovalSpec{},
	}
	for _, v := range types {
		rt := reflect.TypeOf(v)
		section := section(text, rt.Name())
		if section == "" {
			t.Errorf("no section for type %s", rt.Name())
			continue
		}
		for i := range rt.NumField() {
			f := rt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" { // inline TypeMeta
				continue
			}
			if !strings.Contains(section, "| `"+name+"` |") {
				t.Errorf("%s: no row for field %s", rt.Name(), name)
			}
		}
	}
	for _, col := range []string{"| Findings | integer | `.status.findingsCount` | always |", "| Identities | string | `.spec.identities` | `-o wide` (priority 1) |"} {
		if !strings.Contains(text, col) {
			t.Errorf("no printer column row %q", col)
		}
	}
}

// section returns the text of the section of heading "## name", up to the
// next section.
func section(text, name string) string {
	_, after, ok := strings.Cut(text, "\n## "+name+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(after, "\n## "); i >= 0 {
		after = after[:i]
	}
	return after
}

const fixture = `// Package v1 is a fixture.
// +groupName=example.com
package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Color of a widget.
// +kubebuilder:validation:Enum=red;green
type Color string

// WidgetSpec is what a widget should be.
type WidgetSpec struct {
	// color of the widget.
	// +required
	Color Color ` + "`json:\"color\"`" + `

	// size in centimetres.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Size int32 ` + "`json:\"size\"`" + `

	// shape, with no marker but omitempty.
	// +kubebuilder:validation:Enum=round;square
	Shape string ` + "`json:\"shape,omitempty\"`" + `

	// label, with neither: required.
	Label string ` + "`json:\"label\"`" + `

	// pattern with a pipe.
	// +optional
	// +kubebuilder:validation:Pattern=` + "`^(a|b)$`" + `
	Pattern string ` + "`json:\"pattern,omitempty\"`" + `

	internal string
}

// Widget is a fixture kind.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName={wd,wdg}
// +kubebuilder:printcolumn:name="Color",type=string,JSONPath=` + "`.spec.color`" + `
type Widget struct {
	metav1.TypeMeta   ` + "`json:\",inline\"`" + `
	metav1.ObjectMeta ` + "`json:\"metadata,omitempty\"`" + `

	Spec WidgetSpec ` + "`json:\"spec\"`" + `
}

// WidgetList contains a list of Widget.
// +kubebuilder:object:root=true
type WidgetList struct {
	metav1.TypeMeta ` + "`json:\",inline\"`" + `
	metav1.ListMeta ` + "`json:\"metadata,omitempty\"`" + `
	Items           []Widget ` + "`json:\"items\"`" + `
}
`

// TestFixture checks the rendering of requirement, enums and the other
// markers on a small package.
func TestFixture(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "types.go"), []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"Group `example.com`, version `v1`",
		"- [Widget](#widget)\n",
		"| apiVersion | `example.com/v1` |",
		"| scope | Cluster |",
		"| short names | `wd`, `wdg` |",
		"| `apiVersion` | string | **required** | `example.com/v1` |",
		"| `spec` | [WidgetSpec](#widgetspec) | **required** |",
		"| Color | string | `.spec.color` | always |",
		// +required, and the enum of the field's type.
		"| `color` | [Color](#color) (string) | **required** | color of the widget. | Enum: `red`, `green` |",
		// +optional wins over the missing omitempty.
		"| `size` | integer (int32) | optional | size in centimetres. | Minimum: 1<br>Maximum: 10 |",
		// No marker: omitempty makes it optional, its absence required.
		"| `shape` | string | optional | shape, with no marker but omitempty. | Enum: `round`, `square` |",
		"| `label` | string | **required** | label, with neither: required. |  |",
		// A pipe is escaped in a table cell.
		"Pattern: `^(a\\|b)$` |",
		"## Color\n\nColor of a widget.\n\nType: string.\n\nValidation: Enum: `red`, `green`.\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, unwanted := range []string{"## WidgetList", "internal"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("output has %q", unwanted)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// TestDocsUpToDate fails when docs/api.md is not what the generator writes
// (make verify-api-docs checks the same in make test).
func TestDocsUpToDate(t *testing.T) {
	want, err := Generate(apiDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("docs/api.md is stale: run make api-docs")
	}
}
