package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// burst runs n calls of f at once and returns their answers.
func burst(n int, f func(i int) answer) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// setDefender rebuilds the stack's functions with these Defender client
// options (the client-side call budget, its clock), before any request.
func (st *stack) setDefender(t testing.TB, o *atp.Options) {
	t.Helper()
	c, err := wiring.Build(st.cfg, &wiring.Options{HTTPClient: st.sim.HTTPClient(), Logger: wiring.NewLogger(st.logs, st.cfg.LogLevel), Defender: o})
	if err != nil {
		t.Fatalf("wiring.Build: %v", err)
	}
	st.c = c
	st.srv.Config.Handler = c.App.HTTPHandler()
}

// TestColdProcessThousandAlerts: 1,000 concurrent alerts calls on a cold
// process make one token request and one secret read.
// It runs alone (not parallel): its load would skew the timing of others.
func TestColdProcessThousandAlerts(t *testing.T) {
	s := shared
	clientID := "c01d0000-0000-4000-8000-000000001000"
	s.AddApp(sim.App{ClientID: clientID, Secret: canaryClientSecret, Roles: sim.ApplicationRoles()})
	name := "cold-thousand"
	s.SetSecret(name, canaryClientSecret)
	st := newStack(t, s, simEnv(s, map[string]string{"MDE_CLIENT_SECRET": "", "MDE_CLIENT_ID": clientID,
		"MDE_KEYVAULT_URL": s.VaultURL(), "MDE_SECRET_NAME": name, "MDE_TIMEOUT": "60s", "MDE_LOG_LEVEL": "info"}))
	st.setDefender(t, &atp.Options{CallsPerMinute: -1, CallsPerHour: -1})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	answers := burst(1000, func(int) answer {
		req, _ := http.NewRequest(http.MethodGet, st.srv.URL+"/api/alerts?top=2", nil)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return answer{err: err}
		}
		resp.Body.Close()
		return answer{status: resp.StatusCode, elapsed: time.Since(start)}
	})
	bad := 0
	for _, a := range answers {
		if a.err != nil || a.status != http.StatusOK {
			if bad++; bad <= 3 {
				t.Errorf("alerts = %d %v, want 200", a.status, a.err)
			}
		}
	}
	stats := s.Stats()
	if got := stats.TokenRequests[clientID]; got != 1 {
		t.Errorf("Entra token requests = %d, want 1", got)
	}
	if got := stats.VaultReads[name]; got != 1 {
		t.Errorf("Key Vault reads = %d, want 1", got)
	}
	st.checkLeaks(t)
}

// TestHundredIsolateDeliveries: 100 concurrent identical isolate deliveries
// through the HTTP surface make exactly one Defender isolate action; every
// answer is a success naming that action.
func TestHundredIsolateDeliveries(t *testing.T) {
	t.Parallel()
	s := newSim(t, &sim.Options{Defender: defender.Options{RateLimits: &defender.RateLimits{}}})
	st := newStack(t, s, simEnv(s, map[string]string{"MDE_TIMEOUT": "20s", "MDE_LOG_LEVEL": "info"}))
	// Production wiring, the client's call budget included: identical
	// deliveries in flight at once are coalesced into one run, so the
	// storm costs a handful of Defender calls.
	body := isolateBody(defender.UniqueMachineID)
	answers := burst(100, func(int) answer { return st.do(http.MethodPost, isolatePath, body) })
	ids := map[any]int{}
	created := 0
	for _, a := range answers {
		if a.status == http.StatusCreated {
			created++
		}
		if a.status != http.StatusCreated && !(a.status == http.StatusOK && a.json()["alreadyPending"] == true) {
			t.Errorf("isolate = %v, want 201 or 200 alreadyPending", a)
			continue
		}
		act, _ := a.json()["action"].(map[string]any)
		ids[act["id"]]++
	}
	var isolates int
	for _, a := range s.Defender().Actions() {
		if a.Type == defender.ActionIsolate && a.MachineID == defender.UniqueMachineID {
			isolates++
		}
	}
	if isolates != 1 || created != 1 || len(ids) != 1 {
		t.Errorf("Defender isolate actions = %d, 201 answers = %d, distinct action IDs answered = %d; want 1, 1, 1", isolates, created, len(ids))
	}
	st.checkLeaks(t)
}

// scaledSleep makes the atp client's waits pass on the simulator's clock
// 20 times faster than real time: the client's budget and Defender's rate
// limiter then share one clock, and a minute passes in 3 s. The real delay
// keeps the waiters in order, so that the clock never jumps past one still
// due to send.
func scaledSleep(s *sim.Sim) func(ctx context.Context, d time.Duration) error {
	var mu sync.Mutex
	return func(ctx context.Context, d time.Duration) error {
		wake := s.Now().Add(d)
		select {
		case <-time.After(d / 20):
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		if now := s.Now(); now.Before(wake) {
			s.Advance(wake.Sub(now))
		}
		mu.Unlock()
		return nil
	}
}

// TestThrottlingGenerousDeadlines: a burst larger than Defender's limit
// (scaled to 20 calls a minute, on a 100-times faster clock) finishes with
// zero failures and never draws a 429 from Defender.
func TestThrottlingGenerousDeadlines(t *testing.T) {
	t.Parallel()
	const limit, calls = 20, 50
	s := newSim(t, nil)
	s.Defender().SetRateLimits(defender.RateLimits{PerMinute: limit})
	st := newStack(t, s, simEnv(s, map[string]string{"MDE_TIMEOUT": "30m", "MDE_LOG_LEVEL": "info"}))
	st.setDefender(t, &atp.Options{CallsPerMinute: limit, CallsPerHour: -1, Now: s.Now, Sleep: scaledSleep(s)})
	// Warm the token first: it is not a Defender call.
	if _, err := st.c.Tokens.TokenContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Defender().ResetStats()
	start := s.Now()
	answers := burst(calls, func(int) answer { return st.do(http.MethodGet, "/api/alerts?top=1", "") })
	for _, a := range answers {
		if a.status != http.StatusOK {
			t.Errorf("alerts = %v, want 200", a)
		}
	}
	ds := s.Defender().Stats()
	if ds.Throttled != 0 || ds.Calls["GET /api/alerts"] != calls {
		t.Errorf("Defender answered %d calls with 429 and served %d alerts lists, want 0 and %d", ds.Throttled, ds.Calls["GET /api/alerts"], calls)
	}
	// Sanity: the burst really was larger than the limit.
	if took := s.Now().Sub(start); took < time.Minute {
		t.Errorf("the burst took %v of simulated time, want over a minute (the limit was not exercised)", took)
	}
}

// TestThrottlingShortDeadlines: with Defender's limit (scaled to 20 a
// minute) exhausted and a deadline Defender's Retry-After outlasts, callers
// get 429 throttled with Retry-After, promptly.
func TestThrottlingShortDeadlines(t *testing.T) {
	t.Parallel()
	const limit, calls = 20, 40
	s := newSim(t, nil)
	s.Defender().SetRateLimits(defender.RateLimits{PerMinute: limit})
	st := newStack(t, s, simEnv(s, map[string]string{"MDE_TIMEOUT": "2s", "MDE_LOG_LEVEL": "info"}))
	if _, err := st.c.Tokens.TokenContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	answers := burst(calls, func(int) answer { return st.do(http.MethodGet, "/api/alerts?top=1", "") })
	var ok, throttledN int
	for _, a := range answers {
		switch {
		case a.status == http.StatusOK:
			ok++
		case a.status == http.StatusTooManyRequests && a.code() == "throttled":
			throttledN++
			if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 {
				t.Errorf("throttled answer Retry-After = %q, want whole seconds ≥ 1", a.header.Get("Retry-After"))
			}
			if a.elapsed >= 2*time.Second+slack {
				t.Errorf("throttled answer took %v, want it before the 2 s deadline", a.elapsed)
			}
		default:
			t.Errorf("alerts = %v, want 200 or 429 throttled", a)
		}
	}
	if ok > limit || throttledN < calls-limit {
		t.Errorf("%d answers 200 and %d 429 throttled, want at most %d and at least %d", ok, throttledN, limit, calls-limit)
	}
	st.checkLeaks(t)
}

// TestIsolationBudgetStorm: a storm of isolate requests for many different
// devices through the HTTP surface starts no more isolations than
// MDE_MAX_ISOLATIONS_PER_HOUR; the rest are 429 isolation_budget_exceeded
// with Retry-After. Releases are not counted nor refused.
func TestIsolationBudgetStorm(t *testing.T) {
	t.Parallel()
	const budget, storm = 5, 30
	s := newSim(t, &sim.Options{Defender: defender.Options{RateLimits: &defender.RateLimits{}}})
	st := newStack(t, s, simEnv(s, map[string]string{"MDE_MAX_ISOLATIONS_PER_HOUR": strconv.Itoa(budget), "MDE_TIMEOUT": "20s", "MDE_LOG_LEVEL": "info"}))
	// Each isolation costs up to four Defender calls; the call budget is
	// not what this test is about.
	st.setDefender(t, &atp.Options{CallsPerMinute: -1, CallsPerHour: -1})
	var devices []string
	for _, m := range s.Defender().Machines() {
		if len(m.MachineTags) == 0 && !m.Isolated && !m.IsPotentialDuplication && m.MergedIntoMachineID == "" && len(devices) < storm {
			devices = append(devices, m.ID)
		}
	}
	if len(devices) < storm {
		t.Fatalf("only %d devices to isolate", len(devices))
	}
	answers := burst(storm, func(i int) answer { return st.do(http.MethodPost, isolatePath, isolateBody(devices[i])) })
	var created, refused int
	for _, a := range answers {
		switch {
		case a.status == http.StatusCreated:
			created++
		case a.status == http.StatusTooManyRequests && a.code() == "isolation_budget_exceeded":
			refused++
			if n, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || n < 1 || n > 3600 {
				t.Errorf("budget answer Retry-After = %q, want 1..3600 s", a.header.Get("Retry-After"))
			}
		default:
			t.Errorf("isolate = %v, want 201 or 429 isolation_budget_exceeded", a)
		}
	}
	var isolates int
	for _, a := range s.Defender().Actions() {
		if a.Type == defender.ActionIsolate && a.Requestor == canaryClientID {
			isolates++
		}
	}
	if created != budget || refused != storm-budget || isolates != budget {
		t.Errorf("storm of %d: %d created, %d refused, %d isolate actions in Defender; want %d, %d, %d",
			storm, created, refused, isolates, budget, storm-budget, budget)
	}
	// A release is never refused by the budget.
	rel := st.do(http.MethodPost, isolatePath, fmt.Sprintf(`{"machineId":%q,"comment":"release","release":true}`, defender.IsolatedMachineID))
	if rel.status != http.StatusCreated {
		t.Errorf("release over budget = %v, want 201", rel)
	}
	st.checkLeaks(t)
}
