package translate

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestSettingsFor(t *testing.T) {
	type result struct {
		OptedOut bool
		Mode     Mode
		Fidelity Fidelity
		Findings []FindingType
	}
	cases := map[string]struct {
		annotations map[string]string
		opts        Options
		want        result
	}{
		"defaults": {
			want: result{Mode: ModeEnforce, Fidelity: FidelityPermissive},
		},
		"option defaults": {
			opts: Options{DefaultMode: ModeDryRun, DefaultFidelity: FidelityStrict},
			want: result{Mode: ModeDryRun, Fidelity: FidelityStrict},
		},
		"invalid option defaults fall back to the built-in ones": {
			opts: Options{DefaultMode: "loud", DefaultFidelity: "fuzzy"},
			want: result{Mode: ModeEnforce, Fidelity: FidelityPermissive},
		},
		"annotations win over options": {
			annotations: map[string]string{AnnotationMode: "enforce", AnnotationFidelity: "strict"},
			opts:        Options{DefaultMode: ModeDryRun, DefaultFidelity: FidelityPermissive},
			want:        result{Mode: ModeEnforce, Fidelity: FidelityStrict},
		},
		"opt-in required, no mode annotation": {
			annotations: map[string]string{AnnotationFidelity: "strict"},
			opts:        Options{RequireOptIn: true},
			want:        result{OptedOut: true},
		},
		"opt-in required, dry-run": {
			annotations: map[string]string{AnnotationMode: "dry-run"},
			opts:        Options{RequireOptIn: true},
			want:        result{Mode: ModeDryRun, Fidelity: FidelityPermissive},
		},
		"opt-in required, empty mode is invalid, not absent": {
			annotations: map[string]string{AnnotationMode: ""},
			opts:        Options{RequireOptIn: true},
			want:        result{Mode: ModeEnforce, Fidelity: FidelityPermissive, Findings: []FindingType{InvalidAnnotation}},
		},
		"both invalid": {
			annotations: map[string]string{AnnotationMode: "DryRun", AnnotationFidelity: "exact"},
			want:        result{Mode: ModeEnforce, Fidelity: FidelityPermissive, Findings: []FindingType{InvalidAnnotation, InvalidAnnotation}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := settingsFor(&nsInfo{name: "ns", annotations: tc.annotations}, tc.opts)
			got := result{OptedOut: s.optedOut, Mode: s.mode, Fidelity: s.fidelity}
			for _, f := range s.findings {
				got.Findings = append(got.Findings, f.Type)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("settingsFor (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestIndexPods(t *testing.T) {
	type podState struct {
		Counted bool
		InMesh  bool
		SA      string
	}
	cases := map[string]struct {
		pod       Pod
		nsLabels  map[string]string
		nsPartial bool
		want      podState
	}{
		"running with sidecar": {
			pod:  Pod{Phase: corev1.PodRunning, Sidecar: true},
			want: podState{Counted: true, InMesh: true, SA: "default"},
		},
		"template without phase": {
			pod:  Pod{ServiceAccount: "web"},
			want: podState{Counted: true, SA: "web"},
		},
		"pending": {
			pod:  Pod{Phase: corev1.PodPending, Sidecar: true},
			want: podState{Counted: true, InMesh: true, SA: "default"},
		},
		"unknown": {
			pod:  Pod{Phase: corev1.PodUnknown},
			want: podState{Counted: true, SA: "default"},
		},
		"succeeded": {
			pod: Pod{Phase: corev1.PodSucceeded, Sidecar: true},
		},
		"failed": {
			pod: Pod{Phase: corev1.PodFailed, Sidecar: true},
		},
		"host network": {
			pod: Pod{Phase: corev1.PodRunning, HostNetwork: true, Sidecar: true},
		},
		"ambient namespace": {
			pod:      Pod{Phase: corev1.PodRunning},
			nsLabels: map[string]string{labelDataplaneMode: dataplaneAmbient},
			want:     podState{Counted: true, InMesh: true, SA: "default"},
		},
		"ambient namespace, pod opted out": {
			pod:      Pod{Phase: corev1.PodRunning, Labels: map[string]string{labelDataplaneMode: dataplaneNone}},
			nsLabels: map[string]string{labelDataplaneMode: dataplaneAmbient},
			want:     podState{Counted: true, SA: "default"},
		},
		"ambient label on a partial namespace is not known": {
			pod:       Pod{Phase: corev1.PodRunning},
			nsLabels:  map[string]string{labelDataplaneMode: dataplaneAmbient},
			nsPartial: true,
			want:      podState{Counted: true, SA: "default"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.pod.Namespace, tc.pod.Name, tc.pod.IP = "ns", "pod", netip.MustParseAddr("10.0.0.1")
			idx := buildIndex(Snapshot{
				Namespaces: []Namespace{{Name: "ns", Labels: tc.nsLabels, Partial: tc.nsPartial}},
				Pods:       []Pod{tc.pod},
			})
			var got podState
			if pods := idx.namespaces["ns"].pods; len(pods) == 1 {
				got = podState{Counted: true, InMesh: pods[0].inMesh, SA: pods[0].sa}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("pod (-want,+got):\n%s", diff)
			}
		})
	}
}
