package memlimit

import (
	"testing"
	"testing/fstest"
)

func TestFromCgroup(t *testing.T) {
	file := func(name, content string) fstest.MapFS {
		return fstest.MapFS{name: &fstest.MapFile{Data: []byte(content)}}
	}
	tests := []struct {
		name       string
		root       fstest.MapFS
		ratio      float64
		want       int64
		wantSource string
		wantErr    bool
	}{
		{name: "cgroup v2 limit", root: file(cgroupV2, "536870912\n"), ratio: 0.9, want: 483183820, wantSource: "/" + cgroupV2},
		{name: "cgroup v2 without a limit", root: file(cgroupV2, "max\n"), ratio: 0.9},
		{name: "cgroup v1 limit", root: file(cgroupV1, "134217728\n"), ratio: 1, want: 134217728, wantSource: "/" + cgroupV1},
		{name: "cgroup v1 unlimited", root: file(cgroupV1, "9223372036854771712\n"), ratio: 0.9},
		{name: "v2 wins over v1", root: fstest.MapFS{cgroupV2: {Data: []byte("1000")}, cgroupV1: {Data: []byte("2000")}}, ratio: 0.5, want: 500, wantSource: "/" + cgroupV2},
		{name: "no cgroup files (not in a container)", root: fstest.MapFS{}, ratio: 0.9},
		{name: "garbage", root: file(cgroupV2, "lots"), ratio: 0.9, wantErr: true},
		{name: "negative", root: file(cgroupV2, "-1"), ratio: 0.9, wantErr: true},
		{name: "ratio zero", root: file(cgroupV2, "1000"), ratio: 0, wantErr: true},
		{name: "ratio above one", root: file(cgroupV2, "1000"), ratio: 1.5, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, source, err := FromCgroup(tt.root, tt.ratio)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want || source != tt.wantSource {
				t.Errorf("got %d from %q, want %d from %q", got, source, tt.want, tt.wantSource)
			}
		})
	}
}
