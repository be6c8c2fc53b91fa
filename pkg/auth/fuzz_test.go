package auth_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mdefn/mdefn/pkg/auth"
	"github.com/mdefn/mdefn/sim"
)

// FuzzParseUnverified feeds hostile strings to token inspection: it never
// panics, and what it accepts has three dot-separated parts.
func FuzzParseUnverified(f *testing.F) {
	s, err := sim.Start(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	for _, seed := range []string{
		s.IssueToken(sim.TokenSpec{Roles: []string{"Alert.Read.All"}}),
		s.IssueToken(sim.TokenSpec{UPN: sim.DefaultUserUPN, Scopes: []string{"Alert.Read"}}),
		"", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6MX0.", "eyJ9.eyJ9.eyJ9",
		"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOiJzb29uIiwicm9sZXMiOlsxLDJdfQ.x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := auth.ParseUnverified(token)
		if err == nil && (c == nil || strings.Count(token, ".") != 2) {
			t.Errorf("ParseUnverified(%q) = %v, nil; want an error for a non-JWT", token, c)
		}
	})
}

// FuzzVerifyMutated changes one byte of a valid token: Verify must never
// report the result valid unless the byte did not change or only re-encoded
// the same bits (base64url's unused trailing bits).
func FuzzVerifyMutated(f *testing.F) {
	s, err := sim.Start(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	token := s.IssueToken(sim.TokenSpec{Roles: []string{"Alert.Read.All"}})
	v := auth.NewVerifier(s.AuthorityURL(), s.TenantID(), s.Audience(), s.HTTPClient(), nil)
	if _, problems, err := v.Verify(context.Background(), token); err != nil || len(problems) != 0 {
		f.Fatalf("Verify(valid token) = %v, %v; want no problems", problems, err)
	}
	for _, seed := range []struct {
		pos int
		b   byte
	}{{0, 'x'}, {10, '.'}, {strings.Index(token, ".") + 5, 'A'}, {len(token) - 1, 'A'}, {strings.LastIndex(token, "."), 'Q'}} {
		f.Add(seed.pos, seed.b)
	}
	f.Fuzz(func(t *testing.T, pos int, b byte) {
		if pos < 0 || pos >= len(token) || token[pos] == b {
			return
		}
		mutated := token[:pos] + string(b) + token[pos+1:]
		_, problems, err := v.Verify(context.Background(), mutated)
		if err == nil && len(problems) == 0 && !sameBits(token, mutated) {
			t.Errorf("Verify(token with byte %d set to %q) = valid, want a problem", pos, b)
		}
	})
}

// sameBits reports whether a and b decode to the same bytes part by part
// (a change in the unused low bits of a part's last base64url character).
func sameBits(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		da, ea := decodeSegment(pa[i])
		db, eb := decodeSegment(pb[i])
		if ea != nil || eb != nil || da != db {
			return false
		}
	}
	return true
}

func decodeSegment(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}
