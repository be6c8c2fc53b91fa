package defender

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// testBase is the seed base time of every test server.
var testBase = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	srv   *Server
	http  *httptest.Server
	clock *fakeClock
}

// newFixture starts a server on an injected clock. opts.Now is overridden.
func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	clock := &fakeClock{t: testBase}
	opts.Now = clock.Now
	s := New(opts)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &fixture{srv: s, http: hs, clock: clock}
}

// newTLSFixture is newFixture over HTTPS, as Defender (and package links)
// are served.
func newTLSFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	clock := &fakeClock{t: testBase}
	opts.Now = clock.Now
	s := New(opts)
	hs := httptest.NewTLSServer(s)
	t.Cleanup(hs.Close)
	return &fixture{srv: s, http: hs, clock: clock}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// apiErr is Defender's error envelope.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
}

func (r response) errorBody(t testing.TB) apiErr {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return e
}

func (f *fixture) do(t testing.TB, method, path string, body string, hdr map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	target := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		target = f.http.URL + path
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (f *fixture) get(t testing.TB, path string) response {
	t.Helper()
	return f.do(t, http.MethodGet, path, "", nil)
}

// list GETs a collection and decodes its value array into T.
func list[T any](t testing.TB, f *fixture, path string) ([]T, response) {
	t.Helper()
	r := f.get(t, path)
	if r.status != http.StatusOK {
		return nil, r
	}
	var c struct {
		Context string `json:"@odata.context"`
		Value   []T    `json:"value"`
	}
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatalf("GET %s: body is not a collection: %v", path, err)
	}
	if !strings.Contains(c.Context, "/api/$metadata#") {
		t.Errorf("GET %s: @odata.context = %q, want a $metadata URL", path, c.Context)
	}
	return c.Value, r
}

// filterPath builds a collection path with query options.
func filterPath(base string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	if len(v) == 0 {
		return base
	}
	return base + "?" + v.Encode()
}

// idOf is enough of any Defender entity to compare result sets.
type idOf struct {
	ID string `json:"id"`
}

func ids(v []idOf) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = x.ID
	}
	return out
}

var errNoToken = errors.New("no token")

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("json.Unmarshal(%.200s): %v", b, err)
	}
}
