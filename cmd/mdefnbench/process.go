package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// function is a running `mdefn serve` child process.
type function struct {
	cmd    *exec.Cmd
	base   string
	start  time.Time
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	err    error
}

// startFunction execs bin serving the local HTTP surface on a free
// loopback port. The clock of the cold start starts right before exec.
func startFunction(bin string, env []string) (*function, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	f := &function{base: "http://" + addr, done: make(chan struct{})}
	f.cmd = exec.Command(bin, "serve")
	f.cmd.Env = append(append([]string(nil), env...), "MDE_LISTEN_ADDR="+addr)
	f.cmd.Stderr = &f.stderr
	if verbose {
		f.cmd.Stdout = &f.stdout // one JSON line per invocation
		f.cmd.Env = append(f.cmd.Env, "GODEBUG=inittrace=1", "MDE_LOG_LEVEL=debug")
	}
	f.start = time.Now()
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	return f, nil
}

// firstAnswer polls path until it answers 200 and returns the time since
// exec. Connection refusals (not yet listening) are retried every 200 µs.
func (f *function) firstAnswer(path string) (time.Duration, error) {
	deadline := f.start.Add(30 * time.Second)
	for {
		resp, err := probeClient.Get(f.base + path)
		if err == nil {
			var body bytes.Buffer
			_, rerr := body.ReadFrom(resp.Body)
			resp.Body.Close()
			took := time.Since(f.start)
			if rerr != nil {
				return 0, rerr
			}
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("GET %s = %d: %.300s", path, resp.StatusCode, body.Bytes())
			}
			return took, nil
		}
		select {
		case <-f.done:
			return 0, fmt.Errorf("function exited before answering (%v): %.500s", f.err, f.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no answer from %s after 30 s: %w", f.base, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func (f *function) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", f.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (f *function) stop() {
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.done
	}
}

// coldStarts measures runs cold starts: exec to the first 200 of a small
// alerts page.
func coldStarts(bin string, env []string, runs int) (out, cpu []time.Duration, err error) {
	for range runs {
		f, err := startFunction(bin, env)
		if err != nil {
			return nil, nil, err
		}
		d, err := f.firstAnswer(alertsPath(1))
		f.stop()
		if err != nil {
			return nil, nil, fmt.Errorf("cold start: %w", err)
		}
		cpu = append(cpu, f.cmd.ProcessState.UserTime()+f.cmd.ProcessState.SystemTime())
		if verbose {
			logf("cold start %s; stdout:\n%s\nstderr:\n%s", d, f.stdout.String(), f.stderr.String())
			for _, r := range traceSim.Requests() {
				if r.Time.After(f.start) {
					logf("  +%s %s %s %s %d", r.Time.Sub(f.start), r.Upstream, r.Method, r.Path, r.Status)
				}
			}
		}
		out = append(out, d)
	}
	return out, cpu, nil
}

// rssResult is the memory of a process answering one big page.
type rssResult struct {
	idle   int64 // peak RSS after the first small answer
	peak   int64 // peak RSS after the 10,000-alert answer
	bytes  int64 // size of that answer
	alerts int
}

// peakRSS measures the peak RSS of runs fresh processes, each answering one
// small page and then one 10,000-alert page with evidence; the largest
// peak is returned.
func peakRSS(bin string, env []string, runs int) (rssResult, error) {
	var worst rssResult
	for range runs {
		r, err := oneRSS(bin, env)
		if err != nil {
			return rssResult{}, fmt.Errorf("peak RSS: %w", err)
		}
		if r.peak > worst.peak {
			worst = r
		}
	}
	return worst, nil
}

func oneRSS(bin string, env []string) (rssResult, error) {
	f, err := startFunction(bin, env)
	if err != nil {
		return rssResult{}, err
	}
	defer f.stop()
	if _, err := f.firstAnswer(alertsPath(1)); err != nil {
		return rssResult{}, err
	}
	var r rssResult
	if r.idle, err = f.peakRSS(); err != nil {
		return rssResult{}, err
	}
	resp, err := probeClient.Get(f.base + alertsPath(10000) + "&evidence=true")
	if err != nil {
		return rssResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rssResult{}, fmt.Errorf("10,000-alert page: status %d", resp.StatusCode)
	}
	cr := &countingReader{r: resp.Body}
	var page struct {
		Value []json.RawMessage `json:"value"`
		Count int               `json:"count"`
	}
	if err := json.NewDecoder(cr).Decode(&page); err != nil {
		return rssResult{}, fmt.Errorf("10,000-alert page: %w", err)
	}
	if page.Count != 10000 || len(page.Value) != 10000 {
		return rssResult{}, fmt.Errorf("10,000-alert page: count %d, %d values", page.Count, len(page.Value))
	}
	if _, err := drain(cr, 1<<20); err != nil {
		return rssResult{}, err
	}
	r.bytes, r.alerts = cr.n, page.Count
	if r.peak, err = f.peakRSS(); err != nil {
		return rssResult{}, err
	}
	return r, nil
}

// alertsPath is the alerts request of the measurements: every alert, top n.
func alertsPath(n int) string { return "/api/alerts?top=" + strconv.Itoa(n) }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// lockedBuffer is a bytes.Buffer safe for the exec copier and the reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
