package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCredentialStoreRotation(t *testing.T) {
	clock := newClock()
	src := &fakeSource{value: "v1"}
	s := NewCredentialStore(src, ModeClientSecret, &StoreOptions{TTL: 5 * time.Minute, Now: clock.Now})
	ctx := context.Background()
	read := func() string {
		t.Helper()
		c, err := s.Credential(ctx)
		if err != nil {
			t.Fatalf("Credential() error %v", err)
		}
		return c.ClientSecret
	}
	if got := read(); got != "v1" {
		t.Fatalf("Credential() = %q, want v1", got)
	}
	src.set("v2", nil)
	clock.Advance(4 * time.Minute)
	if got := read(); got != "v1" {
		t.Errorf("Credential() before TTL = %q, want v1 (cached)", got)
	}
	clock.Advance(time.Minute)
	if got := read(); got != "v2" {
		t.Errorf("Credential() after TTL = %q, want v2 (rotated)", got)
	}
	if got := src.reads.Load(); got != 2 {
		t.Errorf("source reads = %d, want 2", got)
	}
	s.Invalidate()
	read()
	if got := src.reads.Load(); got != 3 {
		t.Errorf("source reads after Invalidate = %d, want 3", got)
	}
}

func TestCredentialStoreGrace(t *testing.T) {
	clock := newClock()
	src := &fakeSource{value: "good"}
	var logs strings.Builder
	s := NewCredentialStore(src, ModeClientSecret, &StoreOptions{
		Now: clock.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	ctx := context.Background()
	if _, err := s.Credential(ctx); err != nil {
		t.Fatal(err)
	}
	down := &SecretError{Source: "keyvault", Name: "fake", StatusCode: 503, Code: "ServiceUnavailable"}
	src.set("", down)

	clock.Advance(6 * time.Minute) // past the 5m TTL, in grace
	c, err := s.Credential(ctx)
	if err != nil || c.ClientSecret != "good" {
		t.Fatalf("Credential() in grace = %v, %v; want the last good value", c, err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "ServiceUnavailable") {
		t.Errorf("log = %s, want a warning naming the failure", logs.String())
	}
	reads := src.reads.Load()
	clock.Advance(10 * time.Second)
	if _, err := s.Credential(ctx); err != nil {
		t.Fatal(err)
	}
	if got := src.reads.Load(); got != reads {
		t.Errorf("source reads within the retry interval = %d, want %d", got, reads)
	}
	clock.Advance(staleRetryInterval)
	if _, err := s.Credential(ctx); err != nil {
		t.Fatal(err)
	}
	if got := src.reads.Load(); got != reads+1 {
		t.Errorf("source reads after the retry interval = %d, want %d", got, reads+1)
	}

	clock.Advance(5*time.Minute + DefaultGrace) // past TTL + grace
	_, err = s.Credential(ctx)
	var se *SecretError
	if !errors.As(err, &se) || se.StatusCode != 503 {
		t.Fatalf("Credential() past grace error = %v, want the *SecretError", err)
	}

	src.set("back", nil)
	if c, err := s.Credential(ctx); err != nil || c.ClientSecret != "back" {
		t.Errorf("Credential() after recovery = %v, %v; want back", c, err)
	}
	if st := s.Stats(); st.Failures < 2 || st.Stale < 1 {
		t.Errorf("Stats() = %+v, want failures and stale answers counted", st)
	}
}

func TestCredentialStoreInvalidFormat(t *testing.T) {
	src := &fakeSource{value: "CANARY-not-a-pem"}
	s := NewCredentialStore(src, ModeClientCertificate, nil)
	_, err := s.Credential(context.Background())
	var se *SecretError
	if !errors.As(err, &se) || se.Code != "InvalidFormat" || se.Source != "keyvault" || se.Name != "fake" {
		t.Fatalf("Credential() error = %#v, want *SecretError InvalidFormat from keyvault:fake", err)
	}
	if strings.Contains(err.Error(), "CANARY") {
		t.Errorf("Credential() error %q quotes the value", err)
	}
}

func TestCredentialStoreConcurrentColdRead(t *testing.T) {
	// The read is held until every caller has started, so they pile up on it.
	src := &fakeSource{value: "v", gate: make(chan struct{})}
	s := NewCredentialStore(src, ModeClientSecret, nil)
	var ready, wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			if _, err := s.Credential(context.Background()); err != nil {
				errs <- err
			}
		}()
	}
	ready.Wait()
	close(src.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Credential() error %v", err)
	}
	if got := src.reads.Load(); got != 1 {
		t.Errorf("source reads = %d, want 1", got)
	}
}

func TestCredentialStoreWaiterDeadline(t *testing.T) {
	src := &fakeSource{value: "v", gate: make(chan struct{}), started: make(chan struct{}, 1)}
	s := NewCredentialStore(src, ModeClientSecret, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-src.started
		cancel() // the caller gives up while the read is held
	}()
	// The call returns although the read is still held: the caller waits
	// only as long as its context allows.
	if _, err := s.Credential(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Credential() error = %v, want context.Canceled", err)
	}
	// The read goes on without the caller and its value serves the next.
	close(src.gate)
	if _, err := s.Credential(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.reads.Load(); got != 1 {
		t.Errorf("source reads = %d, want 1", got)
	}
}

func TestCachedSecret(t *testing.T) {
	clock := newClock()
	src := &fakeSource{value: "hook1"}
	s := NewCachedSecret(src, &StoreOptions{TTL: time.Minute, Now: clock.Now})
	for i, want := range []string{"hook1", "hook1", "hook2"} {
		if i == 1 {
			src.set("hook2", nil)
		}
		if i == 2 {
			clock.Advance(time.Minute)
		}
		got, err := s.Secret(context.Background())
		if err != nil || got != want {
			t.Errorf("Secret() #%d = %q, %v; want %q", i, got, err, want)
		}
	}
	if s.Name() != src.Name() {
		t.Errorf("Name() = %q, want %q", s.Name(), src.Name())
	}
}

// A caller that found the cache cold, and whose read started only after
// another caller's read had finished, gets that value instead of reading the
// source a second time (seen as a flake of TestTokenConcurrentColdStart).
func TestCacheLateCallerUsesFinishedRead(t *testing.T) {
	var reads int
	c := &cache[int]{
		name:    "test",
		fetch:   func(context.Context) (int, error) { reads++; return reads, nil },
		timeout: time.Second,
		now:     time.Now,
		log:     slog.Default(),
	}
	first := true
	c.beforeFlight = func() {
		if first {
			first = false
			// Another caller's whole read happens here.
			if v, err := c.get(context.Background()); err != nil || v != 1 {
				t.Errorf("inner get() = %d, %v; want 1", v, err)
			}
		}
	}
	v, err := c.get(context.Background())
	if err != nil || v != 1 {
		t.Errorf("get() = %d, %v; want 1 (the finished read's value)", v, err)
	}
	if reads != 1 {
		t.Errorf("reads = %d, want 1", reads)
	}
}
