package auth_test

// Integration tests: the real SDK clients (azsecrets and azidentity,
// aws-sdk-go-v2 Secrets Manager, x/oauth2) against the simulator over TLS.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mdefn/mdefn/pkg/auth"
	"github.com/mdefn/mdefn/sim"
)

var noRetry = policy.RetryOptions{MaxRetries: -1}

// startSim starts a simulator and points the process environment at it
// (azidentity and the AWS SDK read their settings from there).
func startSim(t *testing.T) *sim.Sim {
	t.Helper()
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for k, v := range s.Env(nil) {
		if !strings.HasPrefix(k, "MDE_") {
			t.Setenv(k, v)
		}
	}
	// Keep developer logins on this machine out of the credential chain.
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "AWS_PROFILE"} {
		t.Setenv(k, "") // restores the value after the test
		os.Unsetenv(k)
	}
	return s
}

// simSetup says how a test signs in to the simulator. The zero value is
// the default app's client secret, read from the simulated Key Vault.
type simSetup struct {
	mode       auth.Mode // default ModeClientSecret
	clientID   string    // default sim.DefaultClientID; in managed-identity mode the user-assigned identity
	secretName string    // Key Vault secret; default sim.DefaultSecretName
	awsID      string    // when set, the credential is read from Secrets Manager instead
	version    auth.TokenEndpointVersion
}

func (ss simSetup) withDefaults() simSetup {
	if ss.mode == "" {
		ss.mode = auth.ModeClientSecret
	}
	if ss.clientID == "" && ss.mode != auth.ModeManagedIdentity {
		ss.clientID = sim.DefaultClientID
	}
	if ss.secretName == "" {
		ss.secretName = sim.DefaultSecretName
	}
	return ss
}

// source returns the setup's secret source (nil in managed-identity mode),
// with the SDKs' retries off so that the "down" paths answer at once.
func (ss simSetup) source(t *testing.T, s *sim.Sim) auth.SecretSource {
	t.Helper()
	ss = ss.withDefaults()
	switch {
	case ss.mode == auth.ModeManagedIdentity:
		return nil
	case ss.awsID != "":
		// The endpoint comes from AWS_ENDPOINT_URL_SECRETS_MANAGER.
		src, err := auth.NewAWSSecretSource(context.Background(), ss.awsID, s.HTTPClient(), config.WithRetryMaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	return fastSource(t, s, ss.secretName)
}

// tokens returns a store over src (nil when src is) and a token source
// for the setup. so and to may be nil.
func (ss simSetup) tokens(t *testing.T, s *sim.Sim, src auth.SecretSource, so *auth.StoreOptions, to *auth.TokenOptions) (*auth.TokenSource, *auth.CredentialStore) {
	t.Helper()
	ss = ss.withDefaults()
	var store *auth.CredentialStore
	if src != nil {
		store = auth.NewCredentialStore(src, ss.mode, so)
	}
	opts := &auth.TokenOptions{}
	if to != nil {
		*opts = *to
	}
	opts.AuthorityURL, opts.Audience, opts.EndpointVersion = s.AuthorityURL(), s.Audience(), ss.version
	ts, err := auth.NewTokenSource(ss.mode, s.TenantID(), ss.clientID, store, s.HTTPClient(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return ts, store
}

// newSimVerifier is a verifier of the simulator's tenant (tenant: its ID or
// domain), closed at the end of the test.
func newSimVerifier(t testing.TB, s *sim.Sim, tenant string) *auth.Verifier {
	v := auth.NewVerifier(s.AuthorityURL(), tenant, s.Audience(), s.HTTPClient(), nil)
	t.Cleanup(v.Close)
	return v
}

// fastSource reads Key Vault secret name with the vault's retries off.
func fastSource(t *testing.T, s *sim.Sim, name string) *auth.KeyVaultSource {
	t.Helper()
	src, err := auth.NewKeyVaultSource(s.VaultURL(), name, s.HTTPClient(), &auth.KeyVaultOptions{
		DisableChallengeResourceVerification: true, Retry: noRetry,
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// logBuffer is a concurrency-safe slog sink.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestSimKeyVaultClientSecretEndToEnd(t *testing.T) {
	s := startSim(t)
	// The production chain: DefaultAzureCredential reads the vault with the
	// simulated managed identity.
	src, err := auth.NewKeyVaultSource(s.VaultURL(), sim.DefaultSecretName, s.HTTPClient(), &auth.KeyVaultOptions{DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Name(); got != "keyvault:"+sim.DefaultSecretName {
		t.Errorf("NewKeyVaultSource().Name() = %q, want keyvault:%s", got, sim.DefaultSecretName)
	}
	store := auth.NewCredentialStore(src, auth.ModeClientSecret, nil)
	ts, err := auth.NewTokenSource(auth.ModeClientSecret, s.TenantID(), sim.DefaultClientID, store, s.HTTPClient(), &auth.TokenOptions{
		AuthorityURL: s.AuthorityURL(), Audience: s.Audience(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.TokenContext(context.Background())
	if err != nil {
		t.Fatalf("TokenContext() error %v", err)
	}
	v := newSimVerifier(t, s, s.TenantID())
	claims, problems, err := v.Verify(context.Background(), tok.AccessToken)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Verify(sim token) = %v, %v; want valid", problems, err)
	}
	if claims.TokenType() != auth.TokenApplication || claims.AppID != sim.DefaultClientID || claims.TenantID != s.TenantID() {
		t.Errorf("Verify(sim token) claims = %+v, want an application token of the default app", claims)
	}
	needs := auth.Needs{App: []auth.AnyOf{{"Alert.Read.All", "Alert.ReadWrite.All"}, {"Machine.Isolate"}, {"Machine.Read.All", "Machine.ReadWrite.All"}}}
	if a := claims.Check(needs); !a.Allowed {
		t.Errorf("Check(%+v) = %+v, want allowed", needs, a)
	}
}

func TestSimTokenSources(t *testing.T) {
	s := startSim(t)
	certKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, cert := selfSigned(t, certKey)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(certKey)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	certApp := s.AddApp(sim.App{DisplayName: "cert app", Certificate: cert, Roles: []string{"Machine.Isolate"}})
	uami := s.AddManagedIdentity(sim.ManagedIdentity{Roles: []string{"Alert.Read.All"}})
	s.SetSecret("cert-secret", certPEM+keyPEM)
	s.SetSecret("user-secret", `{"username":"`+sim.DefaultUserUPN+`","password":"`+sim.DefaultUserPassword+`"}`)
	s.SetSecret("confidential-user-secret", `{"username":"`+sim.DefaultUserUPN+`","password":"`+sim.DefaultUserPassword+`","clientSecret":"`+sim.DefaultClientSecret+`"}`)

	tests := []struct {
		name      string
		setup     simSetup
		env       string // when set, the credential is served from memory instead
		wantType  auth.TokenType
		wantApp   string
		wantRoles []string
		wantScp   []string
	}{
		{"client-secret v2", simSetup{}, "", auth.TokenApplication, sim.DefaultClientID, sim.ApplicationRoles(), nil},
		{"client-secret v1", simSetup{version: auth.TokenEndpointV1}, "", auth.TokenApplication, sim.DefaultClientID, sim.ApplicationRoles(), nil},
		{"client-secret from AWS", simSetup{awsID: sim.DefaultAWSSecretID}, "",
			auth.TokenApplication, sim.DefaultClientID, sim.ApplicationRoles(), nil},
		{"client-secret from environment", simSetup{}, sim.DefaultClientSecret,
			auth.TokenApplication, sim.DefaultClientID, sim.ApplicationRoles(), nil},
		{"client-certificate", simSetup{mode: auth.ModeClientCertificate, clientID: certApp.ClientID, secretName: "cert-secret"}, "",
			auth.TokenApplication, certApp.ClientID, []string{"Machine.Isolate"}, nil},
		{"password public client", simSetup{mode: auth.ModePassword, clientID: sim.DefaultPublicClientID, secretName: "user-secret"}, "",
			auth.TokenDelegated, sim.DefaultPublicClientID, nil, sim.DelegatedScopes()},
		{"password confidential client", simSetup{mode: auth.ModePassword, secretName: "confidential-user-secret"}, "",
			auth.TokenDelegated, sim.DefaultClientID, nil, sim.DelegatedScopes()},
		{"managed identity", simSetup{mode: auth.ModeManagedIdentity}, "",
			auth.TokenApplication, sim.DefaultManagedIdentityClientID, sim.ApplicationRoles(), nil},
		{"user-assigned managed identity", simSetup{mode: auth.ModeManagedIdentity, clientID: uami.ClientID}, "",
			auth.TokenApplication, uami.ClientID, []string{"Alert.Read.All"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.setup.source(t, s)
			if tt.env != "" {
				src = auth.NewEnvSecretSource("secret", tt.env)
			}
			ts, _ := tt.setup.tokens(t, s, src, nil, nil)
			tok, err := ts.TokenContext(context.Background())
			if err != nil {
				t.Fatalf("TokenContext() error %v", err)
			}
			v := newSimVerifier(t, s, s.TenantID())
			c, problems, err := v.Verify(context.Background(), tok.AccessToken)
			if err != nil || len(problems) != 0 {
				t.Fatalf("Verify() = %v, %v; want valid", problems, err)
			}
			if c.TokenType() != tt.wantType || c.AppID != tt.wantApp {
				t.Errorf("token type, app = %v, %v; want %v, %v", c.TokenType(), c.AppID, tt.wantType, tt.wantApp)
			}
			sorted := cmpopts.SortSlices(func(a, b string) bool { return a < b })
			if diff := cmp.Diff(tt.wantRoles, c.Roles, sorted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("roles mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantScp, c.Scopes, sorted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("scopes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSimEntraErrors(t *testing.T) {
	s := startSim(t)
	s.SetSecret("wrong-secret", "CANARY-wrong-secret")
	s.SetSecret("wrong-password", `{"username":"`+sim.DefaultUserUPN+`","password":"CANARY-wrong-password"}`)
	tests := []struct {
		name   string
		setup  simSetup
		code   string
		aadsts int
	}{
		{"wrong secret", simSetup{secretName: "wrong-secret"}, "invalid_client", 7000215},
		{"unknown app", simSetup{clientID: "00000000-0000-0000-0000-000000000001"}, "unauthorized_client", 700016},
		{"wrong password", simSetup{mode: auth.ModePassword, clientID: sim.DefaultPublicClientID, secretName: "wrong-password"}, "invalid_grant", 50126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			logger := slog.New(slog.NewJSONHandler(&logs, nil))
			ts, _ := tt.setup.tokens(t, s, tt.setup.source(t, s), &auth.StoreOptions{Logger: logger}, &auth.TokenOptions{Logger: logger})
			_, err := ts.TokenContext(context.Background())
			var ee *auth.EntraError
			if !errors.As(err, &ee) {
				t.Fatalf("TokenContext() error = %v, want *EntraError", err)
			}
			if ee.Code != tt.code || ee.AADSTS() != tt.aadsts || !strings.Contains(ee.Description, "AADSTS") || ee.CorrelationID == "" {
				t.Errorf("TokenContext() error = %+v, want %s AADSTS%d with description and correlation ID", ee, tt.code, tt.aadsts)
			}
			if strings.Contains(err.Error(), "CANARY") || strings.Contains(logs.String(), "CANARY") {
				t.Errorf("error %q or logs %q leak the credential", err, logs.String())
			}
		})
	}
}

func TestSimKeyVaultErrors(t *testing.T) {
	s := startSim(t)
	newSource := func(name string) *auth.KeyVaultSource { return fastSource(t, s, name) }
	if got, err := newSource(sim.DefaultSecretName).Secret(context.Background()); err != nil || got != sim.DefaultClientSecret {
		t.Fatalf("Secret() = %q, %v; want the default secret", got, err)
	}
	tests := []struct {
		name   string
		secret string
		setup  func() func()
		status int
		code   string
	}{
		{"not found", "no-such-secret", func() func() { return func() {} }, 404, "SecretNotFound"},
		{"forbidden", sim.DefaultSecretName, func() func() {
			s.SetVaultAccess(sim.DefaultManagedIdentityClientID, false)
			return func() { s.SetVaultAccess(sim.DefaultManagedIdentityClientID, true) }
		}, 403, "Forbidden"},
		{"throttled", sim.DefaultSecretName, func() func() {
			h := s.Inject(sim.KeyVault, sim.VaultError(429, "Throttled", "Request was not processed because too many requests were received."))
			return h.Remove
		}, 429, "Throttled"},
		{"unavailable", sim.DefaultSecretName, func() func() {
			h := s.Inject(sim.KeyVault, sim.VaultError(503, "ServiceUnavailable", "The service is unavailable."))
			return h.Remove
		}, 503, "ServiceUnavailable"},
		{"down", sim.DefaultSecretName, func() func() {
			s.Down(sim.KeyVault)
			return func() { s.Up(sim.KeyVault) }
		}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			undo := tt.setup()
			defer undo()
			_, err := newSource(tt.secret).Secret(context.Background())
			var se *auth.SecretError
			if !errors.As(err, &se) {
				t.Fatalf("Secret() error = %v, want *SecretError", err)
			}
			if se.Source != "keyvault" || se.Name != tt.secret || se.StatusCode != tt.status || se.Code != tt.code {
				t.Errorf("Secret() error = {%s %s %d %s}, want {keyvault %s %d %s} (%v)", se.Source, se.Name, se.StatusCode, se.Code, tt.secret, tt.status, tt.code, err)
			}
			if strings.Contains(err.Error(), sim.DefaultClientSecret) {
				t.Errorf("Secret() error %q holds the secret", err)
			}
		})
	}
}

func TestSimAWSSecretsManager(t *testing.T) {
	s := startSim(t)
	s.SetAWSSecretBinary("binary", []byte("bin-value"))
	newSource := func(id string) *auth.AWSSecretSource {
		// The endpoint comes from AWS_ENDPOINT_URL_SECRETS_MANAGER.
		src, err := auth.NewAWSSecretSource(context.Background(), id, s.HTTPClient(), config.WithRetryMaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	for id, want := range map[string]string{sim.DefaultAWSSecretID: sim.DefaultClientSecret, "binary": "bin-value"} {
		if got, err := newSource(id).Secret(context.Background()); err != nil || got != want {
			t.Errorf("Secret(%s) = %q, %v; want %q", id, got, err, want)
		}
	}
	// Rotation: the new AWSCURRENT version is what a read returns.
	s.SetAWSSecret(sim.DefaultAWSSecretID, "rotated")
	if got, _ := newSource(sim.DefaultAWSSecretID).Secret(context.Background()); got != "rotated" {
		t.Errorf("Secret() after rotation = %q, want rotated", got)
	}
	tests := []struct {
		name   string
		id     string
		setup  func() func()
		status int
		code   string
	}{
		{"not found", "no/such", func() func() { return func() {} }, 400, "ResourceNotFoundException"},
		{"access denied", sim.DefaultAWSSecretID, func() func() {
			s.SetAWSAccess(sim.DefaultAWSAccessKeyID, false)
			return func() { s.SetAWSAccess(sim.DefaultAWSAccessKeyID, true) }
		}, 400, "AccessDeniedException"},
		{"internal error", sim.DefaultAWSSecretID, func() func() {
			h := s.Inject(sim.SecretsManager, sim.Fault{Status: 500, Header: map[string][]string{"Content-Type": {"application/x-amz-json-1.1"}},
				Body: []byte(`{"__type":"InternalServiceError","message":"An error occurred on the server side."}`)})
			return h.Remove
		}, 500, "InternalServiceError"},
		{"down", sim.DefaultAWSSecretID, func() func() {
			s.Down(sim.SecretsManager)
			return func() { s.Up(sim.SecretsManager) }
		}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			undo := tt.setup()
			defer undo()
			_, err := newSource(tt.id).Secret(context.Background())
			var se *auth.SecretError
			if !errors.As(err, &se) {
				t.Fatalf("Secret() error = %v, want *SecretError", err)
			}
			if se.Source != "aws-secrets-manager" || se.Name != tt.id || se.StatusCode != tt.status || se.Code != tt.code {
				t.Errorf("Secret() error = {%s %s %d %s}, want {aws-secrets-manager %s %d %s} (%v)", se.Source, se.Name, se.StatusCode, se.Code, tt.id, tt.status, tt.code, err)
			}
		})
	}
}

func TestSimWebhookSecret(t *testing.T) {
	s := startSim(t)
	s.SetSecret("hook-secret", "hook-v1")
	clk := &clock{t: time.Now()}
	cached := auth.NewCachedSecret(fastSource(t, s, "hook-secret"), &auth.StoreOptions{Now: clk.Now})
	if got, err := cached.Secret(context.Background()); err != nil || got != "hook-v1" {
		t.Errorf("webhook Secret() = %q, %v; want hook-v1", got, err)
	}
	s.SetSecret("hook-secret", "hook-v2")
	if got, _ := cached.Secret(context.Background()); got != "hook-v1" {
		t.Errorf("webhook Secret() within the TTL = %q, want hook-v1 (cached)", got)
	}
	clk.Advance(auth.DefaultTTL)
	if got, _ := cached.Secret(context.Background()); got != "hook-v2" {
		t.Errorf("webhook Secret() after the TTL = %q, want hook-v2", got)
	}
	if got := cached.Name(); got != "keyvault:hook-secret" {
		t.Errorf("Name() = %q, want keyvault:hook-secret", got)
	}
}

func TestSimColdStartConcurrency(t *testing.T) {
	s := startSim(t)
	ts, store := simSetup{}.tokens(t, s, simSetup{}.source(t, s), nil, nil)
	s.ResetStats()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.TokenContext(context.Background()); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 200 TokenContext() calls failed", n)
	}
	if got := s.TokenRequests(sim.DefaultClientID); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
	if got := s.VaultReads(); got != 1 {
		t.Errorf("vault reads = %d, want 1", got)
	}
	if st := store.Stats(); st.Reads != 1 {
		t.Errorf("store reads = %d, want 1", st.Reads)
	}
}

// clock is an injectable clock for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestSimRotationAndGrace(t *testing.T) {
	s := startSim(t)
	clk := &clock{t: time.Now()}
	var logs logBuffer
	ts, store := simSetup{}.tokens(t, s, fastSource(t, s, sim.DefaultSecretName),
		&auth.StoreOptions{Now: clk.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, nil)
	ctx := context.Background()
	if _, err := ts.TokenContext(ctx); err != nil {
		t.Fatal(err)
	}

	// The secret is rotated in Entra and the vault.
	const rotated = "sim~Rotated~secret-000000000000000000"
	s.AddApp(sim.App{ClientID: sim.DefaultClientID, Secret: rotated, Roles: sim.ApplicationRoles(), VaultAccess: true})
	s.SetSecret(sim.DefaultSecretName, rotated)
	clk.Advance(auth.DefaultTTL + time.Second)
	ts.Invalidate()
	if _, err := ts.TokenContext(ctx); err != nil {
		t.Fatalf("TokenContext() after rotation error %v", err)
	}
	if c, _ := store.Credential(ctx); c.ClientSecret != rotated {
		t.Errorf("Credential() after TTL did not pick up the new version")
	}

	// The vault goes down: the last good secret serves through the grace
	// period, then the SecretError surfaces.
	s.Down(sim.KeyVault)
	defer s.Up(sim.KeyVault)
	clk.Advance(auth.DefaultTTL + time.Second)
	if c, err := store.Credential(ctx); err != nil || c.ClientSecret != rotated {
		t.Errorf("Credential() in grace = %v, %v; want the last good value", c, err)
	}
	if !strings.Contains(logs.String(), "serving the last good value") {
		t.Errorf("logs = %s, want a grace warning", logs.String())
	}
	clk.Advance(auth.DefaultGrace)
	var se *auth.SecretError
	if _, err := store.Credential(ctx); !errors.As(err, &se) || se.StatusCode != 0 {
		t.Errorf("Credential() past grace error = %v, want *SecretError (vault unreachable)", err)
	}
	if strings.Contains(logs.String(), rotated) {
		t.Errorf("logs hold the secret: %s", logs.String())
	}
}

func TestSimVerifyForgedTokens(t *testing.T) {
	s := startSim(t)
	v := newSimVerifier(t, s, s.TenantID())
	now := s.Now()
	tests := []struct {
		name string
		spec sim.TokenSpec
		want []string
	}{
		{"good", sim.TokenSpec{Roles: []string{"Alert.Read.All"}}, nil},
		{"unpublished key", sim.TokenSpec{Unpublished: true}, []string{"signature"}},
		{"unknown kid", sim.TokenSpec{KeyID: "no-such-kid"}, []string{"signature"}},
		{"expired", sim.TokenSpec{IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}, []string{"expired"}},
		{"not yet valid", sim.TokenSpec{NotBefore: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}, []string{"not yet valid"}},
		{"wrong audience", sim.TokenSpec{Audience: sim.VaultAudience}, []string{"audience"}},
		{"wrong issuer", sim.TokenSpec{Issuer: "https://sts.windows.net/evil/"}, []string{"issuer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems, err := v.Verify(context.Background(), s.IssueToken(tt.spec))
			if err != nil {
				t.Fatalf("Verify() error %v", err)
			}
			if diff := cmp.Diff(tt.want, problems, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Verify(%s) problems mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
	// The tenant rotates its signing key: new tokens verify after a refetch.
	if err := s.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	v = newSimVerifier(t, s, s.TenantDomain())
	if _, problems, err := v.Verify(context.Background(), s.IssueToken(sim.TokenSpec{})); err != nil || len(problems) != 0 {
		t.Errorf("Verify() after rotation, domain tenant = %v, %v; want valid", problems, err)
	}
}

// TestSimLeakCanary drives the failure paths with canary credentials and
// checks that no error text and no log line carries them.
func TestSimLeakCanary(t *testing.T) {
	s := startSim(t)
	canaryKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := selfSigned(t, canaryKey)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(canaryKey)}))
	keyBody := strings.Split(keyPEM, "\n")[3] // a line of the key's base64
	const secret, password = "CANARY-client-secret-0001", "CANARY-password-0002"
	s.SetSecret("canary-secret", secret)
	s.SetSecret("canary-user", `{"username":"`+sim.DefaultUserUPN+`","password":"`+password+`","clientSecret":"`+secret+`"}`)
	s.SetSecret("canary-cert", certPEM+keyPEM)      // not the app's certificate: Entra rejects it
	s.SetSecret("canary-broken", "{"+secret+keyPEM) // malformed JSON holding both

	var logs logBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []string
	for _, o := range []simSetup{
		{secretName: "canary-secret"},
		{secretName: "canary-user", mode: auth.ModePassword},
		{secretName: "canary-cert", mode: auth.ModeClientCertificate},
		{secretName: "canary-broken"},
		{secretName: "canary-broken", mode: auth.ModeClientCertificate},
	} {
		clk := &clock{t: time.Now()}
		ts, store := o.tokens(t, s, o.source(t, s), &auth.StoreOptions{Logger: logger, Now: clk.Now}, &auth.TokenOptions{Logger: logger})
		_, err := ts.TokenContext(context.Background())
		if err == nil {
			t.Errorf("TokenContext(%v) succeeded with canary credentials", o)
			continue
		}
		errs = append(errs, err.Error(), fmtAll(err))
		if c, err := store.Credential(context.Background()); err == nil {
			logger.Info("credential", "credential", c)
			errs = append(errs, fmtAll(c))
		}
		// Grace path: the vault goes down after a good read.
		clk.Advance(auth.DefaultTTL + time.Second)
		s.Down(sim.KeyVault)
		store.Credential(context.Background())
		s.Up(sim.KeyVault)
	}
	all := strings.Join(errs, "\n") + logs.String()
	for _, c := range []string{secret, password, keyBody, "PRIVATE KEY"} {
		if strings.Contains(all, c) {
			t.Errorf("a canary (%.12s…) appears in errors or logs:\n%s", c, all)
		}
	}
}

func fmtAll(v any) string {
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		b.WriteString(sprintf(verb, v))
	}
	return b.String()
}

func selfSigned(t *testing.T, key *rsa.PrivateKey) (string, *x509.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mdefn test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), cert
}
