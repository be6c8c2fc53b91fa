// Package config is mdefn's configuration: every MDE_* setting, its default,
// the validation and precedence rules of the contract, and the start
// warnings. Load reads it from the environment without I/O; the methods of
// Config turn it into the options of pkg/auth's constructors, so that the
// wiring stays short.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mdefn/mdefn/pkg/auth"
)

// Defaults of settings that have one.
const (
	DefaultSecretName = "mde-client-secret"
	DefaultSecretTTL  = 5 * time.Minute
	DefaultTimeout    = 30 * time.Second
	DefaultListenAddr = "127.0.0.1:7071"
)

// SourceNone is Config.CredentialSource when no stored credential is read
// (managed-identity mode).
const SourceNone auth.SourceKind = ""

// Config is mdefn's configuration, read from the environment by Load. The
// zero value is not useful. A Config is not modified after Load returns and
// is safe to share. Its String, GoString, Format and LogValue redact
// ClientSecret and WebhookSecret.
type Config struct {
	TenantID string // MDE_TENANT_ID; the default tenant ("" only when Tenants is set)
	// Tenants is MDE_TENANTS: the tenants requests may name (nil: the
	// deployment serves MDE_TENANT_ID only).
	Tenants  []Tenant
	ClientID string    // MDE_CLIENT_ID; in managed-identity mode the optional user-assigned identity
	Auth     auth.Mode // MDE_AUTH

	// CredentialSource is the source chosen by precedence among the three
	// below (SourceNone in managed-identity mode).
	CredentialSource auth.SourceKind
	KeyVaultURL      string // MDE_KEYVAULT_URL
	SecretName       string // MDE_SECRET_NAME
	AWSSecretID      string // MDE_AWS_SECRET_ID
	ClientSecret     string // MDE_CLIENT_SECRET (local development only)
	SecretTTL        time.Duration

	Cloud                auth.Cloud // MDE_CLOUD
	APIURL               string     // MDE_API_URL, or the cloud's default
	AuthorityURL         string     // MDE_AUTHORITY_URL, or the cloud's default
	TokenAudience        string     // MDE_TOKEN_AUDIENCE, or the cloud's default
	TokenEndpointVersion auth.TokenEndpointVersion

	// KeyVaultDisableChallengeVerification is for a local Key Vault emulator
	// only (MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION).
	KeyVaultDisableChallengeVerification bool

	WebhookSecretName string // MDE_WEBHOOK_SECRET_NAME: read from the same vault
	WebhookSecret     string // MDE_WEBHOOK_SECRET (local development only)

	ProtectedTags        []string // MDE_PROTECTED_TAGS, trimmed, empty items dropped
	IndicatorNeverBlock  string   // MDE_INDICATOR_NEVER_BLOCK, as set (the indicators function parses it)
	DryRun               bool     // MDE_DRY_RUN
	MaxIsolationsPerHour int      // MDE_MAX_ISOLATIONS_PER_HOUR; 0 = no cap
	LogLevel             slog.Level
	Timeout              time.Duration // MDE_TIMEOUT
	ListenAddr           string        // MDE_LISTEN_ADDR

	// Warnings are things the caller should log at start: a lower-precedence
	// credential source that is ignored, a plain-environment secret in use.
	Warnings []string
}

// Error reports a missing, malformed or contradictory setting. Its text is
// one line that names the setting, suitable for stderr before exiting. It
// never holds a secret's value.
type Error struct {
	Setting string // the environment variable, e.g. "MDE_CLOUD"
	Reason  string // what is wrong and what to do
}

// Error returns "<setting>: <reason>".
func (e *Error) Error() string {
	return e.Setting + ": " + e.Reason
}

// WebhookEnabled reports whether requests must carry a webhook signature.
func (c *Config) WebhookEnabled() bool {
	return c.WebhookSecretName != "" || c.WebhookSecret != ""
}

// Load reads and validates every MDE_* setting through getenv (usually
// os.Getenv). It does no I/O. The error, when not nil, is an *Error naming
// the first bad setting.
func Load(getenv func(string) string) (*Config, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	c := &Config{
		TenantID:          get("MDE_TENANT_ID"),
		ClientID:          get("MDE_CLIENT_ID"),
		KeyVaultURL:       get("MDE_KEYVAULT_URL"),
		SecretName:        get("MDE_SECRET_NAME"),
		AWSSecretID:       get("MDE_AWS_SECRET_ID"),
		ClientSecret:      getenv("MDE_CLIENT_SECRET"), // a secret is taken verbatim
		WebhookSecretName: get("MDE_WEBHOOK_SECRET_NAME"),
		WebhookSecret:     getenv("MDE_WEBHOOK_SECRET"),
		ListenAddr:        get("MDE_LISTEN_ADDR"),
	}
	var err error
	fail := func(setting, format string, args ...any) (*Config, error) {
		return nil, &Error{Setting: setting, Reason: fmt.Sprintf(format, args...)}
	}

	// Identity.
	c.Auth = auth.Mode(strings.ToLower(get("MDE_AUTH")))
	switch c.Auth {
	case "":
		c.Auth = auth.ModeClientSecret
	case auth.ModeClientSecret, auth.ModeClientCertificate, auth.ModePassword, auth.ModeManagedIdentity:
	default:
		return fail("MDE_AUTH", "unknown mode %q; use client-secret, client-certificate, password or managed-identity", c.Auth)
	}
	if v := get("MDE_TENANTS"); v != "" {
		if c.Tenants, err = parseTenants(v); err != nil {
			return fail("MDE_TENANTS", "%v", err)
		}
	}
	if c.TenantID == "" && !c.MultiTenant() {
		return fail("MDE_TENANT_ID", "required: the Entra tenant ID (GUID or domain)")
	}
	if c.TenantID != "" && !auth.ValidTenant(c.TenantID) {
		return fail("MDE_TENANT_ID", "%q is not a tenant GUID or domain", c.TenantID)
	}
	if c.ClientID == "" && c.Auth != auth.ModeManagedIdentity {
		return fail("MDE_CLIENT_ID", "required with MDE_AUTH=%s: the app registration (client) ID", c.Auth)
	}

	// Cloud and endpoints.
	c.Cloud = auth.Cloud(strings.ToLower(get("MDE_CLOUD")))
	if c.Cloud == "" {
		c.Cloud = auth.CloudPublic
	}
	ends, ok := c.Cloud.Endpoints()
	if !ok {
		return fail("MDE_CLOUD", "unknown cloud %q; use public, gcc, gcc-high or dod", c.Cloud)
	}
	c.APIURL, c.AuthorityURL, c.TokenAudience = ends.APIURL, ends.AuthorityURL, ends.TokenAudience
	if v := get("MDE_API_URL"); v != "" {
		if c.APIURL, err = baseURL(v, true); err != nil {
			return fail("MDE_API_URL", "%v", err)
		}
	}
	if v := get("MDE_AUTHORITY_URL"); v != "" {
		if c.AuthorityURL, err = baseURL(v, true); err != nil {
			return fail("MDE_AUTHORITY_URL", "%v", err)
		}
	}
	if v := get("MDE_TOKEN_AUDIENCE"); v != "" {
		c.TokenAudience = strings.TrimRight(v, "/")
	}
	switch v := auth.TokenEndpointVersion(strings.ToLower(get("MDE_TOKEN_ENDPOINT_VERSION"))); v {
	case "":
		c.TokenEndpointVersion = auth.TokenEndpointV2
	case auth.TokenEndpointV1, auth.TokenEndpointV2:
		c.TokenEndpointVersion = v
	default:
		return fail("MDE_TOKEN_ENDPOINT_VERSION", "unknown version %q; use v1 or v2", v)
	}

	// Credential source.
	if c.SecretName == "" {
		c.SecretName = DefaultSecretName
	}
	if c.KeyVaultURL != "" {
		if c.KeyVaultURL, err = baseURL(c.KeyVaultURL, false); err != nil {
			return fail("MDE_KEYVAULT_URL", "%v", err)
		}
		if !strings.Contains(c.SecretName, TenantPlaceholder) && !validVaultSecretName(c.SecretName) {
			return fail("MDE_SECRET_NAME", "%q is not a Key Vault secret name (1-127 letters, digits and dashes)", c.SecretName)
		}
	}
	if c.KeyVaultDisableChallengeVerification, err = parseBool(get("MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION")); err != nil {
		return fail("MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION", "%v", err)
	}
	if err := c.pickSource(); err != nil {
		return nil, err
	}
	if err := c.checkTenants(); err != nil {
		return nil, err
	}
	if c.SecretTTL, err = parseDuration(get("MDE_SECRET_TTL"), DefaultSecretTTL); err != nil {
		return fail("MDE_SECRET_TTL", "%v", err)
	}

	// Webhook.
	if c.WebhookSecretName != "" {
		if c.KeyVaultURL == "" && c.AWSSecretID == "" {
			return fail("MDE_WEBHOOK_SECRET_NAME", "needs MDE_KEYVAULT_URL or MDE_AWS_SECRET_ID to read it from; use MDE_WEBHOOK_SECRET for local development")
		}
		if c.KeyVaultURL != "" && !validVaultSecretName(c.WebhookSecretName) {
			return fail("MDE_WEBHOOK_SECRET_NAME", "%q is not a Key Vault secret name (1-127 letters, digits and dashes)", c.WebhookSecretName)
		}
		if c.WebhookSecret != "" {
			c.Warnings = append(c.Warnings, "MDE_WEBHOOK_SECRET is ignored: MDE_WEBHOOK_SECRET_NAME takes precedence")
			c.WebhookSecret = ""
		}
	} else if c.WebhookSecret != "" {
		c.Warnings = append(c.Warnings, "MDE_WEBHOOK_SECRET holds the webhook secret in plain environment: use it for local development only")
	}

	// Behaviour.
	for _, t := range strings.Split(get("MDE_PROTECTED_TAGS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.ProtectedTags = append(c.ProtectedTags, t)
		}
	}
	c.IndicatorNeverBlock = get("MDE_INDICATOR_NEVER_BLOCK")
	if c.DryRun, err = parseBool(get("MDE_DRY_RUN")); err != nil {
		return fail("MDE_DRY_RUN", "%v", err)
	}
	if v := get("MDE_MAX_ISOLATIONS_PER_HOUR"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fail("MDE_MAX_ISOLATIONS_PER_HOUR", "%q is not a whole number ≥ 0 (0 = no cap)", v)
		}
		c.MaxIsolationsPerHour = n
	}
	switch v := strings.ToLower(get("MDE_LOG_LEVEL")); v {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "", "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return fail("MDE_LOG_LEVEL", "unknown level %q; use debug, info, warn or error", v)
	}
	if c.Timeout, err = parseDuration(get("MDE_TIMEOUT"), DefaultTimeout); err != nil {
		return fail("MDE_TIMEOUT", "%v", err)
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	} else if _, port, err := net.SplitHostPort(c.ListenAddr); err != nil || port == "" {
		return fail("MDE_LISTEN_ADDR", "%q is not host:port, e.g. 127.0.0.1:7071", c.ListenAddr)
	}
	return c, nil
}

// pickSource applies the credential source precedence and checks that the
// mode has what it needs.
func (c *Config) pickSource() error {
	switch {
	case c.KeyVaultURL != "":
		c.CredentialSource = auth.SourceKeyVault
	case c.AWSSecretID != "":
		c.CredentialSource = auth.SourceAWSSecretsManager
	case c.ClientSecret != "":
		c.CredentialSource = auth.SourceEnvironment
	}
	if c.Auth == auth.ModeManagedIdentity {
		// The identity needs no stored credential; a vault may still hold the
		// webhook secret.
		if c.ClientSecret != "" {
			c.Warnings = append(c.Warnings, "MDE_CLIENT_SECRET is ignored: MDE_AUTH=managed-identity uses no stored credential")
		}
		if c.AWSSecretID != "" && c.WebhookSecretName == "" {
			c.Warnings = append(c.Warnings, "MDE_AWS_SECRET_ID is ignored: MDE_AUTH=managed-identity uses no stored credential")
		}
		c.CredentialSource = SourceNone
		return nil
	}
	if c.CredentialSource == SourceNone {
		need := map[auth.Mode]string{
			auth.ModeClientSecret:      "the client secret",
			auth.ModeClientCertificate: "the certificate and its private key (PEM)",
			auth.ModePassword:          `the user's credentials (JSON with "username" and "password")`,
		}[c.Auth]
		return &Error{Setting: "MDE_AUTH", Reason: fmt.Sprintf("%s needs a credential source holding %s: set MDE_KEYVAULT_URL, MDE_AWS_SECRET_ID or MDE_CLIENT_SECRET", c.Auth, need)}
	}
	ignored := func(name, winner string) {
		c.Warnings = append(c.Warnings, name+" is ignored: "+winner+" takes precedence")
	}
	switch c.CredentialSource {
	case auth.SourceKeyVault:
		if c.AWSSecretID != "" {
			ignored("MDE_AWS_SECRET_ID", "MDE_KEYVAULT_URL")
		}
		if c.ClientSecret != "" {
			ignored("MDE_CLIENT_SECRET", "MDE_KEYVAULT_URL")
		}
	case auth.SourceAWSSecretsManager:
		if c.ClientSecret != "" {
			ignored("MDE_CLIENT_SECRET", "MDE_AWS_SECRET_ID")
		}
	case auth.SourceEnvironment:
		c.Warnings = append(c.Warnings, "MDE_CLIENT_SECRET holds the credential in plain environment: use it for local development only")
		// The value is here, so its format can be checked now rather than at
		// the first request.
		if _, err := auth.ParseCredential(c.ClientSecret, c.Auth); err != nil {
			return &Error{Setting: "MDE_CLIENT_SECRET", Reason: strings.TrimPrefix(err.Error(), "auth: ")}
		}
	}
	return nil
}

// baseURL checks that s is an absolute https URL (http allowed on loopback
// when allowLoopbackHTTP) and returns it without a trailing slash.
func baseURL(s string, allowLoopbackHTTP bool) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an absolute URL like https://host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must not carry user info, a query or a fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if !allowLoopbackHTTP || !(h == "localhost" || net.ParseIP(h).IsLoopback()) {
			return "", fmt.Errorf("%q must use https (http is allowed only for localhost)", s)
		}
	default:
		return "", fmt.Errorf("%q must use https", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func parseBool(s string) (bool, error) {
	switch s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive Go duration such as 30s or 5m", s)
	}
	return d, nil
}

func validVaultSecretName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// String describes c with its secrets redacted.
func (c Config) String() string {
	c.redact()
	type plain Config // drops the methods, so no recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String, so %#v redacts too.
func (c Config) GoString() string { return c.String() }

// Format makes every fmt verb print the redacted String.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue logs the settings that are not secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("tenantId", c.TenantID),
		slog.Int("tenants", len(c.Tenants)),
		slog.String("clientId", c.ClientID),
		slog.String("auth", string(c.Auth)),
		slog.String("credentialSource", string(c.CredentialSource)),
		slog.String("cloud", string(c.Cloud)),
		slog.String("apiUrl", c.APIURL),
		slog.String("authorityUrl", c.AuthorityURL),
		slog.String("audience", c.TokenAudience),
		slog.Bool("dryRun", c.DryRun),
		slog.Bool("webhook", c.WebhookEnabled()),
	)
}

func (c *Config) redact() {
	if c.ClientSecret != "" {
		c.ClientSecret = "[REDACTED]"
	}
	if c.WebhookSecret != "" {
		c.WebhookSecret = "[REDACTED]"
	}
}
