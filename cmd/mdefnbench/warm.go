package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mdeconfig "github.com/mdefn/mdefn/internal/config" // the driver's flags are its config
	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/sim"
)

// warmPath is the warm invocations' request: a filtered small page, so that
// request decoding, OData building and streaming all run.
const warmPath = "/api/alerts?severity=High,Medium&status=New,InProgress&since=30d&top=10"

// warmPhase is one series of warm invocations.
type warmPhase struct {
	callers     int
	invocations int
	elapsed     time.Duration
	overhead    []time.Duration // function time minus Defender time, per invocation
	function    []time.Duration // function time (handler entry to return)
	defender    []time.Duration // Defender round trip as the function saw it
	client      []time.Duration // caller's round trip
}

// warmResult holds the warm phases and the upstream counters.
type warmResult struct {
	serial, parallel warmPhase
	invocations      int // since the process's first invocation
	tokenRequests    int // Entra token requests of the Defender app
	secretReads      int // Key Vault secret reads
}

// span accumulates the time an invocation spends waiting on Defender.
type span struct{ ns atomic.Int64 }

type spanKey struct{}

// timedTransport adds the time of each Defender round trip (until the
// answer's headers, plus the time spent in Read on its body) to the span in
// the request's context.
type timedTransport struct {
	base http.RoundTripper
	host string
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sp, _ := req.Context().Value(spanKey{}).(*span)
	if sp == nil || req.URL.Host != t.host {
		return t.base.RoundTrip(req)
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	sp.ns.Add(int64(time.Since(start)))
	if err != nil {
		return nil, err
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, sp: sp}
	return resp, nil
}

type timedBody struct {
	io.ReadCloser
	sp *span
}

func (b *timedBody) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := b.ReadCloser.Read(p)
	b.sp.ns.Add(int64(time.Since(start)))
	return n, err
}

// recorder is the timing middleware around the functions' HTTP handler.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	fn   []time.Duration
	up   []time.Duration
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	sp := &span{}
	start := time.Now()
	r.next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), spanKey{}, sp)))
	took := time.Since(start)
	r.mu.Lock()
	r.fn = append(r.fn, took)
	r.up = append(r.up, time.Duration(sp.ns.Load()))
	r.mu.Unlock()
}

func (r *recorder) take() (fn, up []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn, up = r.fn, r.up
	r.fn, r.up = nil, nil
	return fn, up
}

// warmRun builds the functions in this process exactly as a deployed
// process does (configuration from the environment, wiring.Build), serves them
// on loopback and drives them: a warm-up, cfg.serial invocations from one
// caller, cfg.warm from cfg.concurrency callers. The Defender client's own
// call budget is off (wiring.Options.NoCallBudget); everything else is the
// production path, including the JSON log line of every invocation (written
// to io.Discard).
func warmRun(s *sim.Sim, cfg config) (*warmResult, error) {
	conf, err := mdeconfig.Load(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("warm: configuration: %w", err)
	}
	du, err := url.Parse(s.DefenderURL())
	if err != nil {
		return nil, err
	}
	tt := &timedTransport{base: http.DefaultTransport.(*http.Transport).Clone(), host: du.Host}
	c, err := wiring.Build(conf, &wiring.Options{
		HTTPClient:   &http.Client{Transport: tt},
		Logger:       wiring.NewLogger(io.Discard, conf.LogLevel),
		NoCallBudget: true,
	})
	if err != nil {
		return nil, fmt.Errorf("warm: build: %w", err)
	}
	rec := &recorder{next: c.App.HTTPHandler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	caller := &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256},
		Timeout:   60 * time.Second,
	}

	s.ResetStats()
	res := &warmResult{}
	warmup := 200
	if _, err := drive(caller, base, 1, warmup); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	rec.take()
	if res.serial, err = phase(caller, base, rec, 1, cfg.serial); err != nil {
		return nil, err
	}
	if res.parallel, err = phase(caller, base, rec, cfg.concurrency, cfg.warm); err != nil {
		return nil, err
	}
	res.invocations = warmup + cfg.serial + cfg.warm
	res.tokenRequests = s.TokenRequests(sim.DefaultClientID)
	res.secretReads = s.VaultReads()
	return res, nil
}

func phase(caller *http.Client, base string, rec *recorder, callers, n int) (warmPhase, error) {
	p := warmPhase{callers: callers, invocations: n}
	start := time.Now()
	client, err := drive(caller, base, callers, n)
	if err != nil {
		return p, fmt.Errorf("warm (%d callers): %w", callers, err)
	}
	p.elapsed = time.Since(start)
	p.client = client
	p.function, p.defender = rec.take()
	for i := range p.function {
		p.overhead = append(p.overhead, p.function[i]-p.defender[i])
	}
	return p, nil
}

// drive sends n warm requests from callers goroutines and returns each
// caller-side round trip.
func drive(caller *http.Client, base string, callers, n int) ([]time.Duration, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(n) {
				start := time.Now()
				resp, err := caller.Get(base + warmPath)
				if err == nil {
					_, err = drain(resp.Body, 1<<20)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s = %d", warmPath, resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, firstErr
}
