package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

// clock is the simulator's clock, moved by the tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type stack struct {
	def    *defender.Server
	client *atp.Client
	svc    *Service
	clock  *clock
	logs   *bytes.Buffer
}

// newStack is the function on the real atp client against the Defender
// simulator over real HTTP.
func newStack(t *testing.T) *stack {
	t.Helper()
	clk := &clock{now: time.Now().UTC()}
	st := &stack{clock: clk, logs: &bytes.Buffer{}}
	st.def = defender.New(defender.Options{RateLimits: &defender.RateLimits{}, Now: clk.Now, PackageBaseURL: "https://packages.example"})
	srv := httptest.NewServer(st.def)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-token"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st.client = c
	st.svc = &Service{Client: c, Logger: slog.New(slog.NewJSONHandler(st.logs, nil))}
	return st
}

// start creates an action of each kind on the simulator's first device.
func (st *stack) start(t *testing.T, kind string) *atp.MachineAction {
	t.Helper()
	m := st.def.Machines()[0]
	var a *atp.MachineAction
	var err error
	switch kind {
	case "collect":
		a, err = st.client.CollectInvestigationPackage(context.Background(), m.ID, "INC1: forensics")
	default:
		a, err = st.client.RunAntiVirusScan(context.Background(), m.ID, atp.ScanRequest{Comment: "INC1: scan", ScanType: atp.ScanQuick})
	}
	if err != nil {
		t.Fatalf("start %s: %v", kind, err)
	}
	return a
}

func (st *stack) do(t *testing.T, method, path, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, "http://fn.example"+path, strings.NewReader(body))
	w := httptest.NewRecorder()
	st.svc.ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s answer %q is not JSON: %v", method, path, w.Body, err)
	}
	return w, out
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func actionStatus(out map[string]any) string {
	a, _ := out["action"].(map[string]any)
	s, _ := a["status"].(string)
	return s
}

// TestStatusLifecycle: 202 with Retry-After and Location while the action
// runs, 200 once it has ended, Failed included.
func TestStatusLifecycle(t *testing.T) {
	for _, outcome := range []defender.ActionStatus{defender.ActionSucceeded, defender.ActionFailed} {
		t.Run(string(outcome), func(t *testing.T) {
			st := newStack(t)
			st.def.SetActionOutcome(outcome)
			a := st.start(t, "scan")
			for _, path := range []string{"/api/actions/" + a.ID, "/" + strings.ToUpper(a.ID), "/api/actions/" + a.ID + "/"} {
				w, out := st.do(t, http.MethodGet, path, "")
				if w.Code != http.StatusAccepted || out["pending"] != true || actionStatus(out) != "Pending" {
					t.Fatalf("GET %s = %d %v, want 202 pending", path, w.Code, out)
				}
				if got := w.Header().Get("Retry-After"); got != "10" {
					t.Errorf("Retry-After = %q, want 10", got)
				}
				if got, want := w.Header().Get("Location"), "http://fn.example/api/actions/"+a.ID; got != want {
					t.Errorf("Location = %q, want %q", got, want)
				}
			}
			st.clock.add(defender.DefaultActionTimings.InProgressAfter + time.Second)
			if w, out := st.do(t, http.MethodGet, "/api/actions/"+a.ID, ""); w.Code != 202 || actionStatus(out) != "InProgress" {
				t.Fatalf("in progress: GET = %d %v, want 202 InProgress", w.Code, out)
			}
			st.clock.add(defender.DefaultActionTimings.CompletedAfter)
			w, out := st.do(t, http.MethodGet, "/api/actions/"+a.ID, "")
			if w.Code != http.StatusOK || out["pending"] != false || actionStatus(out) != string(outcome) {
				t.Fatalf("ended: GET = %d %v, want 200 %s", w.Code, out, outcome)
			}
			if w.Header().Get("Retry-After") != "" || w.Header().Get("Location") != "" {
				t.Errorf("ended action answered with Retry-After/Location %v", w.Header())
			}
		})
	}
}

// TestDirectDelivery: a POST of {"id"} (Step Functions, a queue) is the
// status read; actionId is the same field.
func TestDirectDelivery(t *testing.T) {
	st := newStack(t)
	a := st.start(t, "scan")
	for _, body := range []string{`{"id":"` + a.ID + `"}`, `{"actionId":"` + a.ID + `"}`} {
		if w, out := st.do(t, http.MethodPost, "/api/actions", body); w.Code != 202 || out["pending"] != true {
			t.Errorf("POST %s = %d %v, want 202 pending", body, w.Code, out)
		}
	}
}

// TestCancel: a pending action is cancelled with the ticket first in the
// comment; a repeated delivery is alreadyCancelled with no second call; an
// ended action is refused; a dry run sends nothing.
func TestCancel(t *testing.T) {
	st := newStack(t)
	a := st.start(t, "scan")
	path := "/api/actions/" + a.ID + "/cancel"

	st.def.ResetStats()
	if w, out := st.do(t, http.MethodPost, path, `{"comment":"wrong host","ticket":"INC7","dryRun":true}`); w.Code != 200 || out["dryRun"] != true {
		t.Fatalf("dry run = %d %v", w.Code, out)
	}
	if n := st.def.Stats().Calls["POST /api/machineactions/{id}/cancel"]; n != 0 {
		t.Fatalf("dry run sent %d cancellations", n)
	}

	w, out := st.do(t, http.MethodPost, path, `{"comment":"wrong host","ticket":"INC7"}`)
	if w.Code != 200 || actionStatus(out) != "Cancelled" {
		t.Fatalf("cancel = %d %v, want 200 Cancelled", w.Code, out)
	}
	if got := out["action"].(map[string]any)["cancellationComment"]; got != "INC7: wrong host" {
		t.Errorf("cancellationComment = %v, want the ticket first", got)
	}
	calls := st.def.Stats().Calls
	w, out = st.do(t, http.MethodPost, "/api/actions", `{"id":"`+a.ID+`","cancel":true,"comment":"wrong host","ticket":"INC7"}`)
	if w.Code != 200 || out["alreadyCancelled"] != true {
		t.Fatalf("repeated cancel = %d %v, want 200 alreadyCancelled", w.Code, out)
	}
	if got := st.def.Stats().Calls; got["POST /api/machineactions/{id}/cancel"] != calls["POST /api/machineactions/{id}/cancel"] {
		t.Errorf("repeated cancel sent a second cancellation")
	}

	done := st.start(t, "collect")
	st.clock.add(time.Hour)
	if w, out := st.do(t, http.MethodPost, "/api/actions/"+done.ID+"/cancel", `{"comment":"c"}`); w.Code != 400 || errCode(out) != "invalid_request" {
		t.Errorf("cancel of an ended action = %d %v, want 400", w.Code, out)
	}
	if !strings.Contains(st.logs.String(), `"audit":"mdefn.actions"`) || !strings.Contains(st.logs.String(), `"outcome":"cancelled"`) {
		t.Errorf("no audit line of the cancellation in %s", st.logs)
	}
}

// TestPackage: 202 while the collection runs, the link once it has
// succeeded, 400 for an action that is not a collection, 404 for a failed
// one; the link is never logged.
func TestPackage(t *testing.T) {
	st := newStack(t)
	a := st.start(t, "collect")
	path := "/api/actions/" + a.ID + "/package"
	if w, out := st.do(t, http.MethodGet, path, ""); w.Code != 202 || out["pending"] != true || out["uri"] != nil {
		t.Fatalf("running collection: GET package = %d %v, want 202", w.Code, out)
	}
	st.clock.add(time.Hour)
	w, out := st.do(t, http.MethodGet, path, "")
	uri, _ := out["uri"].(string)
	if w.Code != 200 || !strings.HasPrefix(uri, "https://") || out["actionId"] != a.ID {
		t.Fatalf("GET package = %d %v, want 200 with an https uri", w.Code, out)
	}
	if w, out := st.do(t, http.MethodPost, "/api/actions", `{"id":"`+a.ID+`","package":true}`); w.Code != 200 || out["uri"] == nil {
		t.Errorf("POST package = %d %v", w.Code, out)
	}
	if strings.Contains(st.logs.String(), uri) {
		t.Errorf("the package link is in the logs")
	}

	scan := st.start(t, "scan")
	if w, out := st.do(t, http.MethodGet, "/api/actions/"+scan.ID+"/package", ""); w.Code != 400 || errCode(out) != "invalid_request" {
		t.Errorf("package of a scan = %d %v, want 400", w.Code, out)
	}
	st.def.SetActionOutcome(defender.ActionFailed)
	failed := st.start(t, "collect")
	st.clock.add(time.Hour)
	if w, out := st.do(t, http.MethodGet, "/api/actions/"+failed.ID+"/package", ""); w.Code != 404 || errCode(out) != "not_found" {
		t.Errorf("package of a failed collection = %d %v, want 404", w.Code, out)
	}
}

// TestUnknownAction: a well-formed ID Defender does not know is 404.
func TestUnknownAction(t *testing.T) {
	st := newStack(t)
	w, out := st.do(t, http.MethodGet, "/api/actions/00000000-0000-4000-8000-000000000000", "")
	if w.Code != 404 || errCode(out) != "not_found" {
		t.Errorf("GET unknown = %d %v, want 404 not_found", w.Code, out)
	}
}

// failClient fails the test on any call: bad input is refused first.
type failClient struct{ t *testing.T }

func (c failClient) GetMachineAction(context.Context, string) (*atp.MachineAction, error) {
	c.t.Error("GetMachineAction called")
	return nil, errors.New("unexpected")
}
func (c failClient) CancelMachineAction(context.Context, string, string) (*atp.MachineAction, error) {
	c.t.Error("CancelMachineAction called")
	return nil, errors.New("unexpected")
}
func (c failClient) GetPackageURI(context.Context, string) (string, error) {
	c.t.Error("GetPackageURI called")
	return "", errors.New("unexpected")
}

// TestBadInput: every bad request is refused in the envelope before any
// Defender call.
func TestBadInput(t *testing.T) {
	const id = "7d5f7a8e-3c2b-4f1e-9a6d-0b1c2d3e4f5a"
	tests := []struct {
		method, path, body string
		status             int
		code               envelope.Code
	}{
		{"GET", "/api/actions", "", 400, envelope.InvalidRequest},
		{"GET", "/api/actions/not-a-guid", "", 400, envelope.InvalidRequest},
		{"GET", "/api/actions/" + id + "x", "", 400, envelope.InvalidRequest},
		{"GET", "/api/actions/%41", "", 400, envelope.InvalidRequest},
		{"GET", "/api/actions/" + id + "/cancel", "", 405, envelope.MethodNotAllowed},
		{"DELETE", "/api/actions/" + id, "", 405, envelope.MethodNotAllowed},
		{"POST", "/api/actions/" + id + "/cancel", "", 400, envelope.InvalidRequest},
		{"POST", "/api/actions/" + id + "/cancel", `{"comment":" "}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions/" + id + "/cancel", `{"comment":"a\nb"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions/" + id + "/cancel", `{"comment":"c","package":true}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions/cancel", `{"comment":"c"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", ``, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `{}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `[]`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `{"id":"` + id + `","cancel":true,"package":true,"comment":"c"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `{"id":"` + id + `","comment":"only for cancel"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `{"id":"` + id + `","actionId":"00000000-0000-4000-8000-000000000000"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions/" + id, `{"id":"00000000-0000-4000-8000-000000000000"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `{"id":"` + id + `","cancel":"maybe"}`, 400, envelope.InvalidRequest},
		{"POST", "/api/actions", `{"id":"` + strings.Repeat("a", 70000) + `"}`, 413, envelope.PayloadTooLarge},
	}
	svc := &Service{Client: failClient{t}}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, "http://fn.example"+tt.path, strings.NewReader(tt.body))
		w := httptest.NewRecorder()
		svc.ServeHTTP(w, req)
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		if w.Code != tt.status || errCode(out) != string(tt.code) {
			t.Errorf("%s %s %.40s = %d %s, want %d %s", tt.method, tt.path, tt.body, w.Code, w.Body, tt.status, tt.code)
		}
		if tt.status == 405 && w.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tt.method, tt.path)
		}
	}
}

// FuzzRequest: hostile bodies and paths never panic and never reach
// Defender; a refusal is invalid_request.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"id":"7d5f7a8e-3c2b-4f1e-9a6d-0b1c2d3e4f5a","cancel":true,"comment":"c"}`, `{"id":null}`, `[]`, `{"package":"true","id":"x"}`} {
		f.Add([]byte(s), "/api/actions/7d5f7a8e-3c2b-4f1e-9a6d-0b1c2d3e4f5a/cancel")
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		id, op, err := parsePath(u)
		var r Request
		if err == nil {
			err = decode.JSON(body, &r)
		}
		var c call
		if err == nil {
			c, err = r.check(id, op)
		}
		if err != nil {
			var e *envelope.Error
			if !errors.As(err, &e) || e.Code != envelope.InvalidRequest {
				t.Errorf("%q %q: error %v, want invalid_request", path, body, err)
			}
			return
		}
		if !atp.ValidActionID(c.id) {
			t.Errorf("%q %q: accepted id %q", path, body, c.id)
		}
		if c.op == OpCancel && c.comment == "" {
			t.Errorf("%q %q: a cancellation without a comment", path, body)
		}
	})
}
