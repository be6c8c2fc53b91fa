package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// assertionLifetime is the validity of a client assertion.
const assertionLifetime = 10 * time.Minute

// clientAssertionType is the OAuth client assertion type for a JWT.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientCertificate runs the client credentials grant authenticated by a
// client assertion signed with the certificate's key.
func (e *entra) clientCertificate(ctx context.Context) (*oauth2.Token, error) {
	cred, err := e.credential(ctx)
	if err != nil {
		return nil, err
	}
	cc := e.clientCredentials(cred)
	assertion, err := ClientAssertion(cred, cc.TokenURL, e.now())
	if err != nil {
		return nil, err
	}
	cc.EndpointParams.Set("client_assertion_type", clientAssertionType)
	cc.EndpointParams.Set("client_assertion", assertion)
	return e.done(cc.Token(e.ctx(ctx)))
}

// ClientAssertion returns the RS256 JWT proving possession of cred's
// certificate key to the token endpoint tokenURL, as Microsoft's
// certificate credentials require: header x5t and x5t#S256 (base64url
// SHA-1 and SHA-256 of the certificate), claims aud = tokenURL,
// iss = sub = cred.ClientID, a random jti, and nbf, iat, exp (10 minutes).
func ClientAssertion(cred *Credential, tokenURL string, now time.Time) (string, error) {
	if len(cred.Certificate) == 0 || cred.PrivateKey == nil {
		return "", errors.New("auth: client assertion: the credential has no certificate and key")
	}
	key, ok := cred.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return "", errors.New("auth: client assertion: only RSA keys are supported")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("auth: client assertion: %w", err)
	}
	der := cred.Certificate[0].Raw
	s1, s256 := sha1.Sum(der), sha256.Sum256(der)
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"aud": tokenURL,
		"iss": cred.ClientID,
		"sub": cred.ClientID,
		"jti": fmt.Sprintf("%x", jti),
		"nbf": now.Unix(),
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
	t.Header["x5t"] = base64.RawURLEncoding.EncodeToString(s1[:])
	t.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(s256[:])
	signed, err := t.SignedString(key)
	if err != nil {
		return "", errors.New("auth: client assertion: signing failed")
	}
	return signed, nil
}
