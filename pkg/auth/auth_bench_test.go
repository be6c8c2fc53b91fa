package auth_test

import (
	"context"
	"testing"

	"github.com/mdefn/mdefn/pkg/auth"
	"github.com/mdefn/mdefn/sim"
)

// BenchmarkTokenContextWarm is the token cache hit every warm invocation
// pays: TokenContext on a source that already holds a valid token (the
// token from the simulator's Entra over TLS), from parallel callers.
//
//	go test -run '^$' -bench . -benchmem ./pkg/auth
func BenchmarkTokenContextWarm(b *testing.B) {
	s, err := sim.Start(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	// The secret source does not matter to a cache hit: a plain one.
	src := auth.NewEnvSecretSource("secret", sim.DefaultClientSecret)
	store := auth.NewCredentialStore(src, auth.ModeClientSecret, nil)
	ts, err := auth.NewTokenSource(auth.ModeClientSecret, s.TenantID(), sim.DefaultClientID, store, s.HTTPClient(), &auth.TokenOptions{
		AuthorityURL: s.AuthorityURL(), Audience: s.Audience(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ts.TokenContext(ctx); err != nil {
		b.Fatal(err)
	}
	before := s.TokenRequests(sim.DefaultClientID)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ts.TokenContext(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if got := s.TokenRequests(sim.DefaultClientID); got != before {
		b.Errorf("token requests during warm TokenContext calls = %d, want 0", got-before)
	}
}

// BenchmarkParseUnverified decodes an Entra access token without verifying
// it, as the requestor lookup of isolate does.
func BenchmarkParseUnverified(b *testing.B) {
	s, err := sim.Start(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	tok := s.IssueToken(sim.TokenSpec{})
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := auth.ParseUnverified(tok); err != nil {
			b.Fatal(err)
		}
	}
}
