package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func namespace(name string) string {
	return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n"
}

func TestLoadWalksDirectories(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"tree/b.yaml":               namespace("b"),
		"tree/a/z.yml":              namespace("z"),
		"tree/a/y.JSON":             `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y"}}`,
		"tree/notes.txt":            "not read",
		"tree/.github/workflow.yml": "on: push\njobs: {}\n",
		"tree/.hidden.yaml":         "broken: [",
		"extra.txt":                 namespace("extra"),
	})
	t.Chdir(dir)
	res, err := Load([]string{"tree", "extra.txt", "tree/b.yaml"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ns := range res.Snapshot.Namespaces {
		got = append(got, ns.Name)
	}
	if diff := cmp.Diff([]string{"b", "extra", "y", "z"}, got); diff != "" {
		t.Errorf("namespaces (-want,+got):\n%s", diff)
	}
	if res.Stats.Files != 4 {
		t.Errorf("Files = %d, want 4 (a file named twice is read once)", res.Stats.Files)
	}
}

func TestLoadStdin(t *testing.T) {
	res, err := Load([]string{"-"}, Options{Stdin: strings.NewReader(namespace("from-stdin"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Snapshot.Namespaces) != 1 || res.Snapshot.Namespaces[0].Name != "from-stdin" {
		t.Errorf("namespaces = %+v", res.Snapshot.Namespaces)
	}
	_, err = Load([]string{"-"}, Options{Stdin: strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: [x]}\n")})
	want := []string{"<stdin>:1: document 1 (Pod): metadata.name: cannot use a JSON array as a string"}
	if diff := cmp.Diff(want, errorLines(t, err)); diff != "" {
		t.Errorf("errors (-want,+got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"empty/readme.md": "nothing here",
		"ok.yaml":         namespace("ok"),
	})
	t.Chdir(dir)
	res, err := Load([]string{"missing.yaml", "empty", "ok.yaml", "-", "-"}, Options{Stdin: strings.NewReader("")})
	want := []string{
		"missing.yaml: stat: no such file or directory",
		"empty: no .yaml, .yml or .json files in this directory",
		"<stdin>: standard input given more than once",
	}
	if diff := cmp.Diff(want, errorLines(t, err)); diff != "" {
		t.Errorf("errors (-want,+got):\n%s", diff)
	}
	if len(res.Snapshot.Namespaces) != 1 {
		t.Errorf("the readable file was not read: %+v", res.Snapshot.Namespaces)
	}
}
