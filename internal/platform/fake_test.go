package platform

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// received is what a fake function saw of one request.
type received struct {
	Method      string
	Path        string
	Query       string
	Header      http.Header
	Body        string
	Info        invocation.Info
	Deadline    time.Time
	HasDeadline bool
}

// fakeFunction records its requests and answers what answer says (200 {} by
// default). With block set it waits for the request's context to end, then
// answers 504 upstream_timeout, as a real function would.
type fakeFunction struct {
	mu     sync.Mutex
	got    []received
	answer func(body string) (status int, answer string)
	header http.Header
	block  bool
}

func (f *fakeFunction) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	deadline, ok := r.Context().Deadline()
	f.mu.Lock()
	f.got = append(f.got, received{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(),
		Body: string(body), Info: withoutNotes(invocation.From(r.Context())), Deadline: deadline, HasDeadline: ok,
	})
	f.mu.Unlock()
	status, answer := http.StatusOK, `{"ok":true}`
	if f.answer != nil {
		status, answer = f.answer(string(body))
	}
	if f.block {
		<-r.Context().Done()
		status, answer = http.StatusGatewayTimeout, `{"error":{"code":"upstream_timeout","message":"deadline"}}`
	}
	for k, v := range f.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (f *fakeFunction) calls() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

// answerWith returns an answer func giving status and body.
func answerWith(status int, body string) func(string) (int, string) {
	return func(string) (int, string) { return status, body }
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines decodes the JSON log lines.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(l.String())), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

type testFixture struct {
	app  *App
	fns  map[string]*fakeFunction
	logs *lockedBuffer
}

func newFixture(t *testing.T) *testFixture {
	t.Helper()
	fx := &testFixture{fns: map[string]*fakeFunction{}, logs: &lockedBuffer{}}
	handlers := map[string]http.Handler{}
	for _, name := range []string{"alerts", "isolate", "tokencheck", openAPIName} {
		f := &fakeFunction{}
		fx.fns[name] = f
		if name != openAPIName {
			handlers[name] = f
		}
	}
	fx.app = &App{
		Functions: handlers,
		OpenAPI:   fx.fns[openAPIName],
		Timeout:   5 * time.Second,
		Logger:    slog.New(slog.NewJSONHandler(fx.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// As the wiring sets it: a capped storm is never redelivered.
		PermanentCodes: []envelope.Code{envelope.IsolationBudgetExceeded},
	}
	return fx
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonEqual reports whether two JSON texts mean the same.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("json %q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("json %q: %v", b, err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// withoutNotes drops the adapter's notes pointer, so that Infos compare.
func withoutNotes(i invocation.Info) invocation.Info {
	i.Notes = nil
	return i
}
