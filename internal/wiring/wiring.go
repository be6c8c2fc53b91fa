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

	"github.com/mdefn/mdefn/functions"
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

	// warm, set by Main with HTTPClient its client, opens the Entra and
	// Defender connections during the first secret read.
	warm *preconnector
}

// StepTimeout bounds each upstream fetch under ShortRetries.
const StepTimeout = 30 * time.Second

// shortRetry is the SDKs' retry policy under ShortRetries.
var shortRetry = auth.AzureRetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}

// Components are the built pieces, exposed for tests and the doctor.
type Components struct {
	Config *config.Config
	Logger *slog.Logger
	// Tenant is the default tenant's (MDE_TENANT_ID) components; nil when
	// only MDE_TENANTS is set. ForTenant and Tenants give every tenant's.
	*Tenant
	App *platform.App

	tenants map[string]*Tenant // by lower-case tenant ID
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
	if err := c.buildTenants(o); err != nil {
		return nil, err
	}

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
		var h http.Handler
		if cfg.MultiTenant() {
			h = c.route(spec.Name)
		} else {
			h = c.Functions[spec.Name]
		}
		handlers[spec.Name] = httpguard.Wrap(h, with(spec.Methods))
	}
	appLogger := c.Logger
	if !cfg.MultiTenant() {
		appLogger = c.Tenant.Logger // the one tenant
	}
	c.App = &platform.App{
		Functions:      handlers,
		OpenAPI:        openapi.Handler(),
		Timeout:        cfg.Timeout,
		Logger:         appLogger,
		MultiTenant:    cfg.MultiTenant(),
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
