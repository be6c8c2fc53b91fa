package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrMalformedToken is wrapped by the errors of ParseUnverified.
var ErrMalformedToken = errors.New("malformed token")

// maxTokenSize bounds the tokens ParseUnverified and Verify accept.
const maxTokenSize = 16 << 10

// TokenType says whether a token acts as an application or as a user.
type TokenType string

// The token types.
const (
	TokenApplication TokenType = "application" // app roles ("roles")
	TokenDelegated   TokenType = "delegated"   // user scopes ("scp")
)

// Claims are the fields of an Entra access token this package reads. Times
// are zero when the claim is absent.
type Claims struct {
	TenantID  string    // tid
	AppID     string    // appid (v1) or azp (v2)
	ObjectID  string    // oid
	UPN       string    // upn, unique_name or preferred_username
	Audience  string    // aud (the first, when a list)
	Issuer    string    // iss
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf
	ExpiresAt time.Time // exp
	Roles     []string  // roles: application permissions (never nil)
	Scopes    []string  // scp, split on spaces: delegated permissions (never nil)
	Version   string    // ver: "1.0" or "2.0"

	audiences []string // every aud
	idType    string   // idtyp
}

// TokenType returns TokenDelegated when the token carries scopes (or says
// idtyp=user), else TokenApplication.
func (c *Claims) TokenType() TokenType {
	if len(c.Scopes) > 0 || c.idType == "user" {
		return TokenDelegated
	}
	return TokenApplication
}

// ParseUnverified decodes token's claims WITHOUT checking its signature,
// issuer, audience or lifetime: use it only to show what a token says, or
// after Verifier.Verify. Errors wrap ErrMalformedToken and never contain the
// token.
func ParseUnverified(token string) (*Claims, error) {
	c, _, err := parseUnverified(token)
	return c, err
}

func parseUnverified(token string) (*Claims, *jwt.Token, error) {
	token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(token), "Bearer "))
	if token == "" || len(token) > maxTokenSize {
		return nil, nil, fmt.Errorf("auth: %w: empty or larger than %d bytes", ErrMalformedToken, maxTokenSize)
	}
	mc := jwt.MapClaims{}
	t, _, err := jwt.NewParser(jwt.WithJSONNumber()).ParseUnverified(token, mc)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w: not a JWT (header.payload.signature)", ErrMalformedToken)
	}
	c, err := claimsFrom(mc)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: %w: %v", ErrMalformedToken, err)
	}
	return c, t, nil
}

func claimsFrom(m jwt.MapClaims) (*Claims, error) {
	c := &Claims{}
	var err error
	str := func(name string) string {
		if err != nil {
			return ""
		}
		v, ok := m[name]
		if !ok || v == nil {
			return ""
		}
		s, ok := v.(string)
		if !ok {
			err = fmt.Errorf("claim %q is not a string", name)
		}
		return s
	}
	strs := func(name string) []string {
		if err != nil {
			return nil
		}
		switch v := m[name].(type) {
		case nil:
			return nil
		case string:
			return []string{v}
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					err = fmt.Errorf("claim %q is not a list of strings", name)
					return nil
				}
				out = append(out, s)
			}
			return out
		}
		err = fmt.Errorf("claim %q is not a list of strings", name)
		return nil
	}
	date := func(name string) time.Time {
		if err != nil {
			return time.Time{}
		}
		var f float64
		switch v := m[name].(type) {
		case nil:
			return time.Time{}
		case json.Number:
			f, err = v.Float64()
		case float64:
			f = v
		default:
			err = fmt.Errorf("claim %q is not a number", name)
		}
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			err = fmt.Errorf("claim %q is not a date", name)
			return time.Time{}
		}
		return time.Unix(int64(f), 0).UTC()
	}

	c.TenantID = str("tid")
	c.AppID = str("appid")
	if c.AppID == "" {
		c.AppID = str("azp")
	}
	c.ObjectID = str("oid")
	for _, n := range []string{"upn", "unique_name", "preferred_username"} {
		if c.UPN == "" {
			c.UPN = str(n)
		}
	}
	c.audiences = strs("aud")
	if len(c.audiences) > 0 {
		c.Audience = c.audiences[0]
	}
	c.Issuer = str("iss")
	c.IssuedAt = date("iat")
	c.NotBefore = date("nbf")
	c.ExpiresAt = date("exp")
	c.Roles = append([]string{}, strs("roles")...)
	c.Scopes = append([]string{}, strings.Fields(str("scp"))...)
	c.Version = str("ver")
	c.idType = str("idtyp")
	if err != nil {
		return nil, err
	}
	return c, nil
}
