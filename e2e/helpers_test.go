package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// distDir returns the build output the artifact tests drive, or skips the
// test when MDEFN_E2E_DIST is unset.
func distDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MDEFN_E2E_DIST")
	if dir == "" {
		t.Skip("MDEFN_E2E_DIST is not set; `make e2e` builds the artifacts and runs these tests")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("MDEFN_E2E_DIST: %v", err)
	}
	return dir
}

// startSim starts a simulator with default options, closed when the test ends.
func startSim(t *testing.T) *sim.Sim {
	t.Helper()
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatalf("sim.Start(nil) = %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitDial waits until addr accepts TCP connections or the process exits.
func waitDial(t *testing.T, p *process, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %s: %v", p.name, addr, p.err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not listen on %s within 15s", p.name, addr)
}

// baseEnv is the part of the test's environment a child process needs; the
// rest (MDE_*, AWS_*, proxies) is left out so that only the simulator's
// settings reach it.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a started child process, stopped when the test ends.
type process struct {
	name   string
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, once done is closed
}

// startProcess starts path in its own process group with exactly env. When
// the test ends the group is killed and reaped; a failed test logs the
// output.
func startProcess(t *testing.T, name, dir string, env []string, path string, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	ownProcessGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		_ = killGroup(cmd) // children the leader left behind
		if t.Failed() {
			t.Logf("output of %s (last 16 KiB):\n%s", name, tail(out.String(), 16<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// placeholder is a ${NAME} in a testdata template.
var placeholder = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)\}`)

// readTestdata reads testdata/name and replaces each ${NAME} with vars[NAME];
// a name missing from vars fails the test. Other dollar signs ($default) stay.
func readTestdata(t *testing.T, name string, vars map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out := placeholder.ReplaceAllFunc(b, func(m []byte) []byte {
		k := string(m[2 : len(m)-1])
		v, ok := vars[k]
		if !ok {
			t.Fatalf("testdata/%s: no value for ${%s}", name, k)
		}
		return []byte(v)
	})
	if !json.Valid(out) {
		t.Fatalf("testdata/%s is not valid JSON once expanded:\n%s", name, out)
	}
	return out
}

// jsonString is s as a JSON string literal without its quotes, to put in a
// testdata template inside a string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// decode unmarshals b into a new T or fails the test.
func decode[T any](t *testing.T, what string, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, tail(string(b), 2000))
	}
	return v
}

// jwtPattern matches a compact JWS, as access tokens are.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+`)

// checkNoSecret fails when text holds the simulator's client secret, its
// AWS secret key or anything shaped like an access token.
func checkNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, secret := range []string{sim.DefaultClientSecret, sim.DefaultAWSSecretAccessKey} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds a secret of the simulator", where)
		}
	}
	if jwtPattern.MatchString(text) {
		t.Errorf("%s holds a token: %.40s...", where, jwtPattern.FindString(text))
	}
}

// errorEnvelope is the contract's error answer.
type errorEnvelope struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// alertsPage is the alerts function's answer.
type alertsPage struct {
	Value []struct {
		ID              string `json:"id"`
		Severity        string `json:"severity"`
		Status          string `json:"status"`
		MachineID       string `json:"machineId"`
		ComputerDNSName string `json:"computerDnsName"`
	} `json:"value"`
	Count    int  `json:"count"`
	NextSkip *int `json:"nextSkip"`
}

// checkAlertsPage checks an alerts answer: count agrees with value, each
// alert is one of the simulator's and matches the filter, and nextSkip is
// skip+count exactly when the page is full.
func checkAlertsPage(t *testing.T, s *sim.Sim, body []byte, severities []string, status string, skip, top int) {
	t.Helper()
	page := decode[alertsPage](t, "alerts answer", body)
	if page.Count != len(page.Value) {
		t.Errorf("alerts answer count = %d, want len(value) = %d", page.Count, len(page.Value))
	}
	want := 0
	for _, a := range s.Defender().Alerts() {
		if contains(severities, string(a.Severity)) && (status == "" || string(a.Status) == status) {
			want++
		}
	}
	want = max(0, min(top, want-skip))
	if page.Count != want {
		t.Errorf("alerts answer count = %d, want %d (severity %v, status %q, skip %d, top %d)", page.Count, want, severities, status, skip, top)
	}
	seen := map[string]bool{}
	for _, a := range page.Value {
		if seen[a.ID] {
			t.Errorf("alert %s appears twice", a.ID)
		}
		seen[a.ID] = true
		if _, ok := s.Defender().Alert(a.ID); !ok {
			t.Errorf("alert %s is not one of the simulator's", a.ID)
		}
		if !contains(severities, a.Severity) || (status != "" && a.Status != status) {
			t.Errorf("alert %s has severity %s, status %s; want severity in %v, status %q", a.ID, a.Severity, a.Status, severities, status)
		}
	}
	switch {
	case page.Count == top && (page.NextSkip == nil || *page.NextSkip != skip+top):
		t.Errorf("alerts answer nextSkip = %v, want %d", page.NextSkip, skip+top)
	case page.Count < top && page.NextSkip != nil:
		t.Errorf("alerts answer nextSkip = %d, want none (page not full)", *page.NextSkip)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// isolateAnswer is the isolate function's success answer.
type isolateAnswer struct {
	Action struct {
		ID               string `json:"id"`
		Type             string `json:"type"`
		MachineID        string `json:"machineId"`
		RequestorComment string `json:"requestorComment"`
	} `json:"action"`
	Machine struct {
		ID              string `json:"id"`
		ComputerDNSName string `json:"computerDnsName"`
	} `json:"machine"`
}

// plainMachines returns n of the simulator's generated devices that can be
// isolated by ID or name without surprises: not isolated, untagged, not a
// duplicate, with a DNS name no other device shares.
func plainMachines(t *testing.T, s *sim.Sim, n int) []defender.Machine {
	t.Helper()
	all := s.Defender().Machines()
	names := map[string]int{}
	for _, m := range all {
		names[strings.ToLower(m.ComputerDNSName)]++
		if i := strings.IndexByte(m.ComputerDNSName, '.'); i > 0 {
			names[strings.ToLower(m.ComputerDNSName[:i])]++
		}
	}
	var out []defender.Machine
	for _, m := range all {
		host, _, _ := strings.Cut(strings.ToLower(m.ComputerDNSName), ".")
		if m.Isolated || len(m.MachineTags) > 0 || m.IsPotentialDuplication || m.MergedIntoMachineID != "" ||
			names[strings.ToLower(m.ComputerDNSName)] != 1 || names[host] != 1 ||
			strings.Contains(m.ID, strings.Repeat("0", 30)) { // a fixed seed record
			continue
		}
		out = append(out, m)
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("the simulator has %d plain devices, want %d", len(out), n)
	return nil
}

// actionsOn returns the simulator's machine actions on machineID.
func actionsOn(s *sim.Sim, machineID string) []defender.MachineAction {
	var out []defender.MachineAction
	for _, a := range s.Defender().Actions() {
		if strings.EqualFold(a.MachineID, machineID) {
			out = append(out, a)
		}
	}
	return out
}

// checkOneIsolation checks that machineID has exactly one Isolate action
// whose comment starts with commentPrefix, and returns it.
func checkOneIsolation(t *testing.T, s *sim.Sim, machineID, commentPrefix string) defender.MachineAction {
	t.Helper()
	acts := actionsOn(s, machineID)
	if len(acts) != 1 {
		t.Fatalf("actions on %s = %d, want 1: %+v", machineID, len(acts), acts)
	}
	a := acts[0]
	if a.Type != defender.ActionIsolate || !strings.HasPrefix(a.RequestorComment, commentPrefix) {
		t.Errorf("action on %s = %s %q, want Isolate with a comment starting %q", machineID, a.Type, a.RequestorComment, commentPrefix)
	}
	return a
}

// statusError is a readable failure for an unexpected status.
func statusError(what string, got, want int, body []byte) string {
	return fmt.Sprintf("%s status = %d, want %d; body %s", what, got, want, tail(string(body), 1000))
}

// example is spec's example on device m, with the machine action it names
// (a succeeded collection) created first.
func example(t *testing.T, s *sim.Sim, spec functions.Spec, m defender.Machine) functions.Example {
	t.Helper()
	var actionID string
	if spec.Example.NeedsAction() {
		a, ok := s.Defender().AddAction(defender.MachineAction{MachineID: m.ID,
			Type: defender.ActionCollectInvestigationPackage, Requestor: "analyst@contoso.example"})
		if !ok {
			t.Fatalf("no device %s for %s's example action", m.ID, spec.Name)
		}
		actionID = a.ID
	}
	return spec.Example.Fill(m.ID, m.ComputerDNSName, actionID)
}
