package main

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// callgrindResult is the instruction count of one cold process, to its
// first answer and exit, under valgrind's callgrind: unlike times, it is
// the same from run to run on a noisy machine.
type callgrindResult struct {
	total int64
	parts []callgrindPart // the packages with the most instructions of their own, most first
}

type callgrindPart struct {
	name  string
	count int64
}

// coldCallgrind runs one cold start of bin under callgrind. The binary has
// symbols (callgrind names functions by them): it is built here without -s.
func coldCallgrind(dir string, env []string) (*callgrindResult, error) {
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		return nil, fmt.Errorf("valgrind not found")
	}
	bin := filepath.Join(dir, "callgrind", "mdefn")
	b := exec.Command("go", "build", "-trimpath", "-tags", azureTags, "-o", bin, "./cmd/mdefn")
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w: %s", err, out)
	}
	outFile := filepath.Join(dir, "callgrind", "callgrind.out")
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	f := &function{base: "http://" + addr, done: make(chan struct{})}
	f.cmd = exec.Command(vg, "--tool=callgrind", "--callgrind-out-file="+outFile, bin, "serve")
	// Go's asynchronous preemption signals trip callgrind's signal
	// handling (an assertion in threads.c): off, as they do not change the
	// work done.
	f.cmd.Env = append(append([]string(nil), env...), "MDE_LISTEN_ADDR="+addr, "GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1")
	f.cmd.Stderr = &f.stderr
	f.start = time.Now()
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	kill := func() {
		_ = f.cmd.Process.Kill()
		<-f.done
	}
	if _, err := f.firstAnswer(alertsPath(1)); err != nil {
		kill()
		return nil, fmt.Errorf("under callgrind: %w", err)
	}
	// Dump the counts now (callgrind_control), then kill: callgrind
	// trips on the signal of a graceful stop.
	dump := exec.Command("callgrind_control", "--dump", strconv.Itoa(f.cmd.Process.Pid))
	dumpOut, dumpErr := dump.CombinedOutput()
	kill()
	if dumpErr != nil {
		return nil, fmt.Errorf("callgrind_control --dump: %w: %s", dumpErr, dumpOut)
	}
	files, _ := filepath.Glob(outFile + "*")
	res := &callgrindResult{}
	for _, file := range files {
		if n, err := callgrindTotal(file); err == nil && n > res.total {
			res.total, outFile = n, file
		}
	}
	if res.total == 0 {
		return nil, fmt.Errorf("no callgrind counts in %v; valgrind: %.300s", files, f.stderr.String())
	}
	// Instructions of each function's own (inclusive counts are not to be
	// trusted across goroutine switches), summed by package.
	ann, err := exec.Command("callgrind_annotate", "--threshold=100", outFile).Output()
	if err != nil {
		return res, nil // the total alone
	}
	res.parts = byPackage(string(ann), 6)
	return res, nil
}

// callgrindTotal reads the "summary:" or "totals:" line of a callgrind
// output file.
func callgrindTotal(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range []string{"summary: ", "totals: "} {
			if v, ok := strings.CutPrefix(line, p); ok {
				return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no summary line", path)
}

// byPackage sums callgrind_annotate's exclusive counts ("1,234 (5.6%)
// file:function [binary]") by the function's Go package and returns the n
// largest.
func byPackage(annotate string, n int) []callgrindPart {
	sums := map[string]int64{}
	for line := range strings.SplitSeq(annotate, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || !strings.Contains(line, ":") {
			continue
		}
		count, err := strconv.ParseInt(strings.ReplaceAll(fields[0], ",", ""), 10, 64)
		if err != nil {
			continue
		}
		loc := strings.Join(fields[2:], " ")
		if i := strings.LastIndex(loc, " ["); i >= 0 {
			loc = loc[:i]
		}
		fn := loc[strings.LastIndex(loc, ":")+1:]
		if fn == "" || strings.Contains(loc, "PROGRAM TOTALS") {
			continue
		}
		pkg := fn
		slash := strings.LastIndex(pkg, "/")
		if dot := strings.Index(pkg[slash+1:], "."); dot >= 0 {
			pkg = pkg[:slash+1+dot]
		}
		sums[pkg] += count
	}
	var out []callgrindPart
	for p, c := range sums {
		out = append(out, callgrindPart{p, c})
	}
	slices.SortFunc(out, func(a, b callgrindPart) int { return cmp.Compare(b.count, a.count) })
	return out[:min(n, len(out))]
}
