// Package wiring wires a loaded configuration into the functions: the secret
// source, the token source, the Defender client, the verifier and the HTTP
// front. Entry points (cmd/mdefn, cmd/bootstrap/*) only call Build and Run.
package wiring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/functions/indicators"
	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/httpguard"
	"github.com/mdefn/mdefn/internal/openapi"
	"github.com/mdefn/mdefn/internal/platform"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// Options tune Build; the zero value is production.
type Options struct {
	// HTTPClient carries every outbound call (vault, Entra, Defender); nil
	// means Go's defaults (SSL_CERT_FILE works).
	HTTPClient *http.Client
	// Logger receives JSON log lines; nil means JSON on stdout at the
	// configured level.
	Logger *slog.Logger
	// NoCallBudget turns off the Defender client's own calls-per-minute and
	// calls-per-hour budget (atp.Options.CallsPerMinute and CallsPerHour
	// negative). For benchmarks against the simulator only (cmd/mdefnbench):
	// production keeps Defender's documented limits.
	NoCallBudget bool
	// Defender, when set, are the Defender client's options (call budget,
	// clock, sleep) for tests; HTTPClient and Logger still come from above.
	Defender *atp.Options
	// ShortRetries is for a diagnosis (mdefn doctor): Key Vault, managed
	// identity and Defender retry once with short delays and a fetch
	// waits at most StepTimeout, so that an unreachable upstream is
	// reported in seconds. Everything else is built as in production.
	ShortRetries bool
	// Secrets, when set, replaces the configured credential source (the
	// doctor passes the value it has just read, so that the vault is read
	// once per run).
	Secrets auth.SecretSource
}

// StepTimeout bounds each upstream fetch under ShortRetries.
const StepTimeout = 30 * time.Second

// shortRetry is the SDKs' retry policy under ShortRetries.
var shortRetry = policy.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}

// Components are the built pieces, exposed for tests and the doctor.
type Components struct {
	Config   *config.Config
	Logger   *slog.Logger
	Secrets  auth.SecretSource
	Creds    *auth.CredentialStore
	Tokens   *auth.TokenSource
	Defender *atp.Client
	Verifier *auth.Verifier
	// Functions are the registered functions' handlers by name, before
	// the HTTP guard (method, body limit, webhook signature).
	Functions map[string]http.Handler
	App       *platform.App
}

// NewLogger returns the JSON logger of the contract (stdout, MDE_LOG_LEVEL).
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Build builds every component from cfg. It does no I/O: the vault and Entra
// are first called by the first invocation.
func Build(cfg *config.Config, o *Options) (*Components, error) {
	if o == nil {
		o = &Options{}
	}
	c := &Components{Config: cfg, Logger: o.Logger}
	if c.Logger == nil {
		c.Logger = NewLogger(stdout, cfg.LogLevel)
	}
	for _, w := range cfg.Warnings {
		c.Logger.Warn(w)
	}
	var err error
	var kv *auth.KeyVaultOptions
	if o.ShortRetries {
		kv = cfg.KeyVaultOptions()
		kv.Retry = shortRetry
	}
	switch {
	case o.Secrets != nil:
		c.Secrets = o.Secrets
	case cfg.Auth != auth.ModeManagedIdentity || cfg.CredentialSource != config.SourceNone:
		if c.Secrets, err = cfg.SecretSource(o.HTTPClient, kv); err != nil {
			return nil, fmt.Errorf("secret source: %w", err)
		}
	}
	if c.Secrets != nil {
		credOpts := cfg.StoreOptions()
		credOpts.Logger = c.Logger
		c.Creds = auth.NewCredentialStore(c.Secrets, cfg.Auth, credOpts)
	}
	tokenOpts := cfg.TokenOptions()
	tokenOpts.Logger = c.Logger
	if o.ShortRetries {
		tokenOpts.FetchTimeout, tokenOpts.ManagedIdentityRetry = StepTimeout, shortRetry
	}
	if c.Tokens, err = auth.NewTokenSource(cfg.Auth, cfg.TenantID, cfg.ClientID, c.Creds, o.HTTPClient, tokenOpts); err != nil {
		return nil, fmt.Errorf("token source: %w", err)
	}
	atpOpts := &atp.Options{}
	if o.Defender != nil {
		*atpOpts = *o.Defender
	}
	atpOpts.HTTPClient, atpOpts.Logger = o.HTTPClient, c.Logger
	if o.NoCallBudget {
		atpOpts.CallsPerMinute, atpOpts.CallsPerHour = -1, -1
	}
	if o.ShortRetries {
		atpOpts.MaxRetries, atpOpts.RetryBaseDelay, atpOpts.RetryMaxDelay = 1, 200*time.Millisecond, time.Second
	}
	if c.Defender, err = atp.NewClient(cfg.APIURL, c.Tokens, atpOpts); err != nil {
		return nil, fmt.Errorf("defender client: %w", err)
	}
	c.Verifier = auth.NewVerifier(cfg.AuthorityURL, cfg.TenantID, cfg.TokenAudience, o.HTTPClient, &auth.VerifierOptions{Logger: c.Logger})
	neverBlock, err := indicators.ParseNeverBlock(cfg.IndicatorNeverBlock)
	if err != nil {
		return nil, fmt.Errorf("MDE_INDICATOR_NEVER_BLOCK: %w", err)
	}
	c.Functions = functions.Build(functions.Deps{
		NeverBlock:           neverBlock,
		Defender:             c.Defender,
		Tokens:               c.Tokens,
		Verifier:             c.Verifier,
		Logger:               c.Logger,
		ProtectedTags:        cfg.ProtectedTags,
		DryRun:               cfg.DryRun,
		MaxIsolationsPerHour: cfg.MaxIsolationsPerHour,
		Requestor: func(ctx context.Context) (string, error) {
			return requestor(ctx, c.Tokens)
		},
	})

	var front httpguard.Options
	webhook, err := cfg.WebhookSecretSource(o.HTTPClient, nil)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	if webhook != nil {
		cached := auth.NewCachedSecret(webhook, &auth.StoreOptions{Logger: c.Logger})
		front.WebhookSecret = func(ctx context.Context) ([]byte, error) {
			s, err := cached.Secret(ctx)
			if err != nil {
				return nil, err
			}
			return []byte(s), nil
		}
	}
	with := func(methods []string) httpguard.Options {
		o := front
		o.Methods = methods
		return o
	}
	handlers := make(map[string]http.Handler, len(functions.All))
	for _, spec := range functions.All {
		handlers[spec.Name] = httpguard.Wrap(c.Functions[spec.Name], with(spec.Methods))
	}
	c.App = &platform.App{
		Functions:      handlers,
		OpenAPI:        openapi.Handler(),
		Timeout:        cfg.Timeout,
		Logger:         c.Logger,
		Nested:         functions.Nested(),
		PermanentCodes: functions.PermanentCodes(),
	}
	return c, nil
}

// requestor is the identity Defender records for this app's actions: the
// application ID, or the user's principal name for delegated tokens.
func requestor(ctx context.Context, ts *auth.TokenSource) (string, error) {
	t, err := ts.TokenContext(ctx)
	if err != nil {
		return "", err
	}
	cl, err := auth.ParseUnverified(t.AccessToken)
	if err != nil {
		// Entra issued something that is not a readable token: a token
		// failure (502 token_acquisition_failed), not an internal one.
		return "", fmt.Errorf("app: requestor: %w: %w", auth.ErrToken, err)
	}
	if cl.TokenType() == auth.TokenDelegated && cl.UPN != "" {
		return strings.ToLower(cl.UPN), nil
	}
	return cl.AppID, nil
}
