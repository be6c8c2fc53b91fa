package atp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// testToken is the bearer token the fake sources hand out.
const testToken = "test-access-token"

// fakeTokens is a token source that counts calls and supports
// TokenContext and Invalidate.
type fakeTokens struct {
	mu          sync.Mutex
	gen         int // bumped by Invalidate: tokens are testToken-<gen>
	calls       int
	ctxCalls    int
	invalidates int
	err         error
}

func (f *fakeTokens) Token() (*oauth2.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &oauth2.Token{AccessToken: f.tokenLocked(), TokenType: "Bearer"}, nil
}

func (f *fakeTokens) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	f.mu.Lock()
	f.ctxCalls++
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return f.Token()
}

func (f *fakeTokens) Invalidate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidates++
	f.gen++
}

func (f *fakeTokens) tokenLocked() string {
	if f.gen == 0 {
		return testToken
	}
	return testToken + "-" + string(rune('0'+f.gen))
}

// plainTokens implements only oauth2.TokenSource.
type plainTokens struct{ calls atomic.Int32 }

func (p *plainTokens) Token() (*oauth2.Token, error) {
	p.calls.Add(1)
	return &oauth2.Token{AccessToken: testToken}, nil
}

// fakeSleep records requested sleeps without sleeping.
type fakeSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *fakeSleep) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *fakeSleep) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

// fakeClock is a clock that only moves when someone sleeps on it (each
// sleep advances it by d), for sequential callers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return ctx.Err()
}

// newTestClient starts an httptest server with h and returns a client for
// it with fast, unthrottled defaults (no budget, fake sleep) unless o says
// otherwise.
func newTestClient(t *testing.T, h http.Handler, tokens oauth2.TokenSource, o *Options) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if tokens == nil {
		tokens = &fakeTokens{}
	}
	if o == nil {
		o = &Options{}
	}
	if o.CallsPerMinute == 0 {
		o.CallsPerMinute = -1
	}
	if o.CallsPerHour == 0 {
		o.CallsPerHour = -1
	}
	if o.Sleep == nil {
		o.Sleep = (&fakeSleep{}).Sleep
	}
	c, err := NewClient(srv.URL, tokens, o)
	if err != nil {
		t.Fatalf("NewClient(%q) = %v", srv.URL, err)
	}
	return c, srv
}

// jsonHandler answers every request with status and body after calling
// check (which may be nil) on the request.
func jsonHandler(status int, body string, check func(r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if check != nil {
			check(r)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// asResponseError returns err's *ResponseError or fails the test.
func asResponseError(t *testing.T, err error) *ResponseError {
	t.Helper()
	var re *ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *ResponseError", err, err)
	}
	return re
}

const (
	machineID1 = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"
	machineID2 = "7292e4b8cb74ff1cc3d8a495eb29dc8858b732f7"
	actionID1  = "2e9da30d-27f6-4208-81f2-9cd3d67893ba"
)

// emptyTokens returns a token with no access token.
type emptyTokens struct{}

func (emptyTokens) Token() (*oauth2.Token, error) { return &oauth2.Token{}, nil }

// recorded is what a recorder saw of one request.
type recorded struct {
	Method      string
	Path        string // decoded path
	RawQuery    string
	Query       map[string][]string
	ContentType string
	Accept      string
	Auth        string // the Authorization header
	Body        string
}

// recorder answers with body (status 200, or status if set) and records
// the last request.
type recorder struct {
	mu     sync.Mutex
	last   recorded
	all    []recorded
	status int
	body   string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	got := recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Query: r.URL.Query(),
		ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"), Auth: r.Header.Get("Authorization"), Body: string(b)}
	rec.mu.Lock()
	rec.last = got
	rec.all = append(rec.all, got)
	status, body := rec.status, rec.body
	rec.mu.Unlock()
	if status == 0 {
		status = 200
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// newBenchServer starts an httptest server for a benchmark and returns its URL.
func newBenchServer(tb testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}
