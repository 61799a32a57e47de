// Package manifest reads Kubernetes manifests (files, directory trees,
// standard input; YAML or JSON; single objects or Lists such as
// `kubectl get -o yaml` prints) into the translate.Snapshot the engine
// decides from, plus what the offline CLI reports about its input.
//
// Decoding is strict, like the API server: a misspelt field in a kind that is
// read is an error, and every error names its file, document, object and
// field. A broken document never hides the others: all errors come back
// together, in input order. What is not a Kubernetes object at all (a JSON
// array, a package.json, a values file) is no error: it is skipped, and
// counted and named in Stats. Status is what a server wrote: only a Pod's is
// read.
package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

// DefaultIstioNamespace is Istio's usual control-plane namespace.
const DefaultIstioNamespace = translate.DefaultIstioNamespace

// StdinName is how standard input is named in errors and reports.
const StdinName = "<stdin>"

// Options for one load.
type Options struct {
	// IstioNamespace is Istio's control-plane namespace, where the mesh
	// ConfigMap "istio" lives. Empty means istio-system.
	IstioNamespace string
	// Stdin is read for the path "-".
	Stdin io.Reader
}

// Input is one named input already in memory.
type Input struct {
	// Name is how the input is named in errors: its path, or <stdin>.
	Name string
	Data []byte
}

// Result is what a load found.
type Result struct {
	// Snapshot is ready for translate.Translate, except that Mesh holds only
	// what the mesh ConfigMap says (RootNamespace falls back to the
	// control-plane namespace): flags are the caller's to apply.
	Snapshot translate.Snapshot
	// Mesh is what the mesh ConfigMap said, if one was read.
	Mesh MeshConfig
	// AuthorizationPolicies read (security.istio.io v1 or v1beta1), sorted by
	// namespace and name. They are not part of the Snapshot.
	AuthorizationPolicies []*securityv1.AuthorizationPolicy
	// ServiceAccounts read, sorted.
	ServiceAccounts []types.NamespacedName
	Stats           Stats
}

// MeshConfig is what the mesh ConfigMap (name istio, key mesh, in the
// control-plane namespace) said.
type MeshConfig struct {
	// Found is true when the ConfigMap was in the input.
	Found bool
	// Origin names where it was read ("file.yaml document 2").
	Origin string
	// TrustDomain and RootNamespace as written there; empty when unset.
	TrustDomain   string
	RootNamespace string
}

// Stats count what was read, for the report.
type Stats struct {
	// Files read (standard input counts as one).
	Files int
	// Documents read, not counting empty ones. A List is one document.
	Documents int
	// Objects read, by kind (List items included).
	Objects map[string]int
	// Skipped objects of kinds not read, by "apiVersion/kind", and
	// documents that are not Kubernetes objects, by file (NotObjectKey).
	Skipped map[string]int
	// NotObjects are the documents (and List items) skipped because they
	// are not Kubernetes objects, in input order: a JSON array, a values
	// file, a package.json. Each is also counted in Skipped.
	NotObjects []NotObject
	// Templates is the number of workloads whose pod template stands for
	// their pods.
	Templates int
	// WorkloadsCovered is the number of workloads not expanded because
	// their pods, or the workload that controls them, are in the input.
	WorkloadsCovered int
	// PartialNamespaces are namespaces referenced but not in the input,
	// known to the engine by name only.
	PartialNamespaces []string
}

// NotObject is a document, or an item of a List, that is not a Kubernetes
// object, and was skipped.
type NotObject struct {
	File string
	// Line is the first line of the document; 0 when unknown.
	Line int
	// Document is its 1-based index in File.
	Document int
	// Item is its index in a List ("items[3]"); empty for a document.
	Item string
	// Reason says why it is not a Kubernetes object.
	Reason string
}

// String names it the way an Error names a place: "file:line: document N:
// reason".
func (n NotObject) String() string {
	return (&Error{File: n.File, Line: n.Line, Document: n.Document, Item: n.Item, Err: errors.New(n.Reason)}).Error()
}

// NotObjectKey is the key of Stats.Skipped that counts the documents of file
// that are not Kubernetes objects.
func NotObjectKey(file string) string {
	return "(not a Kubernetes object) " + file
}

// Load reads paths (files, directories walked recursively for .yaml, .yml
// and .json files in lexical order, or "-" for o.Stdin) and decodes them. A
// directory's entries whose names start with a dot (.git, .github) are not
// walked. The same file named twice is read once.
//
// The Result is always returned, with whatever could be decoded; the error,
// when not nil, is an Errors listing every problem.
func Load(paths []string, o Options) (*Result, error) {
	var (
		inputs []Input
		errs   Errors
		seen   = map[string]bool{}
		stdin  bool
	)
	add := func(name string) {
		key := name
		if abs, err := filepath.Abs(name); err == nil {
			key = abs
		}
		if seen[key] {
			return
		}
		seen[key] = true
		data, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, &Error{File: name, Err: unwrapPathError(err)})
			return
		}
		inputs = append(inputs, Input{Name: name, Data: data})
	}
	for _, p := range paths {
		if p == "-" {
			if stdin {
				errs = append(errs, &Error{File: StdinName, Err: errors.New("standard input given more than once")})
				continue
			}
			stdin = true
			if o.Stdin == nil {
				errs = append(errs, &Error{File: StdinName, Err: errors.New("no standard input")})
				continue
			}
			data, err := io.ReadAll(o.Stdin)
			if err != nil {
				errs = append(errs, &Error{File: StdinName, Err: err})
				continue
			}
			inputs = append(inputs, Input{Name: StdinName, Data: data})
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Err: unwrapPathError(err)})
			continue
		}
		if !info.IsDir() {
			add(p)
			continue
		}
		files, err := walk(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Err: err})
		}
		if len(files) == 0 && err == nil {
			errs = append(errs, &Error{File: p, Err: errors.New("no .yaml, .yml or .json files in this directory")})
		}
		for _, f := range files {
			add(f)
		}
	}
	res, err := Decode(inputs, o)
	var decodeErrs Errors
	errors.As(err, &decodeErrs)
	errs = append(errs, decodeErrs...)
	if len(errs) > 0 {
		return res, errs
	}
	return res, nil
}

// walk lists the manifest files under dir, in lexical order.
func walk(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	return files, err
}

// unwrapPathError drops the "open PATH:" prefix, since Error names the file.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// Decode decodes inputs already in memory. It never panics: a decoder panic
// is recovered and reported as a PanicError for its document.
//
// The Result is always returned, with whatever could be decoded; the error,
// when not nil, is an Errors listing every problem in input order.
func Decode(inputs []Input, o Options) (*Result, error) {
	l := newLoader(o)
	for _, in := range inputs {
		l.stats.Files++
		for _, d := range splitDocuments(in.Name, in.Data) {
			l.document(d)
		}
	}
	res := l.finish()
	if len(l.errs) > 0 {
		return res, l.errs
	}
	return res, nil
}
