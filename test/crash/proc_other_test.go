//go:build !linux

package crash_test

import "syscall"

// sysProcAttr puts a manager in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
