package manifest

import (
	"fmt"
	"strings"
)

// Error is one problem with one input: a file that cannot be read, or a
// document that cannot be decoded or is invalid. It names the place the way
// a person would look for it: file, line, document, object, field.
type Error struct {
	// File is the path as given (or found by walking a directory);
	// "<stdin>" for standard input.
	File string
	// Line is the first line of the document in File (for a syntax error,
	// the line of the error); 0 when unknown.
	Line int
	// Document is the 1-based index of the document in File; 0 when the
	// problem is with the file itself.
	Document int
	// Item is the index of the object in a List document ("items[3]");
	// empty for a top-level object.
	Item string
	// Kind, Namespace and Name of the object, as far as they are known.
	Kind      string
	Namespace string
	Name      string
	// Field is the path of the offending field (spec.ingress[0].ports[0].port);
	// empty when unknown.
	Field string
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Document > 0 {
		fmt.Fprintf(&b, ": document %d", e.Document)
		if e.Item != "" {
			fmt.Fprintf(&b, ", %s", e.Item)
		}
	}
	if obj := e.object(); obj != "" {
		fmt.Fprintf(&b, " (%s)", obj)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// object renders "Kind ns/name" with whatever parts are known.
func (e *Error) object() string {
	id := e.Name
	if e.Namespace != "" && e.Name != "" {
		id = e.Namespace + "/" + e.Name
	}
	switch {
	case e.Kind != "" && id != "":
		return e.Kind + " " + id
	case e.Kind != "":
		return e.Kind
	default:
		return id
	}
}

// Errors is every problem found in one load, in input order. Load returns it
// (as error) only when it is not empty.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As see every error of the list.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// PanicError is a panic of a decoder, recovered and turned into an error so
// that one hostile document cannot stop the others from being read. Seeing
// one is a bug worth reporting.
type PanicError struct {
	Value any
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error while decoding (please report): %v", e.Value)
}
