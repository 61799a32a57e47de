package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// document is one top-level document of an input, converted to JSON.
type document struct {
	file  string
	index int // 1-based
	line  int // first line in file; 0 when unknown
	json  []byte
	// err is set instead of json when the document could not be read.
	err *Error
}

// splitDocuments cuts one input into documents. A .yaml or .yml file is
// read as multi-document YAML, flow-style (JSON) documents included; a .json
// file as a stream of JSON values; any other input (standard input, a file
// named on the command line) as JSON when its first non-blank byte is '{',
// else as YAML. When that reading finds an error and the other one reads the
// whole input without, the other one is taken: a JSON stream saved as .yaml,
// or YAML whose first document is JSON on standard input. A document that
// cannot be converted is reported and the next one is still read; a broken
// JSON stream or YAML separator ends the input, since nothing after it can
// be located reliably.
func splitDocuments(file string, data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	asJSON := utilyaml.IsJSONBuffer(data)
	switch strings.ToLower(filepath.Ext(file)) {
	case ".json":
		asJSON = true
	case ".yaml", ".yml":
		asJSON = false
	}
	first, other := splitYAML, splitJSON
	if asJSON {
		first, other = splitJSON, splitYAML
	}
	docs := first(file, data)
	if !failed(docs) {
		return docs
	}
	if alt := other(file, data); !failed(alt) {
		return alt
	}
	return docs
}

func failed(docs []document) bool {
	for _, d := range docs {
		if d.err != nil {
			return true
		}
	}
	return false
}

func splitJSON(file string, data []byte) []document {
	var docs []document
	dec := json.NewDecoder(bytes.NewReader(data))
	for index := 1; ; index++ {
		start := int(dec.InputOffset())
		for start < len(data) && isSpace(data[start]) {
			start++
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			line := lineAt(data, start)
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				line = lineAt(data, int(syn.Offset))
			}
			return append(docs, document{file: file, index: index, err: &Error{File: file, Line: line, Document: index, Err: err}})
		}
		docs = append(docs, document{file: file, index: index, line: lineAt(data, start), json: raw})
	}
}

func splitYAML(file string, data []byte) []document {
	var (
		docs   []document
		cursor int
	)
	// The reader ends every line with "\n", whatever ended it in the input
	// ("\r\n", or nothing on the last line): the documents are found again
	// in the input written the same way. The lines do not move.
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for index := 1; ; index++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			// An invalid separator ("--- foo"): the reader drops the document
			// before it and consumes the line. Report it where it is, and
			// read on.
			line, end := badSeparator(data, cursor)
			cursor = end
			docs = append(docs, document{file: file, index: index, err: &Error{File: file, Line: line, Document: index, Err: err}})
			if line == 0 {
				return docs // cannot happen; never loop on an error
			}
			continue
		}
		// The reader returns the lines of the document, in order, so
		// finding them again gives the line numbers.
		line := 0
		if i := bytes.Index(data[cursor:], raw); i >= 0 {
			line = lineAt(data, cursor+i)
			cursor += i + len(raw)
		}
		js, err := yaml.YAMLToJSONStrict(raw) // strict: duplicate keys are errors
		if err != nil {
			docs = append(docs, document{file: file, index: index, line: line,
				err: &Error{File: file, Line: line, Document: index, Err: yamlError(err, line)}})
			continue
		}
		if err := trailingContent(raw); err != nil {
			docs = append(docs, document{file: file, index: index, line: line,
				err: &Error{File: file, Line: line, Document: index, Err: err}})
			continue
		}
		docs = append(docs, document{file: file, index: index, line: line, json: js})
	}
}

// errTrailingContent is what trailingContent reports.
var errTrailingContent = errors.New("text follows the end of the YAML document " +
	"(a second {...}, a first line indented more than the next, or text after \"...\"): separate documents with a --- line")

// trailingContent returns an error when raw, the text between two
// separators, holds more than the one document that YAMLToJSON converts:
// go-yaml stops at the end of the first and would drop the rest unseen
// ({...} followed by {...}, a first line indented deeper than the next,
// "..." followed by more). Only the text that may end early is parsed again.
func trailingContent(raw []byte) error {
	if !mayEndEarly(raw) {
		return nil
	}
	dec := yamlv2.NewDecoder(bytes.NewReader(raw))
	var node skipNode
	if err := dec.Decode(&node); err != nil {
		return nil // the conversion read it: cannot happen
	}
	if err := dec.Decode(&node); !errors.Is(err, io.EOF) {
		return errTrailingContent
	}
	return nil
}

// mayEndEarly says whether a YAML document could end before the end of raw
// without a parse error. It cannot when the document is a block mapping
// whose first key is a plain word in column 0, or a block sequence in column
// 0 (every manifest written as YAML), and no line starts with "..." (document
// end) or "%" (a directive). FuzzMayEndEarly checks it against the parser.
func mayEndEarly(raw []byte) bool {
	if bytes.ContainsAny(raw, "\r\u0085\u2028\u2029") {
		return true // line breaks to YAML that bytes.Lines does not split at
	}
	first := true
	for line := range bytes.Lines(raw) {
		if bytes.HasPrefix(line, []byte("...")) || bytes.HasPrefix(line, []byte("%")) {
			return true
		}
		if !first {
			continue
		}
		if trimmed := bytes.TrimLeft(line, " \t\r\n"); len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		first = false
		if !blockStart.Match(line) {
			return true // a flow collection, a scalar, an indented first line...
		}
	}
	return false
}

// blockStart matches the first line of a block mapping or sequence in
// column 0.
var blockStart = regexp.MustCompile(`^([A-Za-z0-9_][-A-Za-z0-9_./]*:|-)([ \t\r\n]|$)`)

// skipNode decodes any YAML node into nothing.
type skipNode struct{}

func (*skipNode) UnmarshalYAML(func(any) error) error { return nil }

// badSeparator finds the first line at or after offset that starts with
// "---" followed by something other than a comment, as the YAML reader
// rejects. It returns its line number and the offset after it; 0 and offset
// when there is none.
func badSeparator(data []byte, offset int) (line, end int) {
	for i := offset; i < len(data); {
		next := bytes.IndexByte(data[i:], '\n')
		if next < 0 {
			next = len(data)
		} else {
			next += i + 1
		}
		text := data[i:next]
		if rest, ok := bytes.CutPrefix(text, []byte("---")); ok {
			if rest = bytes.TrimSpace(rest); len(rest) > 0 && rest[0] != '#' {
				return lineAt(data, i), next
			}
		}
		i = next
	}
	return 0, offset
}

var yamlLine = regexp.MustCompile(`(^|: |\n\s*)line (\d+)`)

// yamlError flattens a go-yaml error onto one line and turns its line
// numbers, which count from the start of the document, into line numbers of
// the file.
func yamlError(err error, docLine int) error {
	msg := err.Error()
	if docLine > 0 {
		msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
			sub := yamlLine.FindStringSubmatch(m)
			n, convErr := strconv.Atoi(sub[2])
			if convErr != nil {
				return m
			}
			return sub[1] + "line " + strconv.Itoa(n+docLine-1)
		})
	}
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ")), " ")
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	return errors.New(msg)
}

func lineAt(data []byte, offset int) int {
	if offset > len(data) {
		offset = len(data)
	}
	if offset < 0 {
		offset = 0
	}
	return bytes.Count(data[:offset], []byte{'\n'}) + 1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// strictDecode decodes one JSON object into a typed object the way the API
// server does: field names are case-sensitive, and unknown or duplicate
// fields are errors. An unknown status, or unknown fields under status, are
// tolerated: only a server writes status, a newer server than these types
// may add fields there, and dumps carry a status (often "status: {}") even
// for kinds whose types no longer have one (NetworkPolicy).
// Each error carries the path of its field where it can be found. ok is
// false when the object could not be decoded at all; with only unknown or
// duplicate fields it is decoded and can still be validated.
func strictDecode(data []byte, into any) (errs []fieldError, ok bool) {
	strict, err := kjson.UnmarshalStrict(data, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return []fieldError{typeError(data, err)}, false
	}
	for _, s := range strict {
		var fe kjson.FieldError
		if errors.As(s, &fe) {
			if path := fe.FieldPath(); path == "status" || strings.HasPrefix(path, "status.") {
				continue
			}
			msg := strings.TrimSuffix(s.Error(), " \""+fe.FieldPath()+"\"")
			errs = append(errs, fieldError{field: fe.FieldPath(), err: errors.New(msg)})
			continue
		}
		errs = append(errs, fieldError{err: s})
	}
	return errs, true
}

// blankStatus returns data, a JSON object, with the value of its top-level
// status replaced by null when the status is not read (readStatus false) or
// is empty ({}, [], "", null), so that a status of any shape decodes. Only a
// Pod's status is read (its phase and IP); for every other kind status is
// what a server last wrote, never an input.
func blankStatus(data []byte, readStatus bool) []byte {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return data
	}
	var cuts [][2]int
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return data
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return data
		}
		if key != "status" || (readStatus && !isEmptyJSON(raw)) {
			continue
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		if start < 0 || !bytes.Equal(data[start:end], raw) {
			return data // never cut what was not found
		}
		cuts = append(cuts, [2]int{start, end})
	}
	if len(cuts) == 0 {
		return data
	}
	out := make([]byte, 0, len(data))
	last := 0
	for _, c := range cuts {
		out = append(append(out, data[last:c[0]]...), "null"...)
		last = c[1]
	}
	return append(out, data[last:]...)
}

func isEmptyJSON(raw []byte) bool {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false
	}
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// fieldError is an error about one field of a document.
type fieldError struct {
	field string
	err   error
}

// typeError turns a decoding error into a fieldError. encoding/json names
// the field of a type error without array indices ("spec.ingress.ports.port");
// the indices are found again by walking the document for the first value
// of that kind at that path.
func typeError(data []byte, err error) fieldError {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" {
		return fieldError{err: err}
	}
	want, _, _ := strings.Cut(te.Value, " ")
	path := locate(data, te.Field, want)
	if path == "" {
		path = te.Field
	}
	return fieldError{field: path, err: fmt.Errorf("cannot use a JSON %s as %s", te.Value, goTypeName(te))}
}

func goTypeName(te *json.UnmarshalTypeError) string {
	if te.Type == nil {
		return "this field"
	}
	switch te.Type.Kind().String() {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return te.Type.String()
}

// locate returns the indexed path ("spec.ingress[0].ports[1].port") of the
// first value in data, in document order, whose unindexed path is field (or
// whose parent's is: a map value's error names the map) and whose JSON kind
// is kind. It returns "" when there is none.
func locate(data []byte, field, kind string) string {
	w := walker{dec: json.NewDecoder(bytes.NewReader(data)), field: field, kind: kind}
	w.dec.UseNumber()
	w.walk("", "", "", 0)
	return w.found
}

type walker struct {
	dec         *json.Decoder
	field, kind string
	found       string
	failed      bool
}

// walk reads one value. path is its indexed path, dotted its path without
// indices, parent the dotted path of its container.
func (w *walker) walk(path, dotted, parent string, depth int) {
	if w.failed || w.found != "" || depth > 1000 {
		w.failed = true
		return
	}
	tok, err := w.dec.Token()
	if err != nil {
		w.failed = true
		return
	}
	kind := ""
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			kind = "object"
		} else {
			kind = "array"
		}
	case bool:
		kind = "bool"
	case json.Number:
		kind = "number"
	case string:
		kind = "string"
	case nil:
		kind = "null"
	}
	if kind == w.kind && (dotted == w.field || (parent == w.field && parent != dotted)) {
		w.found = path
		return
	}
	switch kind {
	case "object":
		for w.dec.More() && !w.failed && w.found == "" {
			keyTok, err := w.dec.Token()
			key, ok := keyTok.(string)
			if err != nil || !ok {
				w.failed = true
				return
			}
			w.walk(joinPath(path, key), joinDotted(dotted, key), dotted, depth+1)
		}
		if w.found == "" && !w.failed {
			_, _ = w.dec.Token() // '}'
		}
	case "array":
		for i := 0; w.dec.More() && !w.failed && w.found == ""; i++ {
			w.walk(fmt.Sprintf("%s[%d]", path, i), dotted, parent, depth+1)
		}
		if w.found == "" && !w.failed {
			_, _ = w.dec.Token() // ']'
		}
	}
}

func joinDotted(dotted, key string) string {
	if dotted == "" {
		return key
	}
	return dotted + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// joinPath appends a key the way Kubernetes field paths do: ".key", or
// "[key]" for keys like app.kubernetes.io/name.
func joinPath(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + key + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
