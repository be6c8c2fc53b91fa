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
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// The problems Verify reports, as tokencheck shows them.
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
	// keysMaxAge: the key set is fetched again after this long.
	keysMaxAge = 24 * time.Hour
	// minKeysRefresh spaces the refreshes an unknown kid triggers.
	minKeysRefresh = time.Minute
	// maxKeysBody bounds the JWKS and OpenID configuration bodies.
	maxKeysBody = 1 << 20
)

// DefenderAppID is the application ID of WindowsDefenderATP, a form the
// Defender API's audience can take.
const DefenderAppID = "fc780465-2017-40d4-a0c5-307022471b92"

// defenderAppIDURI is WindowsDefenderATP's application ID URI.
const defenderAppIDURI = "https://securitycenter.onmicrosoft.com/windowsatpservice"

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// VerifierOptions tune NewVerifier. Zero fields take the defaults.
type VerifierOptions struct {
	Leeway    time.Duration    // clock skew allowed on exp and nbf; default 2m
	Now       func() time.Time // default time.Now
	JWKSURL   string           // default <authority>/<tenant>/discovery/v2.0/keys
	Audiences []string         // accepted besides the audience, its "/" form, the Defender app ID and app ID URI
	Logger    *slog.Logger     // default slog.Default()
}

// Verifier checks Entra access tokens for the Defender API: RS256 signature
// against the tenant's published keys (through keyfunc), issuer, audience
// and lifetime. It fetches the keys at the first Verify, again after a day,
// and once more when a token names an unknown key (rotation). Safe for
// concurrent use.
type Verifier struct {
	authority string
	tenant    string
	jwksURL   string
	audiences map[string]bool
	leeway    time.Duration
	now       func() time.Time
	http      *http.Client
	log       *slog.Logger

	sf singleflight.Group

	mu        sync.Mutex
	kf        keyfunc.Keyfunc
	kids      map[string]bool
	fetchedAt time.Time
	tenantID  string // the tenant GUID issuers name
}

// NewVerifier returns a verifier for tokens of tenantID (a GUID, or a
// domain resolved through the OpenID configuration at the first Verify)
// issued for audience. httpClient nil means http.DefaultClient. No I/O
// happens here.
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
		leeway:    opts.Leeway,
		now:       opts.Now,
		http:      httpClient,
		log:       opts.Logger,
		audiences: map[string]bool{},
	}
	if v.jwksURL == "" {
		v.jwksURL = authorityURL + "/" + tenantID + "/discovery/v2.0/keys"
	}
	if v.leeway <= 0 {
		v.leeway = DefaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	if guidRE.MatchString(tenantID) {
		v.tenantID = strings.ToLower(tenantID)
	}
	a := strings.TrimRight(audience, "/")
	for _, s := range append([]string{a, a + "/", DefenderAppID, defenderAppIDURI}, opts.Audiences...) {
		v.audiences[s] = true
	}
	return v
}

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
	if err := v.ensureKeys(ctx, ""); err != nil {
		return nil, nil, err
	}
	tenant, err := v.tenantGUID(ctx)
	if err != nil {
		return nil, nil, err
	}

	problems := []string{}
	if !v.signatureOK(ctx, parsed) {
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

// signatureOK verifies the RS256 signature with the tenant's keys,
// refreshing them once when the token names an unknown key.
func (v *Verifier) signatureOK(ctx context.Context, t *jwt.Token) bool {
	if t.Method == nil || t.Method.Alg() != jwt.SigningMethodRS256.Alg() {
		return false
	}
	kid, _ := t.Header["kid"].(string)
	v.mu.Lock()
	known := kid == "" || v.kids[kid]
	v.mu.Unlock()
	if !known {
		if err := v.ensureKeys(ctx, kid); err != nil {
			v.log.Warn("auth: key set refresh failed", "error", err.Error())
			return false
		}
	}
	v.mu.Lock()
	kf := v.kf
	v.mu.Unlock()
	p := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithoutClaimsValidation())
	_, err := p.Parse(t.Raw, kf.KeyfuncCtx(ctx))
	return err == nil
}

// ensureKeys fetches the key set when none is loaded, when it is older than
// keysMaxAge, or when unknownKID is set and not in the set (at most once a
// minute).
func (v *Verifier) ensureKeys(ctx context.Context, unknownKID string) error {
	v.mu.Lock()
	now := v.now()
	age := now.Sub(v.fetchedAt)
	need := v.kf == nil || age > keysMaxAge ||
		unknownKID != "" && !v.kids[unknownKID] && age > minKeysRefresh
	had := v.kf != nil
	v.mu.Unlock()
	if !need {
		return nil
	}
	ch := v.sf.DoChan("keys", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), defaultFetchTimeout)
		defer cancel()
		return nil, v.fetchKeys(ctx)
	})
	select {
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting for the signing keys: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil && had {
			// Keep verifying with the keys we have.
			v.log.Warn("auth: signing keys refresh failed; keeping the current keys", "error", r.Err.Error())
			return nil
		}
		return r.Err
	}
}

func (v *Verifier) fetchKeys(ctx context.Context) error {
	var set jwkset.JWKSMarshal
	if err := v.getJSON(ctx, v.jwksURL, &set); err != nil {
		return fmt.Errorf("auth: signing keys: %w", err)
	}
	store := jwkset.NewMemoryStorage()
	kids := map[string]bool{}
	for _, m := range set.Keys {
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue // an unsupported or broken key signs nothing we accept
		}
		if err := store.KeyWrite(ctx, jwk); err != nil {
			return fmt.Errorf("auth: signing keys: %w", err)
		}
		kids[m.KID] = true
	}
	if len(kids) == 0 {
		return fmt.Errorf("auth: signing keys: %s holds no usable key", v.jwksURL)
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return fmt.Errorf("auth: signing keys: %w", err)
	}
	v.mu.Lock()
	v.kf, v.kids, v.fetchedAt = kf, kids, v.now()
	v.mu.Unlock()
	return nil
}

// tenantGUID returns the configured tenant's GUID, reading the OpenID
// configuration once when the tenant was given as a domain.
func (v *Verifier) tenantGUID(ctx context.Context) (string, error) {
	v.mu.Lock()
	id := v.tenantID
	v.mu.Unlock()
	if id != "" {
		return id, nil
	}
	ch := v.sf.DoChan("openid", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), defaultFetchTimeout)
		defer cancel()
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
		id := strings.ToLower(parts[0])
		v.mu.Lock()
		v.tenantID = id
		v.mu.Unlock()
		return id, nil
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("auth: waiting for the openid configuration: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBody+1))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if len(body) > maxKeysBody {
		return fmt.Errorf("GET %s: body larger than %d bytes", url, maxKeysBody)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: %w", url, errors.New("invalid JSON"))
	}
	return nil
}
