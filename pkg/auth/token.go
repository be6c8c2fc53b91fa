package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// Token cache timing.
const (
	// DefaultEarlyRefresh is how long before expiry a cached token is
	// replaced (capped at half the token's lifetime).
	DefaultEarlyRefresh = 5 * time.Minute
	// expiryMargin: a token this close to expiry is never served, even
	// when its refresh failed.
	expiryMargin = 30 * time.Second
)

// TokenOptions tune NewTokenSource. Zero fields take the defaults; a nil
// *TokenOptions means all defaults.
type TokenOptions struct {
	EarlyRefresh time.Duration    // default 5m
	FetchTimeout time.Duration    // bound of one upstream request; default 30s
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // default slog.Default()
	// ManagedIdentityRetry overrides azidentity's managed identity retries
	// (zero value = its defaults).
	ManagedIdentityRetry policy.RetryOptions
}

// TokenStats counts upstream token requests.
type TokenStats struct {
	Requests int64 // token requests sent upstream (Entra or managed identity)
	Failures int64 // of which failed
}

// TokenSource is an oauth2.TokenSource for the Defender API that caches the
// access token in process, refreshes it DefaultEarlyRefresh before expiry
// and lets one upstream request run at a time whatever the concurrency. The
// upstream request runs on its own bounded context; callers wait on theirs.
// Safe for concurrent use; build one per process.
type TokenSource struct {
	fetch   func(context.Context) (*oauth2.Token, error)
	early   time.Duration
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	sf singleflight.Group

	mu        sync.Mutex
	tok       *oauth2.Token
	refreshAt time.Time

	requests, failures atomic.Int64
	retryDelays        []time.Duration
}

// entraRetryDelays space the retries of a token request that failed in a
// way that may pass: Entra throttling or a 5xx, or no usable answer at all.
var entraRetryDelays = []time.Duration{250 * time.Millisecond, time.Second}

// transient reports whether a token request failure may pass on its own.
// Refused credentials (an Entra 4xx) and credential read failures do not.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se *SecretError
	if errors.As(err, &se) {
		return false
	}
	var ee *EntraError
	if errors.As(err, &ee) {
		return ee.StatusCode == http.StatusTooManyRequests || ee.StatusCode >= 500
	}
	return true
}

var _ oauth2.TokenSource = (*TokenSource)(nil)

// NewTokenSource returns the token source for cfg.Auth:
//
//   - client-secret: client credentials grant on Entra's v2 endpoint
//     (scope <audience>/.default), or v1 (resource=<audience>) when
//     MDE_TOKEN_ENDPOINT_VERSION=v1; the secret comes from creds at each
//     refresh, so rotation is picked up.
//   - client-certificate: the same grant with an RS256 client assertion
//     signed by the certificate's key.
//   - password: resource-owner password grant on the v1 endpoint, public
//     client unless the secret's JSON holds a clientSecret.
//   - managed-identity: azidentity's ManagedIdentityCredential (user-assigned
//     when cfg.ClientID is set); creds may be nil.
//
// httpClient (nil = http.DefaultClient) carries the token requests. No I/O
// happens before the first TokenContext call.
func NewTokenSource(cfg *Config, creds *CredentialStore, httpClient *http.Client, opts *TokenOptions) (*TokenSource, error) {
	if opts == nil {
		opts = &TokenOptions{}
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	ts := &TokenSource{early: opts.EarlyRefresh, timeout: opts.FetchTimeout, now: opts.Now, log: opts.Logger}
	if ts.early <= 0 {
		ts.early = DefaultEarlyRefresh
	}
	if ts.timeout <= 0 {
		ts.timeout = defaultFetchTimeout
	}
	if ts.now == nil {
		ts.now = time.Now
	}
	if ts.log == nil {
		ts.log = slog.Default()
	}
	if cfg.Auth != AuthManagedIdentity && creds == nil {
		return nil, fmt.Errorf("auth: %s mode needs a credential store", cfg.Auth)
	}
	ts.retryDelays = entraRetryDelays
	e := &entra{cfg: cfg, creds: creds, http: httpClient, now: ts.now}
	switch cfg.Auth {
	case AuthClientSecret:
		ts.fetch = e.clientSecret
	case AuthClientCertificate:
		ts.fetch = e.clientCertificate
	case AuthPassword:
		ts.fetch = e.password
	case AuthManagedIdentity:
		mi, err := newManagedIdentity(cfg, httpClient, opts.ManagedIdentityRetry)
		if err != nil {
			return nil, err
		}
		ts.fetch = mi.token
		ts.retryDelays = nil // azidentity retries the identity endpoint itself
	default:
		return nil, fmt.Errorf("auth: unknown mode %q", cfg.Auth)
	}
	return ts, nil
}

// Token returns a valid token, acquiring one without a deadline of its own
// beyond the upstream request's bound. Prefer TokenContext.
func (ts *TokenSource) Token() (*oauth2.Token, error) {
	return ts.TokenContext(context.Background())
}

// TokenContext returns the cached token, or waits (at most until ctx is
// done) for the single upstream request that replaces it. The result is a
// copy the caller may keep. Every error matches ErrToken; its cause is an
// *EntraError when Entra answered, a *SecretError when the credential could
// not be read, a context error when ctx ended first.
func (ts *TokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	ts.mu.Lock()
	if ts.tok != nil && ts.now().Before(ts.refreshAt) {
		t := *ts.tok
		ts.mu.Unlock()
		return &t, nil
	}
	ts.mu.Unlock()

	ch := ts.sf.DoChan("", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), ts.timeout)
		defer cancel()
		return ts.refresh(ctx)
	})
	select {
	case <-ctx.Done():
		return nil, &tokenError{fmt.Errorf("auth: waiting for a token: %w", ctx.Err())}
	case r := <-ch:
		if r.Err != nil {
			return nil, &tokenError{r.Err}
		}
		t := *r.Val.(*oauth2.Token)
		return &t, nil
	}
}

func (ts *TokenSource) refresh(ctx context.Context) (*oauth2.Token, error) {
	ts.requests.Add(1)
	tok, err := ts.fetch(ctx)
	for _, d := range ts.retryDelays {
		if err == nil || !transient(err) {
			break
		}
		ts.log.Debug("auth: token request failed; retrying", "delay", d.String(), "error", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(d):
			ts.requests.Add(1)
			tok, err = ts.fetch(ctx)
		}
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now()
	if err != nil {
		ts.failures.Add(1)
		// A token still valid for a while beats an error; the next call
		// tries again.
		if ts.tok != nil && !ts.tok.Expiry.IsZero() && now.Before(ts.tok.Expiry.Add(-expiryMargin)) {
			ts.log.Warn("auth: token refresh failed; using the current token until it expires",
				"expiresAt", ts.tok.Expiry.UTC().Format(time.RFC3339), "error", err.Error())
			return ts.tok, nil
		}
		return nil, err
	}
	ts.tok = tok
	ts.refreshAt = refreshTime(now, tok.Expiry, ts.early)
	return tok, nil
}

// refreshTime is when a token obtained at now should be replaced: early
// before expiry, but never before half its lifetime.
func refreshTime(now, expiry time.Time, early time.Duration) time.Time {
	if expiry.IsZero() {
		return now.Add(early)
	}
	life := expiry.Sub(now)
	if early > life/2 {
		early = life / 2
	}
	return expiry.Add(-early)
}

// Invalidate drops the cached token, so the next call gets a new one. Call
// it when the API rejects the token (HTTP 401), then retry once.
func (ts *TokenSource) Invalidate() {
	ts.mu.Lock()
	ts.tok = nil
	ts.mu.Unlock()
}

// Stats reports the upstream token requests made so far.
func (ts *TokenSource) Stats() TokenStats {
	return TokenStats{Requests: ts.requests.Load(), Failures: ts.failures.Load()}
}

// entra acquires tokens from the Entra token endpoint.
type entra struct {
	cfg   *Config
	creds *CredentialStore
	http  *http.Client
	now   func() time.Time
}

// tokenURL returns the v1 or v2 token endpoint of tenant.
func (e *entra) tokenURL(tenant string, v TokenEndpointVersion) string {
	if v == TokenEndpointV1 {
		return e.cfg.AuthorityURL + "/" + tenant + "/oauth2/token"
	}
	return e.cfg.AuthorityURL + "/" + tenant + "/oauth2/v2.0/token"
}

func (e *entra) scope() string {
	return strings.TrimRight(e.cfg.TokenAudience, "/") + "/.default"
}

func (e *entra) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, e.http)
}

// done completes a token request: it dates the expiry by the injected
// clock (x/oauth2 uses the wall clock) and converts the error.
func (e *entra) done(tok *oauth2.Token, err error) (*oauth2.Token, error) {
	if err != nil {
		return nil, e.fail(err)
	}
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs > 0 && secs < 1e7 {
		tok.Expiry = e.now().Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}

// fail converts a token request error, and has the store reread the secret
// when Entra rejected the client (it may have been rotated).
func (e *entra) fail(err error) error {
	err = entraError(err)
	var ee *EntraError
	if errors.As(err, &ee) && (ee.Code == "invalid_client" || ee.Code == "unauthorized_client") && e.creds != nil {
		e.creds.Invalidate()
	}
	return err
}
