package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache timing defaults.
const (
	// DefaultGrace is how long past its TTL the last good value is still
	// served while the source fails.
	DefaultGrace = 15 * time.Minute
	// staleRetryInterval spaces the reads of a failing source while a stale
	// value is served.
	staleRetryInterval = 30 * time.Second
	// defaultFetchTimeout bounds one upstream read, whoever waits for it.
	defaultFetchTimeout = 30 * time.Second
)

// StoreOptions tune a CredentialStore or CachedSecret. Zero fields take the
// defaults.
type StoreOptions struct {
	TTL          time.Duration    // default: Config.SecretTTL, else 5m
	Grace        time.Duration    // default: DefaultGrace (15m); negative = none
	FetchTimeout time.Duration    // default: 30s
	Now          func() time.Time // default: time.Now
	Logger       *slog.Logger     // default: slog.Default()
}

// StoreStats counts reads of the underlying source.
type StoreStats struct {
	Reads    int64 // attempts to read the source
	Failures int64 // attempts that failed
	Stale    int64 // answers served from the last good value after a failure
}

// cache holds one value read through fetch, refreshed after ttl, with one
// read in flight at a time.
type cache[T any] struct {
	name    string
	fetch   func(context.Context) (T, error)
	ttl     time.Duration
	grace   time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	sf singleflight.Group

	mu      sync.Mutex
	val     T
	has     bool
	fetched time.Time // when val was read
	retryAt time.Time // no new read before this while serving stale
	invalid bool

	reads, failures, stale atomic.Int64
}

func newCache[T any](name string, fetch func(context.Context) (T, error), ttl time.Duration, o *StoreOptions) *cache[T] {
	if o == nil {
		o = &StoreOptions{}
	}
	c := &cache[T]{name: name, fetch: fetch, ttl: ttl, grace: o.Grace, timeout: o.FetchTimeout, now: o.Now, log: o.Logger}
	if o.TTL > 0 {
		c.ttl = o.TTL
	}
	if c.ttl <= 0 {
		c.ttl = DefaultSecretTTL
	}
	switch {
	case c.grace == 0:
		c.grace = DefaultGrace
	case c.grace < 0:
		c.grace = 0
	}
	if c.timeout <= 0 {
		c.timeout = defaultFetchTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

func (c *cache[T]) get(ctx context.Context) (T, error) {
	c.mu.Lock()
	now := c.now()
	if c.has && !c.invalid && now.Before(c.fetched.Add(c.ttl)) {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	if c.has && now.Before(c.retryAt) && now.Before(c.fetched.Add(c.ttl+c.grace)) {
		v := c.val
		c.mu.Unlock()
		c.stale.Add(1)
		return v, nil
	}
	c.mu.Unlock()

	ch := c.sf.DoChan("", func() (any, error) {
		// The read belongs to no single caller: it runs to its own bound
		// and its result serves everyone, including later callers.
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		return c.refresh(ctx)
	})
	select {
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("auth: waiting for %s: %w", c.name, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			var zero T
			return zero, r.Err
		}
		return r.Val.(T), nil
	}
}

func (c *cache[T]) refresh(ctx context.Context) (T, error) {
	c.reads.Add(1)
	v, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if err == nil {
		c.val, c.has, c.fetched, c.invalid, c.retryAt = v, true, now, false, time.Time{}
		return v, nil
	}
	c.failures.Add(1)
	if deadline := c.fetched.Add(c.ttl + c.grace); c.has && now.Before(deadline) {
		c.retryAt = now.Add(staleRetryInterval)
		c.stale.Add(1)
		c.log.Warn("auth: refresh failed; serving the last good value",
			"source", c.name, "age", now.Sub(c.fetched).Round(time.Second).String(),
			"until", deadline.UTC().Format(time.RFC3339), "error", err.Error())
		return c.val, nil
	}
	var zero T
	return zero, err
}

// invalidate makes the next get read the source again (the current value
// still serves as the stale fallback).
func (c *cache[T]) invalidate() {
	c.mu.Lock()
	c.invalid = true
	c.retryAt = time.Time{}
	c.mu.Unlock()
}

func (c *cache[T]) stats() StoreStats {
	return StoreStats{Reads: c.reads.Load(), Failures: c.failures.Load(), Stale: c.stale.Load()}
}

// CredentialStore caches the parsed credential read from a SecretSource. It
// rereads the source after the TTL (so rotation is picked up), lets one read
// run at a time whatever the concurrency, and, when a read fails, keeps
// serving the last good credential for StoreOptions.Grace (15 minutes by
// default) past its TTL, logging a warning; after that the *SecretError is
// returned. Safe for concurrent use.
type CredentialStore struct {
	c *cache[*Credential]
}

// NewCredentialStore returns a store reading src and parsing the value for
// cfg.Auth. TenantID and ClientID missing from the value's JSON are filled
// from cfg. opts may be nil. A nil src (managed-identity mode) gives a nil
// store, which NewTokenSource accepts in that mode.
func NewCredentialStore(cfg *Config, src SecretSource, opts *StoreOptions) *CredentialStore {
	if src == nil {
		return nil
	}
	fetch := func(ctx context.Context) (*Credential, error) {
		raw, err := src.Secret(ctx)
		if err != nil {
			return nil, err
		}
		cred, err := ParseCredential(raw, cfg.Auth)
		if err != nil {
			kind, name := splitSourceName(src.Name())
			return nil, &SecretError{Source: kind, Name: name, Code: "InvalidFormat", Message: err.Error()}
		}
		if cred.TenantID == "" {
			cred.TenantID = cfg.TenantID
		}
		if cred.ClientID == "" {
			cred.ClientID = cfg.ClientID
		}
		return cred, nil
	}
	return &CredentialStore{c: newCache(src.Name(), fetch, cfg.SecretTTL, opts)}
}

// Credential returns the cached credential, reading the source when the
// cache is cold or older than the TTL. Waiting honours ctx; the read itself
// runs to its own timeout and its result is kept for the next caller.
// Callers must not modify the result.
func (s *CredentialStore) Credential(ctx context.Context) (*Credential, error) {
	return s.c.get(ctx)
}

// Invalidate makes the next Credential call reread the source, for example
// after Entra rejected the secret. The current value remains the fallback
// during the grace period.
func (s *CredentialStore) Invalidate() { s.c.invalidate() }

// Stats reports how often the source was read.
func (s *CredentialStore) Stats() StoreStats { return s.c.stats() }

// CachedSecret is a SecretSource that caches another one like
// CredentialStore does (TTL, one read at a time, grace period), without
// parsing the value. Use it for the webhook secret.
type CachedSecret struct {
	c    *cache[string]
	name string
}

// NewCachedSecret wraps src. A zero opts.TTL means DefaultSecretTTL.
func NewCachedSecret(src SecretSource, opts *StoreOptions) *CachedSecret {
	return &CachedSecret{c: newCache(src.Name(), src.Secret, DefaultSecretTTL, opts), name: src.Name()}
}

// Secret returns the cached value, reading the source when needed.
func (s *CachedSecret) Secret(ctx context.Context) (string, error) { return s.c.get(ctx) }

// Name returns the wrapped source's name.
func (s *CachedSecret) Name() string { return s.name }

// Invalidate makes the next Secret call reread the source.
func (s *CachedSecret) Invalidate() { s.c.invalidate() }

// Stats reports how often the source was read.
func (s *CachedSecret) Stats() StoreStats { return s.c.stats() }

func splitSourceName(n string) (kind, name string) {
	for i := 0; i < len(n); i++ {
		if n[i] == ':' {
			return n[:i], n[i+1:]
		}
	}
	return n, ""
}
