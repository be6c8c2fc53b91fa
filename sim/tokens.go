package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signingKey is one token signing key with the self-signed certificate
// Entra publishes for it (x5c); kid and x5t are the certificate's SHA-1
// thumbprint, base64url, as Entra does.
type signingKey struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
	kid  string
}

func newSigningKey() (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse signing certificate: %w", err)
	}
	sum := sha1.Sum(der)
	return &signingKey{key: key, cert: cert, kid: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// keyring holds the published signing keys (the last one signs) and a key
// that is never published.
type keyring struct {
	published   []*signingKey
	unpublished *signingKey
}

// shared holds the initial signing key and the unpublished key, generated
// once per process: RSA key generation is slow, and sharing the initial key
// keeps tokens cached process-wide (MSAL's managed identity cache is global)
// valid across simulators of the same tenant. RotateSigningKey always
// generates a key of the simulator's own.
var shared struct {
	once                 sync.Once
	initial, unpublished *signingKey
	err                  error
}

func sharedKeys() (initial, unpublished *signingKey, err error) {
	shared.once.Do(func() {
		if shared.initial, shared.err = newSigningKey(); shared.err != nil {
			return
		}
		shared.unpublished, shared.err = newSigningKey()
	})
	return shared.initial, shared.unpublished, shared.err
}

// init publishes the shared initial key.
func (k *keyring) init() error {
	initial, unpublished, err := sharedKeys()
	if err != nil {
		return err
	}
	k.published = []*signingKey{initial}
	k.unpublished = unpublished
	return nil
}

func (k *keyring) active() *signingKey { return k.published[len(k.published)-1] }

func (k *keyring) find(kid string) *signingKey {
	for _, key := range k.published {
		if key.kid == kid {
			return key
		}
	}
	return nil
}

// RotateSigningKey makes a new key sign every home tenant token from now on. The old
// keys stay published in JWKS, as Entra keeps them, until RemoveOldKeys.
func (s *Sim) RotateSigningKey() error {
	key, err := newSigningKey()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.home.keys.published = append(s.home.keys.published, key)
	return nil
}

// RemoveOldKeys unpublishes every signing key but the active one; tokens
// they signed stop verifying.
func (s *Sim) RemoveOldKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.home.keys.published = []*signingKey{s.home.keys.active()}
}

// SigningKeyIDs returns the kids of the published keys, the active one last.
func (s *Sim) SigningKeyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, k := range s.home.keys.published {
		ids = append(ids, k.kid)
	}
	return ids
}

// TokenSpec describes a token for IssueToken. Zero fields take the defaults
// documented on each; Extra overrides any claim (a nil value removes it).
type TokenSpec struct {
	Audience  string    // aud; default the Defender audience
	TenantID  string    // tid; default the simulator's tenant
	Issuer    string    // iss; default https://sts.windows.net/{tid}/
	AppID     string    // appid; default DefaultClientID
	AppIDACR  string    // appidacr; default "1" (client secret)
	ObjectID  string    // oid (and sub); default a random GUID
	UPN       string    // upn and unique_name: set for a delegated token
	Roles     []string  // roles claim (application permissions)
	Scopes    []string  // scp claim (delegated permissions), space separated
	IssuedAt  time.Time // iat; default now (simulator clock)
	NotBefore time.Time // nbf; default IssuedAt
	ExpiresAt time.Time // exp; default IssuedAt + token lifetime
	// KeyID overrides the kid (and x5t) header, e.g. to name an unknown key.
	KeyID string
	// Unpublished signs with a key that is not in JWKS.
	Unpublished bool
	Extra       map[string]any
}

// IssueToken signs a v1.0 access token as Entra would, for tests that need
// odd tokens (expired, wrong audience, unknown key). It returns "" only if
// signing fails, which cannot happen with the simulator's keys.
func (s *Sim) IssueToken(spec TokenSpec) string {
	tok, err := s.issue(spec)
	if err != nil {
		return ""
	}
	return tok
}

// issue builds the claims of spec and signs them.
func (s *Sim) issue(spec TokenSpec) (string, error) {
	now := s.Now()
	tid := orDefault(spec.TenantID, s.tenantID)
	iat := spec.IssuedAt
	if iat.IsZero() {
		iat = now
	}
	nbf := spec.NotBefore
	if nbf.IsZero() {
		nbf = iat
	}
	exp := spec.ExpiresAt
	if exp.IsZero() {
		exp = iat.Add(s.lifetime)
	}
	oid := orDefault(spec.ObjectID, newGUID())
	claims := jwt.MapClaims{
		"aud":      orDefault(spec.Audience, s.audience),
		"iss":      orDefault(spec.Issuer, "https://sts.windows.net/"+tid+"/"),
		"iat":      iat.Unix(),
		"nbf":      nbf.Unix(),
		"exp":      exp.Unix(),
		"aio":      randomHex(16),
		"appid":    orDefault(spec.AppID, DefaultClientID),
		"appidacr": orDefault(spec.AppIDACR, "1"),
		"idp":      "https://sts.windows.net/" + tid + "/",
		"oid":      oid,
		"rh":       "0." + randomHex(12),
		"sub":      oid,
		"tid":      tid,
		"uti":      base64.RawURLEncoding.EncodeToString([]byte(randomHex(8))),
		"ver":      "1.0",
	}
	if len(spec.Roles) > 0 {
		claims["roles"] = spec.Roles
	}
	if len(spec.Scopes) > 0 {
		claims["scp"] = strings.Join(spec.Scopes, " ")
	}
	if spec.UPN != "" {
		claims["upn"] = spec.UPN
		claims["unique_name"] = spec.UPN
		claims["name"] = spec.UPN
		claims["amr"] = []string{"pwd"}
		delete(claims, "idp")
	}
	for k, v := range spec.Extra {
		if v == nil {
			delete(claims, k)
			continue
		}
		claims[k] = v
	}

	// The tenant named by tid signs (the home tenant when tid names none
	// served, for odd tokens).
	s.mu.Lock()
	signer := s.tenantBySegLocked(tid)
	if signer == nil {
		signer = s.home
	}
	key := signer.keys.active()
	if spec.Unpublished {
		key = signer.keys.unpublished
	}
	s.mu.Unlock()

	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	kid := orDefault(spec.KeyID, key.kid)
	t.Header["kid"] = kid
	t.Header["x5t"] = kid
	return t.SignedString(key.key)
}

// Token verification failures, wrapped by the errors verifyToken returns.
var (
	errNoToken       = errors.New("no bearer token")
	errTokenInvalid  = errors.New("token is malformed or its signature is invalid")
	errTokenExpired  = errors.New("token is expired")
	errTokenEarly    = errors.New("token is not yet valid")
	errTokenAudience = errors.New("token audience is not accepted")
	errTokenIssuer   = errors.New("token issuer is not accepted")
)

// verifiedToken is what the simulator reads from a token it verified.
type verifiedToken struct {
	TenantID, AppID, ObjectID, UPN, Audience string
	Roles, Scopes                            []string
}

// verifyToken checks a bearer token as a resource server would: RS256
// signature by a published key, exp/nbf on the simulator clock (no leeway),
// issuer of a served tenant matching its tid (whose keys must have signed)
// and an audience accepted by accept.
func (s *Sim) verifyToken(raw string, accept func(aud string) bool) (*verifiedToken, error) {
	if raw == "" {
		return nil, errNoToken
	}
	claims := jwt.MapClaims{}
	var tenant *Tenant
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		tid, _ := claims["tid"].(string)
		s.mu.Lock()
		defer s.mu.Unlock()
		// The keys of the tenant the token claims to be from; a tenant
		// not served fails on the issuer check below.
		keys := &s.home.keys
		if tenant = s.tenantBySegLocked(tid); tenant != nil && strings.EqualFold(tenant.id, tid) {
			keys = &tenant.keys
		} else {
			tenant = nil
		}
		if k := keys.find(kid); k != nil {
			return &k.key.PublicKey, nil
		}
		return nil, fmt.Errorf("unknown signing key %q", kid)
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(s.Now), jwt.WithExpirationRequired())
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, errTokenEarly
	case err != nil:
		return nil, errTokenInvalid
	}
	v := &verifiedToken{}
	v.TenantID, _ = claims["tid"].(string)
	v.AppID, _ = claims["appid"].(string)
	v.ObjectID, _ = claims["oid"].(string)
	v.UPN, _ = claims["upn"].(string)
	v.Audience, _ = claims["aud"].(string)
	if iss, _ := claims["iss"].(string); tenant == nil || iss != tenant.Issuer() {
		return nil, errTokenIssuer
	}
	if !accept(v.Audience) {
		return nil, errTokenAudience
	}
	if roles, ok := claims["roles"].([]any); ok {
		for _, r := range roles {
			if r, ok := r.(string); ok {
				v.Roles = append(v.Roles, r)
			}
		}
	}
	if scp, ok := claims["scp"].(string); ok {
		v.Scopes = strings.Fields(scp)
	}
	return v, nil
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(h string) string {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
