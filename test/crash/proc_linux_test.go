package crash_test

import "syscall"

// sysProcAttr puts a manager in a process group of its own and kills it
// when the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
