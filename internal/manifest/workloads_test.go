package manifest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netpol2authz/netpol2authz/internal/translate"
)

const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, uid: d-1}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      hostNetwork: true
      containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]
`

const ownedReplicaSet = `
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d4f
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d-1, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: old}}
    spec: {containers: [{name: web, image: web}]}
`

const podOfReplicaSet = `
apiVersion: v1
kind: Pod
metadata:
  name: web-5d4f-abcde
  namespace: shop
  labels: {app: web, pod-template-hash: 5d4f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d4f, uid: rs-1, controller: true}]
spec: {serviceAccountName: web, containers: [{name: web, image: web}]}
status: {phase: Running, podIP: 10.0.0.1}
`

const cronJob = `
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: report}}
        spec: {restartPolicy: Never, containers: [{name: r, image: r}]}
`

const podOfJob = `
apiVersion: v1
kind: Pod
metadata:
  name: report-29071800-xyz
  namespace: shop
  labels: {app: report}
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: report-29071800, uid: j-1, controller: true}]
spec: {restartPolicy: Never, containers: [{name: r, image: r}]}
status: {phase: Succeeded}
`

// podNames lists the snapshot's pods as "name" or "name<-Template".
func podNames(pods []translate.Pod) []string {
	var out []string
	for _, p := range pods {
		name := p.Namespace + "/" + p.Name
		if p.Template != "" {
			name += " <- " + p.Template
		}
		out = append(out, name)
	}
	return out
}

func TestWorkloadsAreNotCountedTwice(t *testing.T) {
	tests := map[string]struct {
		docs        []string
		want        []string
		wantCovered int
	}{
		"a Deployment alone stands for its pods": {
			docs: []string{deployment},
			want: []string{"shop/web <- Deployment/shop/web"},
		},
		"a ReplicaSet controlled by a Deployment in the input is skipped": {
			docs:        []string{deployment, ownedReplicaSet},
			want:        []string{"shop/web <- Deployment/shop/web"},
			wantCovered: 1,
		},
		"a ReplicaSet whose Deployment is not in the input stands for its pods": {
			docs: []string{ownedReplicaSet},
			want: []string{"shop/web-5d4f <- ReplicaSet/shop/web-5d4f"},
		},
		"real pods replace the ReplicaSet and, through it, the Deployment": {
			docs:        []string{deployment, ownedReplicaSet, podOfReplicaSet},
			want:        []string{"shop/web-5d4f-abcde"},
			wantCovered: 2,
		},
		"real pods replace the Deployment when the ReplicaSet is not in the input": {
			docs:        []string{podOfReplicaSet, deployment},
			want:        []string{"shop/web-5d4f-abcde"},
			wantCovered: 1,
		},
		"a finished Job's pods replace the CronJob": {
			docs:        []string{cronJob, podOfJob},
			want:        []string{"shop/report-29071800-xyz"},
			wantCovered: 1,
		},
		"a CronJob without pods stands for them": {
			docs: []string{cronJob},
			want: []string{"shop/report <- CronJob/shop/report"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var nameText []string
			for i, d := range tc.docs {
				nameText = append(nameText, string(rune('a'+i))+".yaml", d)
			}
			res := decodeYAML(t, Options{}, nameText...)
			if diff := cmp.Diff(tc.want, podNames(res.Snapshot.Pods)); diff != "" {
				t.Errorf("pods (-want,+got):\n%s", diff)
			}
			if res.Stats.WorkloadsCovered != tc.wantCovered {
				t.Errorf("WorkloadsCovered = %d, want %d", res.Stats.WorkloadsCovered, tc.wantCovered)
			}
		})
	}
}

func TestTemplatePod(t *testing.T) {
	res := decodeYAML(t, Options{}, "d.yaml", deployment)
	want := translate.Pod{
		Namespace:      "shop",
		Name:           "web",
		Labels:         map[string]string{"app": "web"},
		ServiceAccount: "web",
		HostNetwork:    true,
		Ports:          []translate.ContainerPort{{Name: "http", Port: 8080}},
		Template:       "Deployment/shop/web",
	}
	if diff := cmp.Diff([]translate.Pod{want}, res.Snapshot.Pods, cmpOpts); diff != "" {
		t.Errorf("pods (-want,+got):\n%s", diff)
	}
	if res.Stats.Templates != 1 {
		t.Errorf("Templates = %d, want 1", res.Stats.Templates)
	}
}

func TestSidecarInference(t *testing.T) {
	tests := map[string]struct {
		nsLabels string // YAML flow map
		meta     string // YAML flow map of the template's metadata
		extra    string // extra container
		want     bool
	}{
		"injection enabled":                      {nsLabels: "{istio-injection: enabled}", meta: "{}", want: true},
		"injection disabled":                     {nsLabels: "{istio-injection: disabled}", meta: "{}", want: false},
		"revision label":                         {nsLabels: "{istio.io/rev: canary}", meta: "{}", want: true},
		"disabled wins over revision":            {nsLabels: "{istio-injection: disabled, istio.io/rev: canary}", meta: "{}", want: false},
		"opted out by label":                     {nsLabels: "{istio-injection: enabled}", meta: `{labels: {sidecar.istio.io/inject: "false"}}`, want: false},
		"opted out by annotation":                {nsLabels: "{istio.io/rev: canary}", meta: `{annotations: {sidecar.istio.io/inject: "false"}}`, want: false},
		"inject=true without namespace labels":   {nsLabels: "{}", meta: `{labels: {sidecar.istio.io/inject: "true"}}`, want: false},
		"revision on the template alone":         {nsLabels: "{}", meta: `{labels: {istio.io/rev: canary}}`, want: false},
		"no labels":                              {nsLabels: "{}", meta: "{}", want: false},
		"proxy already in the template":          {nsLabels: "{}", meta: "{}", extra: "{name: istio-proxy, image: proxyv2}", want: true},
		"status annotation already there":        {nsLabels: "{}", meta: `{annotations: {sidecar.istio.io/status: "{}"}}`, want: true},
		"opted out but proxy already there wins": {nsLabels: "{}", meta: `{labels: {sidecar.istio.io/inject: "false"}}`, extra: "{name: istio-proxy, image: proxyv2}", want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			containers := "[{name: app, image: app}"
			if tc.extra != "" {
				containers += ", " + tc.extra
			}
			containers += "]"
			res := decodeYAML(t, Options{}, "in.yaml", `
apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: `+tc.nsLabels+`}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: ns}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: `+tc.meta+`
    spec: {containers: `+containers+`}
`)
			if len(res.Snapshot.Pods) != 1 {
				t.Fatalf("got %d pods", len(res.Snapshot.Pods))
			}
			if got := res.Snapshot.Pods[0].Sidecar; got != tc.want {
				t.Errorf("Sidecar = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAdmittedPodSidecarIsNotInferred(t *testing.T) {
	res := decodeYAML(t, Options{}, "in.yaml", `
apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: created-before-injection, namespace: ns}
spec: {containers: [{name: app, image: app}]}
status: {phase: Running, podIP: 10.0.0.9}
---
apiVersion: v1
kind: Pod
metadata: {name: not-admitted-yet, namespace: ns}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: native-sidecar, namespace: other}
spec:
  initContainers: [{name: istio-proxy, image: proxyv2, restartPolicy: Always}]
  containers: [{name: app, image: app}]
status: {phase: Pending}
`)
	got := map[string]bool{}
	for _, p := range res.Snapshot.Pods {
		got[p.Name] = p.Sidecar
	}
	want := map[string]bool{"created-before-injection": false, "not-admitted-yet": true, "native-sidecar": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sidecar (-want,+got):\n%s", diff)
	}
}
