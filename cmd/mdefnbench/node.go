package main

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nodeFiles are the Node official-SDK path (node/coldstart.mjs) and its
// pinned dependencies (node/package.json).
//
//go:embed node/package.json node/coldstart.mjs
var nodeFiles embed.FS

// nodeColdStarts times runs executions of the Node path doing a cold
// invocation's job (vault read with the managed identity, token, one
// Defender call) against the same simulator, exec to exit. It installs the
// SDKs with npm into dir first. A machine without node or npm, or without
// the registry, gets an error: the report then says so and keeps the fixed
// 21 ms goal.
func nodeColdStarts(dir string, env []string, caFile string, runs int) ([]time.Duration, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return nil, fmt.Errorf("npm not found")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"package.json", "coldstart.mjs"} {
		b, err := nodeFiles.ReadFile("node/" + name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--silent")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("npm install: %w: %s", err, strings.TrimSpace(string(out)))
	}
	var out []time.Duration
	for range runs {
		cmd := exec.Command(node, "coldstart.mjs")
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), env...), "NODE_EXTRA_CA_CERTS="+caFile)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil || strings.TrimSpace(stdout.String()) != "200" {
			return nil, fmt.Errorf("node coldstart.mjs: %v: %s %s", err, stdout.String(), stderr.String())
		}
		out = append(out, d)
	}
	return out, nil
}
