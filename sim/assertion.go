package sim

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// verifyAssertion checks a client assertion as Entra does for certificate
// credentials: the x5t (SHA-1) or x5t#S256 header names the app's registered
// certificate, the RS256/PS256 signature verifies with it, aud is this
// tenant's token endpoint, iss = sub = client_id, jti is present and the
// assertion is within nbf..exp on the simulator clock (no leeway).
func (s *Sim) verifyAssertion(req *tokenRequest, app *App, assertion string) *entraFailure {
	invalid := func(reason string) *entraFailure {
		return &entraFailure{401, "invalid_client", 700027, "Client assertion failed signature validation. [Reason - " + reason + "]"}
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithoutClaimsValidation())
	claims := jwt.MapClaims{}
	unverified, _, err := parser.ParseUnverified(assertion, claims)
	if err != nil {
		return &entraFailure{401, "invalid_client", 50027, "JWT token is invalid or malformed."}
	}
	if app.Certificate == nil {
		return invalid("The key was not found.")
	}
	sum1 := sha1.Sum(app.Certificate.Raw)
	sum256 := sha256.Sum256(app.Certificate.Raw)
	x5t, _ := unverified.Header["x5t"].(string)
	x5t256, _ := unverified.Header["x5t#S256"].(string)
	if x5t != base64.RawURLEncoding.EncodeToString(sum1[:]) && x5t256 != base64.RawURLEncoding.EncodeToString(sum256[:]) {
		used := x5t
		if used == "" {
			used = x5t256
		}
		return invalid(fmt.Sprintf("The key was not found., Thumbprint of key used by client: '%s'", used))
	}
	claims = jwt.MapClaims{}
	if _, err := parser.ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) {
		return app.Certificate.PublicKey, nil
	}); err != nil {
		return invalid("The provided signature value did not match the expected signature value.")
	}

	auds, err := claims.GetAudience()
	if err != nil || !slices.ContainsFunc(auds, s.isTokenEndpoint(req.tenantSeg)) {
		return &entraFailure{401, "invalid_client", 700027, "Client assertion contains an invalid audience claim: " +
			"the 'aud' claim must be the token endpoint URL of this tenant."}
	}
	iss, _ := claims.GetIssuer()
	sub, _ := claims.GetSubject()
	if iss != app.ClientID || sub != app.ClientID {
		return &entraFailure{401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter."}
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return &entraFailure{401, "invalid_client", 700027, "Client assertion is missing the 'jti' claim."}
	}
	now := s.Now()
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return &entraFailure{401, "invalid_client", 700024, "Client assertion is not within its valid time range: no 'exp' claim."}
	}
	nbf, _ := claims.GetNotBefore()
	if !now.Before(exp.Time) || (nbf != nil && now.Before(nbf.Time)) {
		return &entraFailure{401, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. "+
			"Current time: %s, expiry time of assertion %s.", now.UTC().Format("2006-01-02T15:04:05.0000000Z"),
			exp.UTC().Format("2006-01-02T15:04:05.0000000Z"))}
	}
	return nil
}

// isTokenEndpoint returns a matcher for the URLs accepted as assertion
// audience: the v1 or v2 token endpoint, with the tenant as GUID, domain or
// the segment the request used.
func (s *Sim) isTokenEndpoint(seg string) func(string) bool {
	base := s.AuthorityURL() + "/"
	var ok []string
	ids := []string{seg}
	if t := s.tenantBySeg(seg); t != nil {
		ids = append(ids, t.id, t.domain)
	}
	for _, t := range ids {
		ok = append(ok, base+t+"/oauth2/token", base+t+"/oauth2/v2.0/token")
	}
	return func(aud string) bool { return slices.Contains(ok, aud) }
}
