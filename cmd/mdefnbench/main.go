// Command mdefnbench is the `make bench` driver. It builds the deployable
// executables into a temporary directory, starts one in-process simulator
// (package sim) and measures, against it:
//
//   - cold start: exec of `mdefn serve` to the first 200 from /api/alerts
//     (vault read, token request and Defender call included), N runs;
//   - warm overhead per invocation at 1 and 64 concurrent callers: the
//     function's time minus the time of its Defender call;
//   - token requests and secret reads over the warm invocations;
//   - throughput at 64 concurrent callers;
//   - peak RSS of a process answering one 10,000-alert page;
//   - the size of each executable, stripped and zipped.
//
// It prints a table and writes it, with the machine and the targets, to
// docs/benchmarks.md. Run it from the repository root:
//
//	go run ./cmd/mdefnbench [-runs 20] [-warm 10000] [-gotest bench.txt]
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// verbose shows the function processes' output.
var verbose bool

// traceSim is the simulator, for the verbose request trace.
var traceSim *sim.Sim

// config are the driver's flags.
type config struct {
	runs        int           // cold start runs
	serial      int           // warm invocations at concurrency 1
	warm        int           // warm invocations at concurrency
	concurrency int           // concurrent callers of the second warm phase
	cpuProfile  string        // CPU profile of the warm phase
	rssRuns     int           // peak RSS runs
	out         string        // markdown report
	goTest      string        // output of the go test benchmarks to append
	alerts      int           // alerts seeded in the simulator
	bin         string        // executable to run instead of the built one
	rtt         time.Duration // round trip the latency proxy puts before each upstream
	nodeRuns    int           // runs of the Node official-SDK path
	callgrind   bool          // count a cold start's instructions with valgrind
}

func main() {
	var cfg config
	flag.IntVar(&cfg.runs, "runs", 20, "cold start runs")
	flag.IntVar(&cfg.serial, "serial", 2000, "warm invocations at concurrency 1")
	flag.IntVar(&cfg.warm, "warm", 10000, "warm invocations at -concurrency callers")
	flag.IntVar(&cfg.concurrency, "concurrency", 64, "concurrent callers of the second warm phase")
	flag.IntVar(&cfg.rssRuns, "rss-runs", 3, "peak RSS runs (the largest is reported; 0 skips)")
	flag.StringVar(&cfg.out, "out", "docs/benchmarks.md", "markdown report to write (empty: none)")
	flag.StringVar(&cfg.goTest, "gotest", "", "file holding `go test -bench` output to append to the report")
	flag.IntVar(&cfg.alerts, "alerts", 12000, "alerts seeded in the simulator (at least 10,000)")
	flag.StringVar(&cfg.bin, "bin", "", "run this `mdefn` executable (e.g. one with symbols, for perf) instead of the built one")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the warm phase (functions and simulator) to this `file`")
	flag.IntVar(&cfg.nodeRuns, "node-runs", 10, "runs of the Node official-SDK path the cold start goal is set against (0 skips it)")
	flag.BoolVar(&cfg.callgrind, "callgrind", true, "count the instructions of one cold start with valgrind's callgrind (skipped without valgrind)")
	flag.DurationVar(&cfg.rtt, "rtt", 20*time.Millisecond, "network round trip of the cold start through the latency proxy (0 skips it)")
	flag.BoolVar(&verbose, "v", false, "print the function processes' logs and init trace (GODEBUG=inittrace=1); skews the figures")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "mdefnbench:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if cfg.alerts < 10000 {
		return fmt.Errorf("-alerts %d: want at least 10000", cfg.alerts)
	}
	rep := &report{started: time.Now(), machine: describeMachine()}
	logf("machine: %s", rep.machine)

	tmp, err := os.MkdirTemp("", "mdefnbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	logf("building the executables into %s", tmp)
	bins, err := buildAll(tmp)
	if err != nil {
		return err
	}
	rep.sizes = bins.sizes
	if cfg.bin != "" {
		bins.run = cfg.bin
	}

	s, err := sim.Start(&sim.Options{Defender: defender.Options{
		Seed:       &defender.SeedOptions{Machines: 50, Alerts: cfg.alerts, Seed: 1},
		RateLimits: &defender.RateLimits{}, // off: the benchmarks call far more than 100 times a minute
	}})
	if err != nil {
		return err
	}
	defer s.Close()
	// Go reads SSL_CERT_FILE once per process: point this process at the
	// simulator before anything loads the system roots.
	if err := pointAtSim(s); err != nil {
		return err
	}
	child := childEnv(s)
	traceSim = s

	logf("cold start: %d runs", cfg.runs)
	if rep.cold, rep.coldCPU, err = coldStarts(bins.run, child, cfg.runs); err != nil {
		return err
	}
	// The same with SSL_CERT_DIR at an empty directory: Go then trusts only
	// SSL_CERT_FILE (the simulator's CA) and skips parsing the system's
	// certificate directory, the largest part of the figure above.
	noDir := filepath.Join(tmp, "empty-cert-dir")
	if err := os.Mkdir(noDir, 0o755); err != nil {
		return err
	}
	logf("cold start without the system certificate directory: %d runs", cfg.runs)
	if rep.coldNoRoots, _, err = coldStarts(bins.run, append(child, "SSL_CERT_DIR="+noDir), cfg.runs); err != nil {
		return err
	}
	if cfg.nodeRuns > 0 {
		logf("the Node official-SDK path doing the same job: %d runs", cfg.nodeRuns)
		caFile, err := s.CAFile()
		if err != nil {
			return err
		}
		if rep.node, err = nodeColdStarts(filepath.Join(tmp, "node"), child, caFile, cfg.nodeRuns); err != nil {
			logf("Node path not measured: %v", err)
			msg, _, _ := strings.Cut(err.Error(), "\n")
			rep.nodeErr = clipText(msg, 200)
		}
	}
	if cfg.callgrind {
		logf("instructions of a cold start (valgrind --tool=callgrind)")
		if rep.callgrind, err = coldCallgrind(tmp, child); err != nil {
			logf("instructions not counted: %v", err)
			msg, _, _ := strings.Cut(err.Error(), "\n")
			rep.callgrindErr = clipText(msg, 200)
		}
	}
	if cfg.rtt > 0 {
		logf("cold start with %s per round trip to each upstream: %d runs", cfg.rtt, cfg.runs)
		env, stop, err := latencyEnv(s, cfg.rtt)
		if err != nil {
			return err
		}
		rep.rtt = cfg.rtt
		rep.coldRTT, _, err = coldStarts(bins.run, env, cfg.runs)
		stop()
		if err != nil {
			return err
		}
	}
	if cfg.rssRuns > 0 {
		logf("peak RSS: %d runs of a 10,000-alert page", cfg.rssRuns)
		if rep.rss, err = peakRSS(bins.run, child, cfg.rssRuns); err != nil {
			return err
		}
	}
	logf("warm: %d invocations at 1 caller, %d at %d callers", cfg.serial, cfg.warm, cfg.concurrency)
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	rep.warm, err = warmRun(s, cfg)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	rep.finished = time.Now()
	rep.loadAfter = loadAverage()

	table := rep.table()
	fmt.Print(table)
	if cfg.out == "" {
		return nil
	}
	var goTest []byte
	if cfg.goTest != "" {
		if goTest, err = os.ReadFile(cfg.goTest); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.out, []byte(rep.markdown(table, string(goTest))), 0o644); err != nil {
		return err
	}
	logf("wrote %s", cfg.out)
	return nil
}

// pointAtSim sets this process's environment to the simulator's, as the
// warm phase's in-process functions read it.
func pointAtSim(s *sim.Sim) error {
	for _, k := range []string{"AWS_LAMBDA_RUNTIME_API", "FUNCTIONS_CUSTOMHANDLER_PORT", "MDE_AWS_SECRET_ID", "MDE_CLIENT_SECRET", "MDE_WEBHOOK_SECRET", "MDE_WEBHOOK_SECRET_NAME"} {
		os.Unsetenv(k)
	}
	for k, v := range s.Env(map[string]string{"MDE_LOG_LEVEL": "info"}) {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// childEnv is the environment of a function process: this process's
// without its MDE_* and runtime settings, plus the simulator's.
func childEnv(s *sim.Sim) []string { return childEnvWith(s, nil) }

// childEnvWith is childEnv with overrides of the simulator's settings.
func childEnvWith(s *sim.Sim, overrides map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MDE_"), strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "FUNCTIONS_"),
			strings.HasPrefix(k, "IDENTITY_"), k == "SSL_CERT_FILE", k == "SSL_CERT_DIR":
			continue
		}
		env = append(env, kv)
	}
	o := map[string]string{"MDE_LOG_LEVEL": "info"}
	for k, v := range overrides {
		o[k] = v
	}
	return append(env, s.Environ(o)...)
}

// probeClient opens a new connection for every request, as a first caller
// of a fresh process does.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	Timeout:   60 * time.Second,
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mdefnbench: "+format+"\n", args...)
}

// drain reads and discards at most limit bytes of r, returning how many.
func drain(r io.Reader, limit int64) (int64, error) {
	return io.Copy(io.Discard, io.LimitReader(r, limit))
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
