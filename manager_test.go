package main

import (
	"bytes"
	"strings"
	"testing"
)

// A memory limit ratio out of range is refused before anything starts.
// (runManager parses the global flag set: one call per test binary.)
func TestManagerRefusesAMemoryLimitRatioOutOfRange(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"manager", "--memory-limit-ratio=1.5"}, strings.NewReader(""), &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--memory-limit-ratio 1.5") {
		t.Errorf("stderr does not name the flag: %s", stderr.String())
	}
}
