// Package tokencheck is the tokencheck function: it acquires the Defender
// token exactly as the other functions do (or takes a supplied one), verifies
// it against the tenant's published keys, and reports what it is and which
// functions it allows. The token itself is never in the answer.
package tokencheck

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/pkg/auth"
)

// MaxTokenLength bounds a supplied token; a longer one is "malformed".
const MaxTokenLength = 16 << 10

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodGet, http.MethodPost}

// Verifier checks a token's signature, issuer, audience and lifetime.
type Verifier interface {
	Verify(ctx context.Context, token string) (*auth.Claims, []string, error)
}

// TokenSource is how the functions acquire their Defender token.
type TokenSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// Check is one entry of the answer's "functions": what a token must hold
// to use a function (or one way of calling it, such as isolateByName).
type Check struct {
	Name  string
	Needs auth.Needs
}

// Service answers tokencheck requests. It is safe for concurrent use.
type Service struct {
	Tokens   TokenSource
	Verifier Verifier
	// Checks are the entries reported under "functions", one per served
	// function (from the function registry).
	Checks []Check
	Logger *slog.Logger // nil discards
}

// Request is a tokencheck request: an empty Token means the functions' own.
type Request struct {
	Token string `json:"token,omitempty"`
}

// Access says whether a token allows a function, and what it lacks.
type Access struct {
	Allowed bool     `json:"allowed"`
	Missing []string `json:"missing"`
}

// Result is the tokencheck answer.
type Result struct {
	Valid     bool              `json:"valid"`
	Problems  []string          `json:"problems"`
	TokenType string            `json:"tokenType,omitempty"`
	TenantID  string            `json:"tenantId,omitempty"`
	AppID     string            `json:"appId,omitempty"`
	Audience  string            `json:"audience,omitempty"`
	Issuer    string            `json:"issuer,omitempty"`
	IssuedAt  *time.Time        `json:"issuedAt,omitempty"`
	ExpiresAt *time.Time        `json:"expiresAt,omitempty"`
	Roles     []string          `json:"roles"`
	Scopes    []string          `json:"scopes"`
	Functions map[string]Access `json:"functions"`
}

// Do inspects r.Token, or acquires the functions' own token when it is empty.
func (s *Service) Do(ctx context.Context, r Request) (*Result, error) {
	token := r.Token
	if token == "" {
		t, err := s.Tokens.TokenContext(ctx)
		if err != nil {
			return nil, err // matches auth.ErrToken: mapped as a token failure
		}
		token = t.AccessToken
	}
	if len(token) > MaxTokenLength {
		return report(nil, []string{"malformed"}, s.Checks), nil
	}
	claims, problems, err := s.Verifier.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	return report(claims, problems, s.Checks), nil
}

func report(c *auth.Claims, problems []string, checks []Check) *Result {
	res := &Result{Valid: len(problems) == 0, Problems: problems, Roles: []string{}, Scopes: []string{}}
	if res.Problems == nil {
		res.Problems = []string{}
	}
	if c == nil {
		c = &auth.Claims{}
		if res.Valid {
			res.Valid, res.Problems = false, []string{"malformed"}
		}
	} else {
		res.TokenType = string(c.TokenType())
		res.TenantID, res.AppID, res.Audience, res.Issuer = c.TenantID, c.AppID, c.Audience, c.Issuer
		if !c.IssuedAt.IsZero() {
			t := c.IssuedAt.UTC()
			res.IssuedAt = &t
		}
		if !c.ExpiresAt.IsZero() {
			t := c.ExpiresAt.UTC()
			res.ExpiresAt = &t
		}
		if c.Roles != nil {
			res.Roles = c.Roles
		}
		if c.Scopes != nil {
			res.Scopes = c.Scopes
		}
	}
	res.Functions = make(map[string]Access, len(checks))
	for _, ch := range checks {
		a := c.Check(ch.Needs)
		res.Functions[ch.Name] = Access{Allowed: a.Allowed, Missing: a.Missing}
	}
	return res
}

// ServeHTTP answers GET (the functions' own token) and POST ({"token": ...}).
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var r Request
	var err error
	switch req.Method {
	case http.MethodGet:
	case http.MethodPost:
		var body bytes.Buffer
		if _, err = body.ReadFrom(req.Body); err == nil {
			err = decode.JSON(body.Bytes(), &r)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		err = envelope.Errorf(envelope.MethodNotAllowed, "use GET, or POST with {\"token\": \"...\"}")
	}
	var res *Result
	if err == nil {
		res, err = s.Do(req.Context(), r)
	}
	if err != nil {
		e := errmap.Write(w, err)
		errmap.LogFailure(req.Context(), s.Logger, "tokencheck", e)
		return
	}
	_ = envelope.WriteJSON(w, http.StatusOK, res)
}
