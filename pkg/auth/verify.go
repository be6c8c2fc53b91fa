package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// The problems Verify reports.
const (
	ProblemMalformed   = "malformed"
	ProblemSignature   = "signature"
	ProblemExpired     = "expired"
	ProblemNotYetValid = "not yet valid"
	ProblemIssuer      = "issuer"
	ProblemAudience    = "audience"
)

// Verifier defaults.
const (
	DefaultLeeway = 2 * time.Minute
	// DefaultKeysRefresh is how often a Verifier fetches the key set again
	// in the background (Entra asks relying parties to check daily).
	DefaultKeysRefresh = 24 * time.Hour
	// DefaultUnknownKeyRefresh is the least time between two fetches of the
	// key set that tokens naming an unknown key trigger.
	DefaultUnknownKeyRefresh = time.Minute
	// unknownKeyWaitMax bounds how long a Verify waits for its turn to
	// fetch the key set for an unknown key (and that fetch itself);
	// when its turn is further away it reports ProblemSignature at once.
	unknownKeyWaitMax = 10 * time.Second
	// maxKeysBody bounds the JWKS and OpenID configuration bodies.
	maxKeysBody = 1 << 20
)

// DefenderAppID is the application ID of WindowsDefenderATP, a form the
// Defender API's audience can take.
const DefenderAppID = "fc780465-2017-40d4-a0c5-307022471b92"

// defenderAppIDURI is WindowsDefenderATP's application ID URI.
const defenderAppIDURI = "https://securitycenter.onmicrosoft.com/windowsatpservice"

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// VerifierOptions tune NewVerifier. A nil *VerifierOptions, and every zero
// field, means the documented default.
type VerifierOptions struct {
	Leeway time.Duration // clock skew allowed on exp and nbf; default 2m
	// Now is the clock exp and nbf are checked against; default time.Now.
	// The key set's refresh timing always follows the real clock.
	Now       func() time.Time
	JWKSURL   string       // default <authority>/<tenant>/discovery/v2.0/keys
	Audiences []string     // accepted besides the audience, its "/" form, the Defender app ID and app ID URI
	Logger    *slog.Logger // receives the key set refresh failures; default slog.Default()
	// KeysRefresh is how often the key set is fetched again in the
	// background; default 24h.
	KeysRefresh time.Duration
	// UnknownKeyRefresh is the least time between two fetches of the key
	// set triggered by tokens naming a key it does not hold (rotation);
	// default 1m. A Verify waits at most 10s for its turn, else reports
	// ProblemSignature.
	UnknownKeyRefresh time.Duration
	// FetchTimeout bounds the first fetch of the key set, each background
	// refresh and the OpenID configuration read; default 30s.
	FetchTimeout time.Duration
}

// Verifier checks Entra access tokens for the Defender API: RS256 signature
// against the tenant's published keys, issuer, audience and lifetime.
//
// The key set is keyfunc's and jwkset's: fetched at the first Verify,
// refreshed in the background every KeysRefresh, and fetched again, at most
// once per UnknownKeyRefresh, when a token names a key it does not hold
// (rotation). A failed refresh keeps the keys it has. Unlike the secret and
// token caches of this package, the key set is not one value with a
// lifetime: it is looked up by key ID, and jwkset owns its refresh and its
// rate limit. Safe for concurrent use; build one per process.
type Verifier struct {
	authority string
	tenant    string
	jwksURL   string
	audiences map[string]bool
	leeway    time.Duration
	now       func() time.Time
	http      *http.Client
	log       *slog.Logger

	guid      string                  // the tenant GUID issuers name, when tenant is one
	tenantIDs *cache[string]          // else read once from the OpenID configuration
	keys      *cache[keyfunc.Keyfunc] // built once, at the first Verify
	stop      context.CancelFunc      // ends the background refresh
}

// NewVerifier returns a verifier for tokens of tenantID (a GUID, or a
// domain resolved through the OpenID configuration at the first Verify)
// issued for audience. httpClient nil means http.DefaultClient. No I/O
// happens here; the first Verify starts the key set's background refresh,
// which Close stops.
func NewVerifier(authorityURL, tenantID, audience string, httpClient *http.Client, opts *VerifierOptions) *Verifier {
	if opts == nil {
		opts = &VerifierOptions{}
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	authorityURL = strings.TrimRight(authorityURL, "/")
	v := &Verifier{
		authority: authorityURL,
		tenant:    tenantID,
		jwksURL:   opts.JWKSURL,
		leeway:    positive(opts.Leeway, DefaultLeeway),
		now:       orNow(opts.Now),
		http:      boundedClient(httpClient, maxKeysBody),
		log:       orDefaultLogger(opts.Logger),
		audiences: map[string]bool{},
	}
	if v.jwksURL == "" {
		v.jwksURL = authorityURL + "/" + tenantID + "/discovery/v2.0/keys"
	}
	if guidRE.MatchString(tenantID) {
		v.guid = strings.ToLower(tenantID)
	}
	a := strings.TrimRight(audience, "/")
	for _, s := range append([]string{a, a + "/", DefenderAppID, defenderAppIDURI}, opts.Audiences...) {
		v.audiences[s] = true
	}

	// The background refresh outlives every request: its context is the
	// Verifier's own, ended by Close.
	life, stop := context.WithCancel(context.Background())
	v.stop = stop
	timeout := positive(opts.FetchTimeout, defaultFetchTimeout)
	refresh := positive(opts.KeysRefresh, DefaultKeysRefresh)
	unknown := positive(opts.UnknownKeyRefresh, DefaultUnknownKeyRefresh)
	v.keys = &cache[keyfunc.Keyfunc]{
		name:    "the signing keys",
		fetch:   func(context.Context) (keyfunc.Keyfunc, error) { return v.newKeySet(life, timeout, refresh, unknown) },
		timeout: timeout,
		now:     v.now,
		log:     v.log,
	}
	v.tenantIDs = &cache[string]{
		name:    "the openid configuration",
		fetch:   v.readTenantID,
		timeout: timeout,
		now:     v.now,
		log:     v.log,
	}
	return v
}

// Close stops the key set's background refresh. A Verifier that lives as
// long as the process need not be closed. Verify still works after Close,
// with the keys already fetched and their unknown-key refresh.
func (v *Verifier) Close() { v.stop() }

// Verify checks token and returns its claims, the list of every failed
// check (ProblemSignature, ProblemExpired, ProblemNotYetValid,
// ProblemIssuer, ProblemAudience; or only ProblemMalformed, with nil
// claims) and an error only when the check itself could not run (the keys
// or the OpenID configuration could not be fetched). The token is valid
// when problems is empty; otherwise the claims are unverified.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, []string, error) {
	claims, parsed, err := parseUnverified(token)
	if err != nil {
		return nil, []string{ProblemMalformed}, nil
	}
	kf, err := v.keys.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	tenant, err := v.tenantGUID(ctx)
	if err != nil {
		return nil, nil, err
	}

	problems := []string{}
	if !signatureOK(ctx, kf, parsed) {
		problems = append(problems, ProblemSignature)
	}
	now := v.now()
	if claims.ExpiresAt.IsZero() || !now.Before(claims.ExpiresAt.Add(v.leeway)) {
		problems = append(problems, ProblemExpired)
	}
	if !claims.NotBefore.IsZero() && now.Add(v.leeway).Before(claims.NotBefore) {
		problems = append(problems, ProblemNotYetValid)
	}
	if !v.issuerOK(claims, tenant) {
		problems = append(problems, ProblemIssuer)
	}
	if !v.audienceOK(claims) {
		problems = append(problems, ProblemAudience)
	}
	return claims, problems, nil
}

func (v *Verifier) issuerOK(c *Claims, tenant string) bool {
	if tenant == "" || !strings.EqualFold(c.TenantID, tenant) {
		return false
	}
	switch c.Issuer {
	case "https://sts.windows.net/" + c.TenantID + "/", // v1
		v.authority + "/" + c.TenantID + "/v2.0", // v2
		v.authority + "/" + c.TenantID + "/":     // v1 on some sovereign clouds
		return true
	}
	return false
}

func (v *Verifier) audienceOK(c *Claims) bool {
	for _, a := range c.audiences {
		if v.audiences[a] {
			return true
		}
	}
	return false
}

// signatureOK verifies the RS256 signature with the tenant's keys; the key
// set fetches itself again when the token names a key it does not hold.
func signatureOK(ctx context.Context, kf keyfunc.Keyfunc, t *jwt.Token) bool {
	if t.Method == nil || t.Method.Alg() != jwt.SigningMethodRS256.Alg() {
		return false
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithoutClaimsValidation())
	_, err := p.Parse(t.Raw, kf.KeyfuncCtx(ctx))
	return err == nil
}

// newKeySet fetches the key set and returns its keyfunc, whose storage
// refreshes itself every refresh (until life ends) and, at most once per
// unknown, when a token names a key it does not hold.
func (v *Verifier) newKeySet(life context.Context, timeout, refresh, unknown time.Duration) (kf keyfunc.Keyfunc, err error) {
	// A failed first fetch must not leave its refresh goroutine running.
	ctx, cancel := context.WithCancel(life)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	store, err := jwkset.NewStorageFromHTTP(v.jwksURL, jwkset.HTTPClientStorageOptions{
		Client:          v.http,
		Ctx:             ctx,
		HTTPTimeout:     timeout,
		RefreshInterval: refresh,
		RefreshErrorHandler: func(_ context.Context, err error) {
			v.log.Warn("auth: signing keys refresh failed; keeping the current keys", "url", v.jwksURL, "error", err.Error())
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: signing keys: %w", err)
	}
	if all, err := store.KeyReadAll(ctx); err != nil || len(all) == 0 {
		return nil, fmt.Errorf("auth: signing keys: %s holds no usable key", v.jwksURL)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{v.jwksURL: store},
		RateLimitWaitMax:  unknownKeyWaitMax,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(unknown), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: signing keys: %w", err)
	}
	if kf, err = keyfunc.New(keyfunc.Options{Storage: client}); err != nil {
		return nil, fmt.Errorf("auth: signing keys: %w", err)
	}
	return kf, nil
}

// tenantGUID returns the configured tenant's GUID, reading the OpenID
// configuration once when the tenant was given as a domain.
func (v *Verifier) tenantGUID(ctx context.Context) (string, error) {
	if v.guid != "" {
		return v.guid, nil
	}
	return v.tenantIDs.get(ctx)
}

func (v *Verifier) readTenantID(ctx context.Context) (string, error) {
	var oc struct {
		Issuer string `json:"issuer"`
	}
	u := v.authority + "/" + v.tenant + "/v2.0/.well-known/openid-configuration"
	if err := v.getJSON(ctx, u, &oc); err != nil {
		return "", fmt.Errorf("auth: openid configuration: %w", err)
	}
	// https://login.microsoftonline.com/{tid}/v2.0
	parts := strings.Split(strings.TrimPrefix(oc.Issuer, v.authority+"/"), "/")
	if len(parts) == 0 || !guidRE.MatchString(parts[0]) {
		return "", fmt.Errorf("auth: openid configuration: issuer %q names no tenant ID", clip(oc.Issuer, 200))
	}
	return strings.ToLower(parts[0]), nil
}

func (v *Verifier) getJSON(ctx context.Context, url string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // bounded by v.http
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: %w", url, errors.New("invalid JSON"))
	}
	return nil
}

// boundedClient returns a copy of hc whose response bodies fail to read past
// max bytes (jwkset decodes the key set without a bound of its own).
func boundedClient(hc *http.Client, max int64) *http.Client {
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &boundedTransport{base: base, max: max}
	return &c
}

type boundedTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		resp.Body = &boundedBody{r: resp.Body, left: t.max, max: t.max}
	}
	return resp, err
}

type boundedBody struct {
	r         io.ReadCloser
	left, max int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a longer one.
		var one [1]byte
		if n, err := b.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("body larger than %d bytes", b.max)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.r.Close() }
