// Package memlimit derives the Go runtime's soft memory limit from the
// memory limit of the container the process runs in, so that the garbage
// collector works harder as the heap nears the limit instead of the
// kernel killing the process, and so that lowering the container's limit
// lowers what the operator holds.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Files where the kernel publishes a cgroup's memory limit, as seen from
// inside the container (its cgroup namespace puts its own cgroup at the
// root): cgroup v2 first, then v1.
const (
	cgroupV2 = "sys/fs/cgroup/memory.max"
	cgroupV1 = "sys/fs/cgroup/memory/memory.limit_in_bytes"
)

// unlimitedV1 is at or above what cgroup v1 reports for "no limit" (the
// largest page-aligned int64).
const unlimitedV1 = int64(1) << 62

// FromCgroup reads the memory limit of the process's cgroup from root (the
// file system's root, os.DirFS("/") in production) and returns ratio of
// it, with the file it was read from. It returns 0 and no error when no
// limit applies: no cgroup file, "max", or v1's "unlimited".
func FromCgroup(root fs.FS, ratio float64) (limit int64, source string, err error) {
	if ratio <= 0 || ratio > 1 {
		return 0, "", fmt.Errorf("memory limit ratio %v: want more than 0 and at most 1", ratio)
	}
	for _, name := range []string{cgroupV2, cgroupV1} {
		b, err := fs.ReadFile(root, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("reading /%s: %w", name, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, "", nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, "", fmt.Errorf("/%s: %q is not a memory limit", name, v)
		}
		if n >= unlimitedV1 {
			return 0, "", nil
		}
		return int64(float64(n) * ratio), "/" + name, nil
	}
	return 0, "", nil
}
