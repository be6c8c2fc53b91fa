//go:build unix

package e2e

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup puts cmd in a new process group and makes its cancellation
// kill the whole group: the Lambda emulator starts the bootstrap as its child,
// which must not outlive the test.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// killGroup kills every process left in cmd's process group.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
