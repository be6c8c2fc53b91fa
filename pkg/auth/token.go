package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
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

// CredentialProvider supplies the stored credential a TokenSource signs in
// with; *CredentialStore is one. If it also has an Invalidate() method, the
// token source calls it when Entra rejects the client (invalid_client,
// unauthorized_client), so that a rotated secret is read again.
// Implementations are safe for concurrent use; callers do not modify the
// result.
type CredentialProvider interface {
	Credential(ctx context.Context) (*Credential, error)
}

// TokenOptions tune NewTokenSource. A nil *TokenOptions, and every zero
// field, means the documented default.
type TokenOptions struct {
	// AuthorityURL is the Entra authority host; default
	// https://login.microsoftonline.com (CloudPublic's).
	AuthorityURL string
	// Audience is the token's resource; default
	// https://api.securitycenter.microsoft.com, the Defender API of
	// CloudPublic. The v2 endpoint and the managed identity ask for
	// <Audience>/.default.
	Audience string
	// EndpointVersion selects the token endpoint of the client-secret and
	// client-certificate modes; default TokenEndpointV2.
	EndpointVersion TokenEndpointVersion

	EarlyRefresh time.Duration // how long before expiry a token is replaced; default 5m
	FetchTimeout time.Duration // bound of one acquisition, retries included; default 30s
	// Now is the clock of the cache and of token expiry; default time.Now.
	Now func() time.Time
	// Sleep waits for d or until ctx is done, returning ctx.Err() then,
	// between the retries of a transient Entra failure; default a real
	// timer. For tests.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives the debug records of retries and the warning when an
	// older token stands in for a failed refresh (never a token or secret);
	// default slog.Default().
	Logger *slog.Logger
	// ManagedIdentityRetry overrides azidentity's managed identity retries
	// (zero value = its defaults).
	ManagedIdentityRetry AzureRetryOptions
}

// TokenStats counts upstream token requests.
type TokenStats struct {
	Requests int64 // token requests sent upstream (Entra or managed identity)
	Failures int64 // acquisitions that failed, after their retries
}

// TokenSource is an oauth2.TokenSource for the Defender API that caches the
// access token in process, refreshes it TokenOptions.EarlyRefresh before
// expiry and lets one upstream acquisition run at a time whatever the
// concurrency. The acquisition runs on its own bounded context; callers wait
// on theirs. When a refresh fails while the current token is still valid
// (for more than 30 seconds), that token is served and the next call tries
// again. Safe for concurrent use; build one per process, from
// context.Background, never from a request.
type TokenSource struct {
	c           *cache[*oauth2.Token]
	fetch       func(context.Context) (*oauth2.Token, error)
	retryDelays []time.Duration
	sleep       func(context.Context, time.Duration) error
	log         *slog.Logger

	requests atomic.Int64
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

// NewTokenSource returns a token source signing in to tenantID as clientID
// in mode:
//
//   - ModeClientSecret: client credentials grant on Entra's v2 endpoint
//     (scope <audience>/.default), or v1 (resource=<audience>) with
//     TokenEndpointV1; the secret comes from creds at each refresh, so
//     rotation is picked up.
//   - ModeClientCertificate: the same grant with an RS256 client assertion
//     signed by the credential's certificate key.
//   - ModePassword: resource-owner password grant on the v1 endpoint, public
//     client unless the credential holds a ClientSecret.
//   - ModeManagedIdentity: azidentity's ManagedIdentityCredential, of the
//     user-assigned identity clientID when not empty; tenantID and creds are
//     not used (creds may be nil).
//
// A credential's TenantID and ClientID, when set (from the secret's JSON),
// replace tenantID and clientID. httpClient (nil = http.DefaultClient)
// carries the token requests; opts may be nil. No I/O happens before the
// first TokenContext call.
func NewTokenSource(mode Mode, tenantID, clientID string, creds CredentialProvider, httpClient *http.Client, opts *TokenOptions) (*TokenSource, error) {
	if opts == nil {
		opts = &TokenOptions{}
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	if cs, ok := creds.(*CredentialStore); ok && cs == nil {
		creds = nil
	}
	public := clouds[CloudPublic]
	e := &entra{
		tenant:    tenantID,
		client:    clientID,
		authority: strings.TrimRight(opts.AuthorityURL, "/"),
		audience:  strings.TrimRight(opts.Audience, "/"),
		version:   opts.EndpointVersion,
		creds:     creds,
		http:      httpClient,
		now:       orNow(opts.Now),
	}
	if e.authority == "" {
		e.authority = public.AuthorityURL
	}
	if e.audience == "" {
		e.audience = public.TokenAudience
	}
	switch e.version {
	case "":
		e.version = TokenEndpointV2
	case TokenEndpointV1, TokenEndpointV2:
	default:
		return nil, fmt.Errorf("auth: unknown token endpoint version %q", e.version)
	}
	ts := &TokenSource{retryDelays: entraRetryDelays, sleep: opts.Sleep, log: orDefaultLogger(opts.Logger)}
	if ts.sleep == nil {
		ts.sleep = sleepCtx
	}
	if mode != ModeManagedIdentity {
		if creds == nil {
			return nil, fmt.Errorf("auth: %s mode needs a credential provider", mode)
		}
		if tenantID == "" {
			return nil, fmt.Errorf("auth: %s mode needs a tenant ID", mode)
		}
	}
	switch mode {
	case ModeClientSecret:
		ts.fetch = e.clientSecret
	case ModeClientCertificate:
		ts.fetch = e.clientCertificate
	case ModePassword:
		ts.fetch = e.password
	case ModeManagedIdentity:
		mi, err := newManagedIdentity(clientID, e.audience, httpClient, opts.ManagedIdentityRetry)
		if err != nil {
			return nil, err
		}
		ts.fetch = mi.token
		ts.retryDelays = nil // azidentity retries the identity endpoint itself
	default:
		return nil, fmt.Errorf("auth: unknown mode %q", mode)
	}
	early := positive(opts.EarlyRefresh, DefaultEarlyRefresh)
	ts.c = &cache[*oauth2.Token]{
		name:  "token",
		fetch: ts.acquire,
		life: func(tok *oauth2.Token, now time.Time) (time.Time, time.Time) {
			if tok.Expiry.IsZero() {
				return now.Add(early), time.Time{}
			}
			return refreshTime(now, tok.Expiry, early), tok.Expiry.Add(-expiryMargin)
		},
		// Unlike a secret, a token is never served past its own expiry,
		// and the fallback lasts at most the last minutes of its life: every
		// call while it stands in tries again (one at a time), so a fresh
		// token is had as soon as Entra answers. acquire already spaces its
		// own retries.
		retryStale: 0,
		timeout:    positive(opts.FetchTimeout, defaultFetchTimeout),
		now:        e.now,
		log:        ts.log,
	}
	return ts, nil
}

// Token returns a valid token, acquiring one without a deadline of its own
// beyond the upstream request's bound. Prefer TokenContext.
func (ts *TokenSource) Token() (*oauth2.Token, error) {
	return ts.TokenContext(context.Background())
}

// TokenContext returns the cached token, or waits (at most until ctx is
// done) for the single upstream acquisition that replaces it. The result is
// a copy the caller may keep. Every error matches ErrToken; its cause is an
// *EntraError when Entra answered, a *SecretError when the credential could
// not be read, a context error when ctx ended first.
func (ts *TokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	tok, err := ts.c.get(ctx)
	if err != nil {
		return nil, &tokenError{err}
	}
	t := *tok
	return &t, nil
}

// acquire requests a token, retrying transient failures after
// ts.retryDelays while ctx allows.
func (ts *TokenSource) acquire(ctx context.Context) (*oauth2.Token, error) {
	ts.requests.Add(1)
	tok, err := ts.fetch(ctx)
	for _, d := range ts.retryDelays {
		if err == nil || !transient(err) {
			break
		}
		ts.log.Debug("auth: token request failed; retrying", "delay", d.String(), "error", err.Error())
		if ts.sleep(ctx, d) != nil {
			break
		}
		ts.requests.Add(1)
		tok, err = ts.fetch(ctx)
	}
	return tok, err
}

// refreshTime is when a token obtained at now should be replaced: early
// before expiry, but never before half its lifetime.
func refreshTime(now, expiry time.Time, early time.Duration) time.Time {
	life := expiry.Sub(now)
	if early > life/2 {
		early = life / 2
	}
	return expiry.Add(-early)
}

// Invalidate drops the cached token, so the next call gets a new one and
// the dropped token never stands in for a failed refresh. Call it when the
// API rejects the token (HTTP 401), then retry once.
func (ts *TokenSource) Invalidate() { ts.c.drop() }

// Stats reports the upstream token requests made so far.
func (ts *TokenSource) Stats() TokenStats {
	return TokenStats{Requests: ts.requests.Load(), Failures: ts.c.failures.Load()}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// entra acquires tokens from the Entra token endpoint.
type entra struct {
	tenant, client      string // defaults; the credential's JSON overrides them
	authority, audience string // no trailing slash
	version             TokenEndpointVersion
	creds               CredentialProvider
	http                *http.Client
	now                 func() time.Time
}

// credential returns the current credential with the tenant and client
// filled in where the secret's JSON named none.
func (e *entra) credential(ctx context.Context) (*Credential, error) {
	cred, err := e.creds.Credential(ctx)
	if err != nil {
		return nil, err
	}
	c := *cred
	if c.TenantID == "" {
		c.TenantID = e.tenant
	}
	if c.ClientID == "" {
		c.ClientID = e.client
	}
	return &c, nil
}

// tokenURL returns the v1 or v2 token endpoint of tenant.
func (e *entra) tokenURL(tenant string, v TokenEndpointVersion) string {
	if v == TokenEndpointV1 {
		return e.authority + "/" + tenant + "/oauth2/token"
	}
	return e.authority + "/" + tenant + "/oauth2/v2.0/token"
}

func (e *entra) scope() string {
	return e.audience + "/.default"
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

// fail converts a token request error, and has the provider reread the
// secret when Entra rejected the client (it may have been rotated).
func (e *entra) fail(err error) error {
	err = entraError(err)
	var ee *EntraError
	if errors.As(err, &ee) && (ee.Code == "invalid_client" || ee.Code == "unauthorized_client") {
		if inv, ok := e.creds.(interface{ Invalidate() }); ok {
			inv.Invalidate()
		}
	}
	return err
}
