package install_test

import (
	"encoding/json"
	goversion "go/version"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// imageEntrypoint is the binary in the image, which the manifests run.
const imageEntrypoint = "/netpol2authz"

// No container engine builds the image here, so the Dockerfile is checked
// against the tree: what it copies exists and is in the build context, and
// it copies every file the binary is built from.
func TestDockerfileBuildsTheBinary(t *testing.T) {
	df := parseDockerfile(t)
	if len(df.stages) != 2 {
		t.Fatalf("want a builder stage and a runtime stage, got %d stages", len(df.stages))
	}
	builder, final := df.stages[0], df.stages[1]

	// The builder: a pinned Go release, as new as go.mod asks.
	m := regexp.MustCompile(`^golang:(1\.\d+\.\d+)(-[a-z0-9]+)?(@sha256:[0-9a-f]{64})?$`).FindStringSubmatch(builder.image)
	if m == nil {
		t.Errorf("builder image %s: want golang:1.X.Y[-variant][@sha256:...], a pinned release", builder.image)
	} else if want := goModVersion(t); goversion.Compare("go"+m[1], want) < 0 {
		t.Errorf("builder image %s is older than go.mod's %s", builder.image, want)
	}
	// The runtime: distroless static, nonroot.
	if !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot(@sha256:[0-9a-f]{64})?$`).MatchString(final.image) {
		t.Errorf("runtime image %s: want gcr.io/distroless/static[-debianN]:nonroot", final.image)
	}
	if final.user != "65532:65532" && final.user != "65532" {
		t.Errorf("runtime USER %q, want 65532 (distroless nonroot)", final.user)
	}
	if !slices.Equal(final.entrypoint, []string{imageEntrypoint}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", final.entrypoint, imageEntrypoint)
	}

	// The build: static, of the main package, to the path the runtime copies.
	var build string
	for _, r := range builder.runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	out := regexp.MustCompile(`\s-o\s+(\S+)\s+\.$`).FindStringSubmatch(build)
	switch {
	case build == "":
		t.Fatal("the builder runs no go build")
	case !strings.Contains(build, "CGO_ENABLED=0"):
		t.Errorf("go build without CGO_ENABLED=0: %s", build)
	case out == nil:
		t.Errorf("want `go build ... -o BINARY .` (the main package at the root), got: %s", build)
	default:
		want := dockerCopy{from: builder.name, srcs: []string{path.Join(builder.workdir, out[1])}, dest: imageEntrypoint}
		if !slices.ContainsFunc(final.copies, func(c dockerCopy) bool {
			return c.from == want.from && slices.Equal(c.srcs, want.srcs) && c.dest == want.dest
		}) {
			t.Errorf("the runtime stage does not `COPY --from=%s %s %s`: %+v", want.from, want.srcs[0], want.dest, final.copies)
		}
	}

	// The context: what .dockerignore lets in.
	inContext := buildContext(t)
	for _, f := range slices.Sorted(maps.Keys(inContext)) {
		if strings.HasSuffix(f, "_test.go") || slices.Contains(strings.Split(f, "/"), "testdata") {
			t.Errorf("%s is in the build context: .dockerignore must keep tests and testdata out", f)
		}
	}
	// Every COPY source is there, and lands where the tree has it.
	copied := map[string]bool{}
	for _, c := range builder.copies {
		if c.from != "" {
			continue
		}
		for _, src := range c.srcs {
			files := copySources(inContext, src)
			if len(files) == 0 {
				t.Errorf("COPY %s: nothing in the build context (missing, or excluded by .dockerignore)", src)
			}
			for _, f := range files {
				if got := copyDest(src, f, c.dest, builder.workdir); got == path.Join(builder.workdir, f) {
					copied[f] = true
				} else {
					t.Errorf("COPY %s %s puts %s at %s, not %s", src, c.dest, f, got, path.Join(builder.workdir, f))
				}
			}
		}
	}
	// Every file the binary is built from is copied, for each platform.
	for _, arch := range []string{"amd64", "arm64"} {
		for _, f := range buildFiles(t, arch) {
			switch {
			case !inContext[f]:
				t.Errorf("%s (needed by the %s build) is not in the build context: see .dockerignore", f, arch)
			case !copied[f]:
				t.Errorf("%s (needed by the %s build) is not copied by the Dockerfile", f, arch)
			}
		}
	}
}

// The manifests run the image's binary as the image's user.
func TestManifestsRunTheImage(t *testing.T) {
	final := parseDockerfile(t).stages[1]
	uid, err := strconv.ParseInt(strings.Split(final.user, ":")[0], 10, 64)
	if err != nil {
		t.Fatalf("USER %q: %v", final.user, err)
	}
	for name, render := range map[string]func(t *testing.T) []byte{
		"kustomize config/default": func(t *testing.T) []byte { return kustomize(t, "config/default") },
		"chart defaults":           func(t *testing.T) []byte { return helmTemplate(t, "") },
	} {
		t.Run(name, func(t *testing.T) {
			d := managerDeployment(t, parse(t, render(t)))
			if sc := d.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != uid {
				t.Errorf("pod runAsUser is not the image's user %d", uid)
			}
			if c := d.Spec.Template.Spec.Containers[0]; !slices.Equal(c.Command, final.entrypoint) {
				t.Errorf("command %q, want the image's entrypoint %q", c.Command, final.entrypoint)
			}
		})
	}
}

type dockerfile struct{ stages []*stage }

type stage struct {
	image, name, workdir, user string
	args                       []string // the names the stage's ARGs declare
	copies                     []dockerCopy
	runs                       []string
	entrypoint                 []string
}

type dockerCopy struct {
	from string
	srcs []string
	dest string
}

// parseDockerfile reads the instructions this project's Dockerfile uses.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cont strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cont.WriteString(s + " ")
			continue
		}
		cont.WriteString(trimmed)
		lines = append(lines, cont.String())
		cont.Reset()
	}
	var df dockerfile
	var cur *stage
	for _, l := range lines {
		fields := strings.Fields(l)
		inst, args := strings.ToUpper(fields[0]), fields[1:]
		if inst != "FROM" && inst != "ARG" && cur == nil {
			t.Fatalf("Dockerfile: %s before FROM", inst)
		}
		switch inst {
		case "FROM":
			args = slices.DeleteFunc(args, func(a string) bool { return strings.HasPrefix(a, "--") })
			cur = &stage{image: args[0], workdir: "/"}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				cur.name = args[2]
			}
			df.stages = append(df.stages, cur)
		case "WORKDIR":
			cur.workdir = path.Join(cur.workdir, args[0])
		case "ARG":
			if cur != nil {
				name, _, _ := strings.Cut(args[0], "=")
				cur.args = append(cur.args, name)
			}
		case "USER":
			cur.user = args[0]
		case "RUN":
			cur.runs = append(cur.runs, strings.Join(args, " "))
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.Join(args, " ")), &cur.entrypoint); err != nil {
				t.Errorf("ENTRYPOINT %s: want the exec form (a JSON array): %v", strings.Join(args, " "), err)
			}
		case "COPY":
			var c dockerCopy
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				if v, ok := strings.CutPrefix(args[0], "--from="); ok {
					c.from = v
				}
				args = args[1:]
			}
			if len(args) < 2 {
				t.Fatalf("Dockerfile: COPY %s: want sources and a destination", strings.Join(args, " "))
			}
			c.srcs, c.dest = args[:len(args)-1], args[len(args)-1]
			cur.copies = append(cur.copies, c)
		}
	}
	return df
}

// goModVersion returns go.mod's go version (or its toolchain, if newer).
func goModVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	v := ""
	if m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data); m != nil {
		v = "go" + string(m[1])
	}
	if m := regexp.MustCompile(`(?m)^toolchain (\S+)$`).FindSubmatch(data); m != nil && goversion.Compare(string(m[1]), v) > 0 {
		v = string(m[1])
	}
	if !goversion.IsValid(v) {
		t.Fatalf("go.mod: no valid go version (%q)", v)
	}
	return v
}

// buildContext returns the files (slash paths from the root) that
// .dockerignore lets into the build context.
func buildContext(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(root(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	files := map[string]bool{}
	err = filepath.WalkDir(root(t), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root(t), p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if !excluded {
			files[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// copySources returns the context files a COPY source names: a directory's
// files, a file, or the files a pattern matches.
func copySources(inContext map[string]bool, src string) []string {
	src = path.Clean(src)
	var out []string
	for f := range inContext {
		if ok, _ := path.Match(src, f); ok || src == "." || strings.HasPrefix(f, src+"/") {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

// copyDest returns where COPY src dest puts the context file f.
func copyDest(src, f, dest, workdir string) string {
	if !path.IsAbs(dest) {
		dest = path.Join(workdir, dest)
	}
	src = path.Clean(src)
	if rel, ok := strings.CutPrefix(f, src+"/"); ok {
		return path.Join(dest, rel) // a directory's contents
	}
	if src == "." {
		return path.Join(dest, f)
	}
	return path.Join(dest, path.Base(f)) // a file, or files of a pattern, into a directory
}

// buildFiles returns go.mod, go.sum and the files of the project's packages
// that `go build .` compiles or embeds for linux/arch without cgo.
func buildFiles(t *testing.T, arch string) []string {
	t.Helper()
	const tmpl = `{{if and .Module .Module.Main}}{{$d := .Dir}}` +
		`{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .CgoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}` +
		`{{range .SFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .HFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}` +
		`{{range .SysoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`
	cmd := exec.Command("go", "list", "-deps", "-f", tmpl, ".")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps (linux/%s): %v", arch, err)
	}
	files := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root(t), l)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("package file %s is outside the repository", l)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	if len(files) < 4 {
		t.Fatalf("go list found too few files: %q", files)
	}
	return files
}
