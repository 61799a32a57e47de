// Command apidocs writes the API reference (docs/api.md) from the Go types of
// an API package (api/v1alpha1): one section per kind (the types marked
// +kubebuilder:object:root=true, but their lists) and one per type they
// reach, with their doc comments, their fields' JSON names, types,
// requirement and validation (the +kubebuilder:validation markers, on the
// field or on its type), and each kind's printer columns.
//
//	go run ./hack/apidocs -dir api/v1alpha1 -out docs/api.md
//
// make api-docs runs it; make verify-api-docs (a prerequisite of make test)
// fails when docs/api.md is not what it writes. The output depends only on the
// source: the same types give the same bytes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

func main() {
	dir := flag.String("dir", "api/v1alpha1", "the API package's directory")
	out := flag.String("out", "-", "the file to write, - for the standard output")
	flag.Parse()
	text, err := Generate(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
	if *out == "-" {
		_, err = os.Stdout.Write(text)
	} else {
		err = os.WriteFile(*out, text, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
}

// typeInfo is a named type of the API package.
type typeInfo struct {
	name    string
	doc     []string // the doc comment's lines, markers left out
	markers []string // the doc comment's markers, without their leading +
	spec    *ast.TypeSpec
	imports map[string]string // the file's import names to paths
}

// field is one row of a fields table.
type field struct {
	json     string
	typ      string // Markdown
	required bool
	doc      string
	rules    []string
}

// api is a parsed API package.
type api struct {
	group, version string
	types          map[string]*typeInfo
}

// Generate returns the Markdown reference of the API package in dir.
func Generate(dir string) ([]byte, error) {
	a, err := load(dir)
	if err != nil {
		return nil, err
	}
	return a.render()
}

func load(dir string) (*api, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	a := &api{version: filepath.Base(dir), types: map[string]*typeInfo{}}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, "zz_generated") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		a.version = f.Name.Name
		if f.Doc != nil {
			_, markers := splitComment(f.Doc)
			for _, m := range markers {
				if g, ok := strings.CutPrefix(m, "groupName="); ok {
					a.group = g
				}
			}
		}
		imports := map[string]string{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			name := path[strings.LastIndex(path, "/")+1:]
			if imp.Name != nil {
				name = imp.Name.Name
			}
			imports[name] = path
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				cg := ts.Doc
				if cg == nil && len(gd.Specs) == 1 {
					cg = gd.Doc
				}
				doc, markers := splitComment(cg)
				a.types[ts.Name.Name] = &typeInfo{name: ts.Name.Name, doc: doc, markers: markers, spec: ts, imports: imports}
			}
		}
	}
	if len(a.types) == 0 {
		return nil, fmt.Errorf("%s: no types", dir)
	}
	return a, nil
}

// splitComment returns a comment's text lines and its markers (the lines
// that start with +, without it).
func splitComment(cg *ast.CommentGroup) (doc, markers []string) {
	if cg == nil {
		return nil, nil
	}
	for _, line := range strings.Split(strings.TrimRight(cg.Text(), "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "+"); ok {
			markers = append(markers, m)
			continue
		}
		doc = append(doc, line)
	}
	// Drop the blank lines left at either end.
	for len(doc) > 0 && doc[0] == "" {
		doc = doc[1:]
	}
	for len(doc) > 0 && doc[len(doc)-1] == "" {
		doc = doc[:len(doc)-1]
	}
	return doc, markers
}

// marker returns the value of the first marker named name (name=value, or
// name alone for "true"), and whether there is one.
func marker(markers []string, name string) (string, bool) {
	for _, m := range markers {
		if m == name {
			return "true", true
		}
		if v, ok := strings.CutPrefix(m, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// markerArgs parses the arguments of a marker such as
// printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`.
func markerArgs(s string) map[string]string {
	args := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			args[s] = "true"
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		switch {
		case strings.HasPrefix(s, `"`):
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if uq, err := strconv.Unquote(s[:min(end+1, len(s))]); err == nil {
				val = uq
			} else {
				val = strings.Trim(s[:min(end+1, len(s))], `"`)
			}
			s = s[min(end+1, len(s)):]
		case strings.HasPrefix(s, "`"):
			end := strings.IndexByte(s[1:], '`')
			if end < 0 {
				end = len(s) - 1
			}
			val = s[1 : end+1]
			s = s[min(end+2, len(s)):]
		case strings.HasPrefix(s, "{"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				end = len(s) - 1
			}
			val = strings.ReplaceAll(s[1:end], ",", ";")
			s = s[end+1:]
		default:
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val = s[:end]
			s = s[end:]
		}
		args[key] = val
		s = strings.TrimPrefix(s, ",")
	}
	return args
}

// isKind says whether t is a kind: a root object that is not a list.
func (a *api) isKind(t *typeInfo) bool {
	if v, _ := marker(t.markers, "kubebuilder:object:root"); v != "true" {
		return false
	}
	if st, ok := t.spec.Type.(*ast.StructType); ok {
		for _, f := range st.Fields.List {
			for _, n := range f.Names {
				if n.Name == "Items" && strings.HasSuffix(t.name, "List") {
					return false
				}
			}
		}
	}
	return true
}

func (a *api) render() ([]byte, error) {
	var kinds []*typeInfo
	for _, t := range a.types {
		if a.isKind(t) {
			kinds = append(kinds, t)
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("no kind (+kubebuilder:object:root=true) in package %s", a.version)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].name < kinds[j].name })

	// The types the kinds reach, in the order they are first met.
	var nested []*typeInfo
	seen := map[string]bool{}
	for _, k := range kinds {
		seen[k.name] = true
	}
	var visit func(e ast.Expr)
	visit = func(e ast.Expr) {
		switch e := e.(type) {
		case *ast.Ident:
			t, ok := a.types[e.Name]
			if !ok || seen[e.Name] {
				return
			}
			seen[e.Name] = true
			nested = append(nested, t)
			walkFields(t, visit)
		case *ast.StarExpr:
			visit(e.X)
		case *ast.ArrayType:
			visit(e.Elt)
		case *ast.MapType:
			visit(e.Key)
			visit(e.Value)
		}
	}
	for _, k := range kinds {
		walkFields(k, visit)
	}

	var b bytes.Buffer
	b.WriteString("# API reference\n\n")
	b.WriteString("<!-- Generated by hack/apidocs from api/" + a.version + " (make api-docs): do not edit. -->\n\n")
	fmt.Fprintf(&b, "Group `%s`, version `%s`: `apiVersion: %s`. ", a.group, a.version, a.apiVersion())
	b.WriteString("Generated from the Go types in [`api/" + a.version + "`](../api/" + a.version + ") by `make api-docs`; ")
	b.WriteString("the CRDs in [`config/crd/bases`](../config/crd/bases) are generated from the same types.\n\n")
	b.WriteString("Kinds:\n\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "- [%s](#%s)\n", k.name, anchor(k.name))
	}
	b.WriteString("\nTypes:\n\n")
	for _, t := range nested {
		fmt.Fprintf(&b, "- [%s](#%s)\n", t.name, anchor(t.name))
	}
	for _, k := range kinds {
		a.renderKind(&b, k)
	}
	for _, t := range nested {
		a.renderType(&b, t)
	}
	return b.Bytes(), nil
}

func (a *api) apiVersion() string {
	if a.group == "" {
		return a.version
	}
	return a.group + "/" + a.version
}

// walkFields calls visit on the type of each field of t (or on its
// underlying type when t is not a struct).
func walkFields(t *typeInfo, visit func(ast.Expr)) {
	st, ok := t.spec.Type.(*ast.StructType)
	if !ok {
		visit(t.spec.Type)
		return
	}
	for _, f := range st.Fields.List {
		visit(f.Type)
	}
}

func (a *api) renderKind(b *bytes.Buffer, k *typeInfo) {
	fmt.Fprintf(b, "\n## %s\n\n", k.name)
	writeDoc(b, k.doc)
	scope := "Namespaced"
	var shortNames, categories []string
	for _, m := range k.markers {
		if v, ok := strings.CutPrefix(m, "kubebuilder:resource:"); ok {
			args := markerArgs(v)
			if s := args["scope"]; s != "" {
				scope = s
			}
			if s := args["shortName"]; s != "" {
				shortNames = append(shortNames, strings.Split(s, ";")...)
			}
			if s := args["categories"]; s != "" {
				categories = append(categories, strings.Split(s, ";")...)
			}
		}
	}
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(b, "| apiVersion | `%s` |\n", a.apiVersion())
	fmt.Fprintf(b, "| kind | `%s` |\n", k.name)
	fmt.Fprintf(b, "| scope | %s |\n", scope)
	if len(shortNames) > 0 {
		fmt.Fprintf(b, "| short names | %s |\n", codeList(shortNames))
	}
	if len(categories) > 0 {
		fmt.Fprintf(b, "| categories | %s |\n", codeList(categories))
	}
	var subresources []string
	for _, m := range k.markers {
		if s, ok := strings.CutPrefix(m, "kubebuilder:subresource:"); ok {
			subresources = append(subresources, s)
		}
	}
	if len(subresources) > 0 {
		fmt.Fprintf(b, "| subresources | %s |\n", codeList(subresources))
	}

	fmt.Fprintf(b, "\n### %s fields\n\n", k.name)
	writeFields(b, a.fields(k, true))

	var columns [][]string
	for _, m := range k.markers {
		if v, ok := strings.CutPrefix(m, "kubebuilder:printcolumn:"); ok {
			args := markerArgs(v)
			shown := "always"
			if p := args["priority"]; p != "" && p != "0" {
				shown = "`-o wide` (priority " + p + ")"
			}
			columns = append(columns, []string{args["name"], args["type"], code(args["JSONPath"]), shown})
		}
	}
	if len(columns) > 0 {
		fmt.Fprintf(b, "\n### %s printer columns\n\n", k.name)
		b.WriteString("What `kubectl get` shows, after `NAME` (and `NAMESPACE` with `-A`).\n\n")
		b.WriteString("| Column | Type | JSONPath | Shown |\n|---|---|---|---|\n")
		for _, c := range columns {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(c[0]), cell(c[1]), cell(c[2]), cell(c[3]))
		}
	}
}

func (a *api) renderType(b *bytes.Buffer, t *typeInfo) {
	fmt.Fprintf(b, "\n## %s\n\n", t.name)
	writeDoc(b, t.doc)
	if _, ok := t.spec.Type.(*ast.StructType); !ok {
		fmt.Fprintf(b, "Type: %s.\n", a.typeString(t, t.spec.Type))
		if rules := validation(t.markers); len(rules) > 0 {
			fmt.Fprintf(b, "\nValidation: %s.\n", strings.Join(rules, "; "))
		}
		return
	}
	if len(t.doc) == 0 {
		fmt.Fprintf(b, "A `%s`.\n\n", t.name)
	}
	writeFields(b, a.fields(t, false))
}

func writeDoc(b *bytes.Buffer, doc []string) {
	if len(doc) == 0 {
		return
	}
	for _, l := range doc {
		b.WriteString(escapeText(l))
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func writeFields(b *bytes.Buffer, fields []field) {
	if len(fields) == 0 {
		b.WriteString("No fields.\n")
		return
	}
	b.WriteString("| Field | Type | Required | Description | Validation |\n|---|---|---|---|---|\n")
	for _, f := range fields {
		req := "optional"
		if f.required {
			req = "**required**"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", f.json, f.typ, req, cell(escapeText(f.doc)), strings.Join(f.rules, "<br>"))
	}
}

// fields returns the rows of t's fields table. A kind's embedded TypeMeta
// gives its apiVersion and kind rows.
func (a *api) fields(t *typeInfo, kind bool) []field {
	st := t.spec.Type.(*ast.StructType)
	var out []field
	for _, f := range st.Fields.List {
		tag := ""
		if f.Tag != nil {
			tv, _ := strconv.Unquote(f.Tag.Value)
			tag = lookupTag(tv, "json")
		}
		jsonName, opts, _ := strings.Cut(tag, ",")
		if jsonName == "-" {
			continue
		}
		doc, markers := splitComment(f.Doc)
		if len(f.Names) == 0 { // embedded
			typeName := exprName(f.Type)
			if jsonName == "" && strings.Contains(","+opts+",", ",inline,") {
				if typeName == "TypeMeta" {
					if kind {
						out = append(out,
							field{json: "apiVersion", typ: "string", required: true, doc: "`" + a.apiVersion() + "`"},
							field{json: "kind", typ: "string", required: true, doc: "`" + t.name + "`"})
					}
					continue
				}
				if inner, ok := a.types[typeName]; ok {
					if _, ok := inner.spec.Type.(*ast.StructType); ok {
						out = append(out, a.fields(inner, kind)...)
					}
				}
				continue
			}
			if jsonName == "" {
				jsonName = typeName
			}
			if len(doc) == 0 && typeName == "ObjectMeta" {
				doc = []string{"Standard object metadata: name, namespace, labels, annotations…"}
			}
			if len(doc) == 0 && typeName == "ListMeta" {
				doc = []string{"Standard list metadata."}
			}
			out = append(out, a.field(t, jsonName, opts, f.Type, doc, markers))
			continue
		}
		for _, n := range f.Names {
			if !n.IsExported() {
				continue
			}
			name := jsonName
			if name == "" {
				name = n.Name
			}
			out = append(out, a.field(t, name, opts, f.Type, doc, markers))
		}
	}
	return out
}

func (a *api) field(owner *typeInfo, name, opts string, typ ast.Expr, doc, markers []string) field {
	f := field{json: name, typ: a.typeString(owner, typ), doc: strings.Join(doc, " ")}
	// As controller-gen decides: a marker first, else omitempty.
	switch {
	case hasMarker(markers, "optional"), hasMarker(markers, "kubebuilder:validation:Optional"):
		f.required = false
	case hasMarker(markers, "required"), hasMarker(markers, "kubebuilder:validation:Required"):
		f.required = true
	default:
		f.required = !strings.Contains(","+opts+",", ",omitempty,")
	}
	f.rules = validation(markers)
	// The validation of a named type of the package applies to its fields.
	if t, ok := a.types[exprName(typ)]; ok && !isLocalStruct(t) {
		if _, isStar := typ.(*ast.StarExpr); isStar || isIdent(typ) {
			f.rules = append(validation(t.markers), f.rules...)
		}
	}
	return f
}

func isIdent(e ast.Expr) bool { _, ok := e.(*ast.Ident); return ok }

func isLocalStruct(t *typeInfo) bool { _, ok := t.spec.Type.(*ast.StructType); return ok }

func hasMarker(markers []string, name string) bool {
	v, ok := marker(markers, name)
	return ok && v == "true"
}

// validation renders the validation, default and list markers.
func validation(markers []string) []string {
	var rules []string
	for _, m := range markers {
		var prefix string
		rest, ok := strings.CutPrefix(m, "kubebuilder:validation:")
		if ok {
			if r, ok := strings.CutPrefix(rest, "items:"); ok {
				prefix, rest = "items ", r
			}
		} else if r, ok := strings.CutPrefix(m, "kubebuilder:default="); ok {
			rest = "Default=" + r
		} else if r, ok := strings.CutPrefix(m, "listType="); ok {
			rest = "list type=" + r
		} else if r, ok := strings.CutPrefix(m, "listMapKey="); ok {
			rest = "list map key=" + r
		} else {
			continue
		}
		name, val, hasVal := strings.Cut(rest, "=")
		switch name {
		case "Optional", "Required":
			continue
		case "Enum":
			var vals []string
			for _, v := range strings.Split(val, ";") {
				vals = append(vals, unquoteMarker(v))
			}
			rules = append(rules, prefix+"Enum: "+codeList(vals))
		case "Pattern", "Default", "list map key":
			rules = append(rules, prefix+name+": "+cell(code(unquoteMarker(val))))
		default:
			if !hasVal {
				rules = append(rules, prefix+name)
			} else {
				rules = append(rules, prefix+name+": "+cell(unquoteMarker(val)))
			}
		}
	}
	return rules
}

func unquoteMarker(v string) string {
	if len(v) >= 2 && (v[0] == '`' && v[len(v)-1] == '`') {
		return v[1 : len(v)-1]
	}
	if uq, err := strconv.Unquote(v); err == nil {
		return uq
	}
	return v
}

// lookupTag is reflect.StructTag.Get on a tag's text.
func lookupTag(tag, key string) string {
	for tag != "" {
		tag = strings.TrimLeft(tag, " ")
		colon := strings.Index(tag, ":\"")
		if colon <= 0 {
			return ""
		}
		name := tag[:colon]
		rest := tag[colon+1:]
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(rest) {
			return ""
		}
		val, err := strconv.Unquote(rest[:end+1])
		if err != nil {
			return ""
		}
		if name == key {
			return val
		}
		tag = rest[end+1:]
	}
	return ""
}

// exprName is the name of a (possibly pointer, possibly qualified) type.
func exprName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return exprName(e.X)
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

var builtins = map[string]string{
	"string": "string", "bool": "boolean",
	"int": "integer", "int32": "integer (int32)", "int64": "integer (int64)",
	"uint": "integer", "uint32": "integer (uint32)", "uint64": "integer (uint64)",
	"float32": "number", "float64": "number", "byte": "integer (byte)",
}

// typeString renders a field's type in Markdown, with links to the
// package's types and to pkg.go.dev for other packages'.
func (a *api) typeString(owner *typeInfo, e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		if t, ok := a.types[e.Name]; ok {
			s := fmt.Sprintf("[%s](#%s)", e.Name, anchor(e.Name))
			if !isLocalStruct(t) {
				s += " (" + a.underlying(t) + ")"
			}
			return s
		}
		if s, ok := builtins[e.Name]; ok {
			return s
		}
		return e.Name
	case *ast.StarExpr:
		return a.typeString(owner, e.X)
	case *ast.ArrayType:
		if id, ok := e.Elt.(*ast.Ident); ok && id.Name == "byte" {
			return "string (base64)"
		}
		return "array of " + a.typeString(owner, e.Elt)
	case *ast.MapType:
		return "map of " + a.typeString(owner, e.Key) + " to " + a.typeString(owner, e.Value)
	case *ast.SelectorExpr:
		pkg := exprName(e.X)
		path := owner.imports[pkg]
		name := pkg + "." + e.Sel.Name
		if path == "" {
			return "`" + name + "`"
		}
		return fmt.Sprintf("[%s](https://pkg.go.dev/%s#%s)", name, path, e.Sel.Name)
	case *ast.InterfaceType:
		return "any"
	}
	return "?"
}

// underlying renders the underlying type of a package type that is not a
// struct, without links.
func (a *api) underlying(t *typeInfo) string {
	switch u := t.spec.Type.(type) {
	case *ast.Ident:
		if s, ok := builtins[u.Name]; ok {
			return s
		}
		if inner, ok := a.types[u.Name]; ok && !isLocalStruct(inner) {
			return a.underlying(inner)
		}
		return u.Name
	}
	return a.typeString(t, t.spec.Type)
}

// anchor is GitHub's anchor of a heading made of a type name.
func anchor(name string) string { return strings.ToLower(name) }

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func codeList(vals []string) string {
	var out []string
	for _, v := range vals {
		out = append(out, code(v))
	}
	return strings.Join(out, ", ")
}

// cell escapes what would end a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// escapeText escapes what Markdown would read as HTML in prose.
func escapeText(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(s)
}
