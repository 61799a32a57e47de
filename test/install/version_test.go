package install_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const imageRepository = "ghcr.io/netpol2authz/netpol2authz"

// releaseVersion returns the VERSION file's release.
func releaseVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(data))
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(v) {
		t.Fatalf("VERSION %q: want vMAJOR.MINOR.PATCH[-PRERELEASE]", v)
	}
	return v
}

// shippedManifests renders what users apply: dist/install.yaml, the chart
// with its defaults and every kustomization of config/.
func shippedManifests(t *testing.T) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), installer))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{installer: data, "chart defaults": helmTemplate(t, "")}
	kustomizations, err := filepath.Glob(filepath.Join(root(t), "config", "*", "kustomization.yaml"))
	if err != nil || len(kustomizations) == 0 {
		t.Fatalf("no kustomization in config/ (%v)", err)
	}
	for _, k := range kustomizations {
		dir, _ := filepath.Rel(root(t), filepath.Dir(k))
		out[filepath.ToSlash(dir)] = kustomize(t, dir)
	}
	return out
}

// Security teams forbid :latest, and an untagged image is :latest: every
// image a shipped manifest runs has a tag other than latest, or a digest.
func TestNoLatestImages(t *testing.T) {
	var images int
	for name, data := range shippedManifests(t) {
		for _, o := range parse(t, data) {
			for _, img := range podImages(o) {
				images++
				if problem := imageProblem(img); problem != "" {
					t.Errorf("%s: %s %s runs %s: %s", name, o.GetKind(), o.GetName(), img, problem)
				}
			}
		}
	}
	if images == 0 {
		t.Fatal("no image found in the shipped manifests")
	}
}

func TestImageProblem(t *testing.T) {
	for img, bad := range map[string]bool{
		"ghcr.io/netpol2authz/netpol2authz:v0.2.0":         false,
		"registry.k8s.io/pause:3.10":                       false,
		"localhost:5000/netpol2authz:v1":                   false,
		"ghcr.io/x/y@sha256:" + strings.Repeat("a", 64):    false,
		"ghcr.io/x/y:v1@sha256:" + strings.Repeat("a", 64): false,
		"ghcr.io/netpol2authz/netpol2authz:latest":         true,
		"ghcr.io/netpol2authz/netpol2authz":                true,
		"localhost:5000/netpol2authz":                      true,
		"controller:latest":                                true,
		"busybox":                                          true,
	} {
		if got := imageProblem(img) != ""; got != bad {
			t.Errorf("imageProblem(%q) = %q, want a problem: %v", img, imageProblem(img), bad)
		}
	}
}

// imageProblem says what is wrong with an image reference, or "".
func imageProblem(img string) string {
	if _, digest, ok := strings.Cut(img, "@"); ok {
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
			return "a malformed digest"
		}
		return ""
	}
	name := img[strings.LastIndex(img, "/")+1:] // a registry's port is not a tag
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok || tag == "":
		return "no tag (that is :latest): pin a version"
	case tag == "latest":
		return ":latest: pin a version"
	}
	return ""
}

// podImages returns the images of the containers of a pod or of a pod
// template (workloads, CronJobs).
func podImages(o *unstructured.Unstructured) []string {
	var specs [][]string
	switch o.GetKind() {
	case "Pod":
		specs = [][]string{{"spec"}}
	case "CronJob":
		specs = [][]string{{"spec", "jobTemplate", "spec", "template", "spec"}}
	default:
		specs = [][]string{{"spec", "template", "spec"}}
	}
	var out []string
	for _, spec := range specs {
		for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
			cs, _, _ := unstructured.NestedSlice(o.Object, append(spec, field)...)
			for _, c := range cs {
				if img, ok := c.(map[string]any)["image"].(string); ok {
					out = append(out, img)
				}
			}
		}
	}
	return out
}

// The installer and the chart deploy the release of the VERSION file (the
// installer may pin its digest too: `make build-installer
// IMG=...:VERSION@sha256:...`), and the chart's versions are that release
// (`make build-installer` sets them).
func TestManifestsDeployTheVersion(t *testing.T) {
	v := releaseVersion(t)
	want := imageRepository + ":" + v
	pinned := regexp.MustCompile(`^` + regexp.QuoteMeta(want) + `(@sha256:[0-9a-f]{64})?$`)
	data, err := os.ReadFile(filepath.Join(root(t), installer))
	if err != nil {
		t.Fatal(err)
	}
	if got := managerDeployment(t, parse(t, data)).Spec.Template.Spec.Containers[0].Image; !pinned.MatchString(got) {
		t.Errorf("%s runs %s, want %s[@sha256:...] (VERSION): run `make build-installer`", installer, got, want)
	}
	if got := managerDeployment(t, parse(t, helmTemplate(t, ""))).Spec.Template.Spec.Containers[0].Image; got != want {
		t.Errorf("the chart runs %s by default, want %s (VERSION): run `make build-installer`", got, want)
	}
	data, err = os.ReadFile(filepath.Join(root(t), chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if chart.AppVersion != v || chart.Version != strings.TrimPrefix(v, "v") {
		t.Errorf("Chart.yaml version %q, appVersion %q; want %q, %q (VERSION): run `make build-installer`",
			chart.Version, chart.AppVersion, strings.TrimPrefix(v, "v"), v)
	}
}

// The Dockerfile stamps the release and commit it is given into the binary,
// through the variables the binary reads: built here with its -ldflags, the
// binary reports them.
func TestDockerfileStampsTheVersion(t *testing.T) {
	df := parseDockerfile(t)
	var build string
	for _, r := range df.stages[0].runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	m := regexp.MustCompile(`-ldflags="([^"]*)"`).FindStringSubmatch(build)
	if m == nil {
		t.Fatalf(`go build without -ldflags="...": %s`, build)
	}
	ldflags := m[1]
	for _, want := range []string{
		"-X github.com/netpol2authz/netpol2authz/internal/version.Version=${VERSION}",
		"-X github.com/netpol2authz/netpol2authz/internal/version.Commit=${COMMIT}",
	} {
		if !strings.Contains(ldflags, want) {
			t.Errorf("the Dockerfile's -ldflags %q lack %s", ldflags, want)
		}
	}
	for _, arg := range []string{"VERSION", "COMMIT"} {
		if !slices.Contains(df.stages[0].args, arg) {
			t.Errorf("the builder stage declares no ARG %s (make docker-build passes it)", arg)
		}
	}

	// As make docker-build stamps it, and as a plain `docker build .`
	// does not: the binary falls back on the VERSION file it embeds, and
	// knows no commit (no .git in the build context; -buildvcs=false here).
	for _, c := range []struct{ version, commit, wantVersion, wantCommit string }{
		{"v0.0.0-stamped", "0123456789abcdef", "v0.0.0-stamped", "commit: 0123456789abcdef\n"},
		{"", "", releaseVersion(t), ""},
	} {
		bin := filepath.Join(t.TempDir(), "netpol2authz")
		flags := strings.NewReplacer("${VERSION}", c.version, "${COMMIT}", c.commit).Replace(ldflags)
		if out, err := run(t, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+flags, "-o", bin, "."); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", bin, err)
		}
		if want := "netpol2authz " + c.wantVersion + "\n"; !strings.HasPrefix(string(out), want) {
			t.Errorf("built with VERSION=%q, the binary prints %q, want first %q", c.version, out, want)
		}
		if got := strings.Contains(string(out), "commit: "); got != (c.wantCommit != "") || !strings.Contains(string(out), c.wantCommit) {
			t.Errorf("built with COMMIT=%q, the binary prints %q, want commit line %q", c.commit, out, c.wantCommit)
		}
	}
}
