//go:build !unix

package e2e

import "os/exec"

// ownProcessGroup leaves cmd as it is: without process groups, cancellation
// kills the process alone.
func ownProcessGroup(*exec.Cmd) {}

// killGroup kills cmd's process.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
