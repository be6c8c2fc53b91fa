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
	// DefaultTTL is how long a CredentialStore or CachedSecret reuses a
	// value before reading its source again.
	DefaultTTL = 5 * time.Minute
	// DefaultGrace is how long past its TTL the last good value is still
	// served while the source fails.
	DefaultGrace = 15 * time.Minute
	// staleRetryInterval spaces the reads of a failing source while a stale
	// value is served.
	staleRetryInterval = 30 * time.Second
	// defaultFetchTimeout bounds one upstream read, whoever waits for it.
	defaultFetchTimeout = 30 * time.Second
)

// cache is the one read-through cache of this package, behind the
// CredentialStore, the CachedSecret, the TokenSource and the Verifier's
// one-time lookups. It holds one value read through fetch and lets one read
// run at a time whatever the concurrency: the read belongs to no single
// caller, runs on its own context bounded by timeout, and its result serves
// every caller waiting then (each waits only as long as its own context
// allows) and every later one.
//
// When a read fails and the last good value is still usable, that value is
// served instead (stale fallback, logged) and no new read starts before
// retryStale has passed.
type cache[T any] struct {
	name  string // in errors and logs: "keyvault:<name>", "token", ...
	fetch func(context.Context) (T, error)
	// life says, for a value read at now, when it should be replaced and
	// until when it may still stand in for a failed read. Nil means a value,
	// once read, is kept for good.
	life       func(v T, now time.Time) (refreshAt, usableUntil time.Time)
	retryStale time.Duration
	timeout    time.Duration
	now        func() time.Time
	log        *slog.Logger

	sf singleflight.Group
	// beforeFlight, in tests, runs between a caller's look at the cache and
	// its joining (or starting) the read.
	beforeFlight func()

	mu          sync.Mutex
	val         T
	has         bool
	fetched     time.Time // when val was read
	refreshAt   time.Time
	usableUntil time.Time
	retryAt     time.Time // no new read before this while serving stale
	expired     bool      // expire was called: read again, val is the fallback

	reads, failures, stale atomic.Int64
}

// get returns the cached value, or waits (at most until ctx is done) for
// the read that replaces it.
func (c *cache[T]) get(ctx context.Context) (T, error) {
	if v, ok := c.fresh(); ok {
		return v, nil
	}
	c.mu.Lock()
	now := c.now()
	if c.has && now.Before(c.retryAt) && now.Before(c.usableUntil) {
		v := c.val
		c.mu.Unlock()
		c.stale.Add(1)
		return v, nil
	}
	c.mu.Unlock()
	if c.beforeFlight != nil {
		c.beforeFlight()
	}

	ch := c.sf.DoChan("", func() (any, error) {
		// A read that finished between this caller's look at the cache
		// and the start of this flight already holds a fresh value.
		if v, ok := c.fresh(); ok {
			return v, nil
		}
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

// fresh returns the cached value when it needs no read.
func (c *cache[T]) fresh() (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has && !c.expired && (c.life == nil || c.now().Before(c.refreshAt)) {
		return c.val, true
	}
	var zero T
	return zero, false
}

func (c *cache[T]) refresh(ctx context.Context) (T, error) {
	c.reads.Add(1)
	v, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if err == nil {
		c.val, c.has, c.fetched, c.expired, c.retryAt = v, true, now, false, time.Time{}
		if c.life != nil {
			c.refreshAt, c.usableUntil = c.life(v, now)
		}
		return v, nil
	}
	c.failures.Add(1)
	if c.has && now.Before(c.usableUntil) {
		c.retryAt = now.Add(c.retryStale)
		c.stale.Add(1)
		c.log.Warn("auth: refresh failed; serving the last good value",
			"source", c.name, "age", now.Sub(c.fetched).Round(time.Second).String(),
			"until", c.usableUntil.UTC().Format(time.RFC3339), "error", err.Error())
		return c.val, nil
	}
	var zero T
	return zero, err
}

// expire makes the next get read again; the current value still serves as
// the stale fallback while usable.
func (c *cache[T]) expire() {
	c.mu.Lock()
	c.expired = true
	c.retryAt = time.Time{}
	c.mu.Unlock()
}

// drop forgets the current value: the next get reads again, with no
// fallback.
func (c *cache[T]) drop() {
	c.mu.Lock()
	var zero T
	c.val, c.has, c.expired, c.retryAt = zero, false, false, time.Time{}
	c.mu.Unlock()
}

func (c *cache[T]) stats() StoreStats {
	return StoreStats{Reads: c.reads.Load(), Failures: c.failures.Load(), Stale: c.stale.Load()}
}

// StoreOptions tune a CredentialStore or CachedSecret. A nil *StoreOptions,
// and every zero field, means the documented default.
type StoreOptions struct {
	TTL          time.Duration    // how long a value is reused; default 5m (DefaultTTL)
	Grace        time.Duration    // how long past the TTL the last good value stands in for a failing source; default 15m (DefaultGrace); negative = none
	FetchTimeout time.Duration    // bound of one read of the source; default 30s
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // receives the stale-value warnings; default slog.Default()
}

// StoreStats counts reads of the underlying source.
type StoreStats struct {
	Reads    int64 // attempts to read the source
	Failures int64 // attempts that failed
	Stale    int64 // answers served from the last good value after a failure
}

// newSecretCache returns the cache of a CredentialStore or CachedSecret:
// TTL, then grace with reads spaced by staleRetryInterval (vaults throttle,
// and the fallback lasts minutes).
func newSecretCache[T any](name string, fetch func(context.Context) (T, error), o *StoreOptions) *cache[T] {
	if o == nil {
		o = &StoreOptions{}
	}
	ttl, grace := o.TTL, o.Grace
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	switch {
	case grace == 0:
		grace = DefaultGrace
	case grace < 0:
		grace = 0
	}
	return &cache[T]{
		name:  name,
		fetch: fetch,
		life: func(_ T, now time.Time) (time.Time, time.Time) {
			return now.Add(ttl), now.Add(ttl + grace)
		},
		retryStale: staleRetryInterval,
		timeout:    positive(o.FetchTimeout, defaultFetchTimeout),
		now:        orNow(o.Now),
		log:        orDefaultLogger(o.Logger),
	}
}

// CredentialStore caches the parsed credential read from a SecretSource. It
// rereads the source after the TTL (so rotation is picked up), lets one read
// run at a time whatever the concurrency, and, when a read fails, keeps
// serving the last good credential for StoreOptions.Grace past its TTL,
// logging a warning; after that the *SecretError is returned. Safe for
// concurrent use; build one per process.
type CredentialStore struct {
	c *cache[*Credential]
}

var _ CredentialProvider = (*CredentialStore)(nil)

// NewCredentialStore returns a store reading src (not nil) and parsing the
// value with ParseCredential for mode (an empty mode checks nothing). A
// value that does not parse is a *SecretError with Code "InvalidFormat".
// opts may be nil. No I/O happens before the first Credential call.
func NewCredentialStore(src SecretSource, mode Mode, opts *StoreOptions) *CredentialStore {
	fetch := func(ctx context.Context) (*Credential, error) {
		raw, err := src.Secret(ctx)
		if err != nil {
			return nil, err
		}
		cred, err := ParseCredential(raw, mode)
		if err != nil {
			kind, name := splitSourceName(src.Name())
			return nil, &SecretError{Source: kind, Name: name, Code: "InvalidFormat", Message: err.Error()}
		}
		return cred, nil
	}
	return &CredentialStore{c: newSecretCache(src.Name(), fetch, opts)}
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
func (s *CredentialStore) Invalidate() { s.c.expire() }

// Stats reports how often the source was read.
func (s *CredentialStore) Stats() StoreStats { return s.c.stats() }

// CachedSecret is a SecretSource that caches another one like
// CredentialStore does (TTL, one read at a time, grace period), without
// parsing the value; for a webhook signing secret, say. Safe for concurrent
// use.
type CachedSecret struct {
	c    *cache[string]
	name string
}

// NewCachedSecret wraps src (not nil). opts may be nil.
func NewCachedSecret(src SecretSource, opts *StoreOptions) *CachedSecret {
	return &CachedSecret{c: newSecretCache(src.Name(), src.Secret, opts), name: src.Name()}
}

// Secret returns the cached value, reading the source when needed.
func (s *CachedSecret) Secret(ctx context.Context) (string, error) { return s.c.get(ctx) }

// Name returns the wrapped source's name.
func (s *CachedSecret) Name() string { return s.name }

// Invalidate makes the next Secret call reread the source.
func (s *CachedSecret) Invalidate() { s.c.expire() }

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

func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func orDefaultLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
