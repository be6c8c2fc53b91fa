package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

var base = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

type fixture struct {
	def  *defender.Server
	svc  *Service
	logs *bytes.Buffer
	now  time.Time
	mu   sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// newFixture serves the Defender fake over real HTTP and builds the
// function on the real atp client. principal nil means all roles.
func newFixture(t *testing.T, cfg action.Settings, principal *defender.Principal) *fixture {
	t.Helper()
	f := &fixture{logs: &bytes.Buffer{}, now: base}
	opts := defender.Options{Now: f.clock, RateLimits: &defender.RateLimits{}}
	if principal != nil {
		p := *principal
		opts.Authorize = func(*http.Request) (defender.Principal, error) { return p, nil }
	}
	f.def = defender.New(opts)
	srv := httptest.NewServer(f.def)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-token"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: f.logs}, nil))
	f.svc = &Service{
		Client: c,
		Runner: &action.Runner{
			Client:    c,
			Settings:  cfg,
			Requestor: func(context.Context) (string, error) { return defender.DefaultAppID, nil },
			Logger:    logger,
			Now:       f.clock,
		},
		Logger: logger,
	}
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// post sends body to the function's handler in-process.
func (f *fixture) post(t *testing.T, body string) (int, map[string]any, http.Header) {
	t.Helper()
	w := httptest.NewRecorder()
	f.svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/isolate", strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %q is not JSON: %v", w.Body, err)
	}
	return w.Code, out, w.Header()
}

func (f *fixture) posts() int {
	n := 0
	for k, v := range f.def.Stats().Calls {
		if strings.HasPrefix(k, "POST ") {
			n += v
		}
	}
	return n
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func actionOf(out map[string]any) map[string]any {
	a, _ := out["action"].(map[string]any)
	return a
}

func TestIsolate(t *testing.T) {
	tests := []struct {
		name        string
		cfg         action.Settings
		body        string
		wantStatus  int
		wantCode    string
		wantMachine string
		wantType    string
		wantComment string
		wantPosts   int
	}{
		{name: "by machineId", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"beaconing","ticket":"INC0012345"}`,
			wantStatus: 201, wantMachine: defender.KnownIPMachineID, wantType: "Isolate", wantComment: "INC0012345: beaconing", wantPosts: 1},
		{name: "ticket already in the comment", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"INC0012345 beaconing","ticket":"INC0012345"}`,
			wantStatus: 201, wantMachine: defender.KnownIPMachineID, wantType: "Isolate", wantComment: "INC0012345 beaconing", wantPosts: 1},
		{name: "by machineId upper case", body: `{"machineId":"` + strings.ToUpper(defender.UniqueMachineID) + `","comment":"x"}`,
			wantStatus: 201, wantMachine: defender.UniqueMachineID, wantType: "Isolate", wantComment: "x", wantPosts: 1},
		{name: "by FQDN", body: `{"deviceName":"` + defender.UniqueFQDN + `","comment":"x","isolationType":"selective"}`,
			wantStatus: 201, wantMachine: defender.UniqueMachineID, wantType: "Isolate", wantPosts: 1},
		{name: "by host label", body: `{"deviceName":"` + strings.ToUpper(defender.UniqueHostLabel) + `","comment":"x"}`,
			wantStatus: 201, wantMachine: defender.UniqueMachineID, wantType: "Isolate", wantPosts: 1},
		{name: "merged record set aside", body: `{"deviceName":"` + defender.MergedDNSName + `","comment":"x"}`,
			wantStatus: 201, wantMachine: defender.MergedNewMachineID, wantType: "Isolate", wantPosts: 1},
		{name: "by IP address", body: `{"ipAddress":"` + defender.KnownIP + `","comment":"x"}`,
			wantStatus: 201, wantMachine: defender.KnownIPMachineID, wantType: "Isolate", wantPosts: 1},
		{name: "release", body: `{"machineId":"` + defender.IsolatedMachineID + `","comment":"cleared","release":true,"isolationType":"bogus-ignored"}`,
			wantStatus: 201, wantMachine: defender.IsolatedMachineID, wantType: "Unisolate", wantComment: "cleared", wantPosts: 1},
		{name: "ambiguous name", body: `{"deviceName":"` + defender.AmbiguousDNSName + `","comment":"x"}`,
			wantStatus: 409, wantCode: "ambiguous_device"},
		{name: "protected device", cfg: action.Settings{ProtectedTags: []string{"dc"}}, body: `{"deviceName":"` + defender.DCDNSName + `","comment":"x"}`,
			wantStatus: 403, wantCode: "protected_device"},
		{name: "protected device by id", cfg: action.Settings{ProtectedTags: []string{"other", defender.ProtectedTag}}, body: `{"machineId":"` + defender.PayrollMachineID + `","comment":"x"}`,
			wantStatus: 403, wantCode: "protected_device"},
		{name: "protected device released", cfg: action.Settings{ProtectedTags: []string{defender.ProtectedTag}}, body: `{"machineId":"` + defender.DCMachineID + `","comment":"x","release":true}`,
			wantStatus: 201, wantMachine: defender.DCMachineID, wantType: "Unisolate", wantPosts: 1},
		{name: "dry run by request", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"x","dryRun":true}`,
			wantStatus: 200, wantMachine: defender.KnownIPMachineID},
		{name: "dry run by config", cfg: action.Settings{DryRun: true}, body: `{"deviceName":"` + defender.UniqueFQDN + `","comment":"x"}`,
			wantStatus: 200, wantMachine: defender.UniqueMachineID},
		{name: "unknown machine", body: `{"machineId":"` + strings.Repeat("0", 40) + `","comment":"x"}`, wantStatus: 404, wantCode: "not_found"},
		{name: "unknown name", body: `{"deviceName":"nosuchhost","comment":"x"}`, wantStatus: 404, wantCode: "not_found"},
		{name: "unknown IP", body: `{"ipAddress":"192.0.2.77","comment":"x"}`, wantStatus: 404, wantCode: "not_found"},
		{name: "bad machineId", body: `{"machineId":"1234","comment":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "machineId with OData", body: `{"machineId":"aa00000000000000000000000000000000000001' or 1 eq 1","comment":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "two identifiers", body: `{"machineId":"` + defender.KnownIPMachineID + `","deviceName":"x","comment":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "no identifier", body: `{"comment":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "no comment", body: `{"machineId":"` + defender.KnownIPMachineID + `"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "blank comment", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"   "}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "comment with a line break", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"a\nb"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "comment too long", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"` + strings.Repeat("é", action.MaxCommentLength+1) + `"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "ticket with control character", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"x","ticket":"INC\u0007"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "bad isolation type", body: `{"machineId":"` + defender.KnownIPMachineID + `","comment":"x","isolationType":"Partial"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "bad device name", body: `{"deviceName":"ws'01","comment":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "bad IP", body: `{"ipAddress":"10.1.2.300","comment":"x"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown field", body: `{"machineID":"` + defender.KnownIPMachineID + `","comment":"x","force":true}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "not JSON", body: `machineId=1`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "empty body", body: ``, wantStatus: 400, wantCode: "invalid_request"},
		{name: "JSON array", body: `[]`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "release as string", body: `{"machineId":"` + defender.IsolatedMachineID + `","comment":"x","release":"true"}`,
			wantStatus: 201, wantMachine: defender.IsolatedMachineID, wantType: "Unisolate", wantPosts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.cfg, nil)
			status, out, _ := f.post(t, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("POST %s = %d %v, want %d", tt.body, status, out, tt.wantStatus)
			}
			if got := errCode(out); got != tt.wantCode {
				t.Errorf("error code = %q, want %q", got, tt.wantCode)
			}
			if got := f.posts(); got != tt.wantPosts {
				t.Errorf("Defender POSTs = %d, want %d", got, tt.wantPosts)
			}
			if tt.wantStatus >= 300 {
				return
			}
			m, _ := out["machine"].(map[string]any)
			if m["id"] != tt.wantMachine {
				t.Errorf("machine.id = %v, want %v", m["id"], tt.wantMachine)
			}
			if tt.wantStatus == 200 {
				if out["dryRun"] != true {
					t.Errorf("dryRun = %v, want true", out["dryRun"])
				}
				req, _ := out["request"].(map[string]any)
				if req["method"] != "POST" || !strings.HasSuffix(req["path"].(string), "/isolate") {
					t.Errorf("dry run request = %v", req)
				}
				return
			}
			a := actionOf(out)
			if a["type"] != tt.wantType || a["machineId"] != tt.wantMachine || a["status"] != "Pending" {
				t.Errorf("action = %v, want a Pending %s on %s", a, tt.wantType, tt.wantMachine)
			}
			if tt.wantComment != "" && a["requestorComment"] != tt.wantComment {
				t.Errorf("requestorComment = %q, want %q", a["requestorComment"], tt.wantComment)
			}
		})
	}
}

func TestAmbiguousCandidates(t *testing.T) {
	f := newFixture(t, action.Settings{}, nil)
	_, out, _ := f.post(t, `{"deviceName":"`+defender.AmbiguousDNSName+`","comment":"x"}`)
	e := out["error"].(map[string]any)
	var ids []string
	for _, c := range e["candidates"].([]any) {
		c := c.(map[string]any)
		ids = append(ids, c["id"].(string))
		if c["computerDnsName"] != defender.AmbiguousDNSName || c["lastSeen"] == "" {
			t.Errorf("candidate %v lacks computerDnsName or lastSeen", c)
		}
	}
	if diff := cmp.Diff([]string{defender.AmbiguousMachineID1, defender.AmbiguousMachineID2}, ids); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
}

func TestRepeatedDeliveryIsAlreadyPending(t *testing.T) {
	for _, budget := range []int{0, 1} {
		f := newFixture(t, action.Settings{MaxIsolationsPerHour: budget}, nil)
		body := `{"machineId":"` + defender.KnownIPMachineID + `","comment":"x","ticket":"INC1"}`
		status, first, _ := f.post(t, body)
		if status != 201 {
			t.Fatalf("first delivery = %d %v, want 201", status, first)
		}
		status, again, _ := f.post(t, body)
		if status != 200 || again["alreadyPending"] != true {
			t.Fatalf("budget %d: second delivery = %d %v, want 200 alreadyPending", budget, status, again)
		}
		if actionOf(again)["id"] != actionOf(first)["id"] {
			t.Errorf("second delivery names action %v, want %v", actionOf(again)["id"], actionOf(first)["id"])
		}
		if got := len(f.def.Actions()); got != 1 {
			t.Errorf("Defender has %d actions, want 1", got)
		}
		// A release while the isolation is pending is refused by Defender:
		// that is not success, and must not be reported as such.
		status, rel, _ := f.post(t, `{"machineId":"`+defender.KnownIPMachineID+`","comment":"x","release":true}`)
		if status != 502 || errCode(rel) != "upstream_error" {
			t.Errorf("release during a pending isolation = %d %v, want 502 upstream_error", status, rel)
		}
		// Once the isolation completed, isolating again creates a new action.
		f.advance(time.Hour)
		if status, _, _ := f.post(t, `{"machineId":"`+defender.KnownIPMachineID+`","comment":"x","release":true}`); status != 201 {
			t.Errorf("release after completion = %d, want 201", status)
		}
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	f := newFixture(t, action.Settings{}, nil)
	body := `{"machineId":"` + defender.UniqueMachineID + `","comment":"storm","ticket":"INC9"}`
	const n = 100
	var wg sync.WaitGroup
	ids := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			f.svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/isolate", strings.NewReader(body)))
			statuses[i] = w.Code
			var out map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &out)
			if a := actionOf(out); a != nil {
				ids[i], _ = a["id"].(string)
			}
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if statuses[i] == 201 {
			created++
		} else if statuses[i] != 200 {
			t.Errorf("delivery %d answered %d", i, statuses[i])
		}
		if ids[i] == "" || ids[i] != ids[0] {
			t.Errorf("delivery %d names action %q, want %q", i, ids[i], ids[0])
		}
	}
	if created != 1 {
		t.Errorf("%d deliveries answered 201, want 1", created)
	}
	if got := len(f.def.Actions()); got != 1 {
		t.Errorf("Defender has %d actions, want exactly 1", got)
	}
}

func TestBudget(t *testing.T) {
	f := newFixture(t, action.Settings{MaxIsolationsPerHour: 3}, nil)
	machines := []string{defender.KnownIPMachineID, defender.UniqueMachineID, defender.MergedNewMachineID, defender.AmbiguousMachineID1, defender.AmbiguousMachineID2}
	for i, id := range machines[:3] {
		if status, out, _ := f.post(t, `{"machineId":"`+id+`","comment":"x"}`); status != 201 {
			t.Fatalf("isolation %d = %d %v, want 201", i, status, out)
		}
		f.advance(10 * time.Minute)
	}
	// 20 minutes after the third, the first left the window 60 minutes after it was made: 30 more minutes.
	status, out, h := f.post(t, `{"machineId":"`+machines[3]+`","comment":"x"}`)
	if status != 429 || errCode(out) != "isolation_budget_exceeded" {
		t.Fatalf("fourth isolation = %d %v, want 429 isolation_budget_exceeded", status, out)
	}
	if got := h.Get("Retry-After"); got != "1800" {
		t.Errorf("Retry-After = %q, want 1800", got)
	}
	if got := len(f.def.Actions()); got != 3 {
		t.Errorf("Defender has %d actions, want 3", got)
	}
	// Releases are never blocked by the budget.
	if status, out, _ := f.post(t, `{"machineId":"`+defender.IsolatedMachineID+`","comment":"x","release":true}`); status != 201 {
		t.Errorf("release over budget = %d %v, want 201", status, out)
	}
	f.advance(31 * time.Minute)
	if status, out, _ := f.post(t, `{"machineId":"`+machines[4]+`","comment":"x"}`); status != 201 {
		t.Errorf("isolation after the window moved = %d %v, want 201", status, out)
	}
}

func TestForbidden(t *testing.T) {
	readOnly := &defender.Principal{TenantID: defender.SeedTenantID, AppID: defender.DefaultAppID, Roles: []string{"Machine.Read.All", "Alert.Read.All"}}
	f := newFixture(t, action.Settings{}, readOnly)
	status, out, _ := f.post(t, `{"machineId":"`+defender.KnownIPMachineID+`","comment":"x"}`)
	if status != 403 || errCode(out) != "forbidden" {
		t.Fatalf("isolate without Machine.Isolate = %d %v, want 403 forbidden", status, out)
	}
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "Machine.Isolate") {
		t.Errorf("message %q does not name Machine.Isolate", msg)
	}

	// Machine.Isolate alone isolates by machineId.
	isolateOnly := &defender.Principal{TenantID: defender.SeedTenantID, AppID: defender.DefaultAppID, Roles: []string{"Machine.Isolate"}}
	f = newFixture(t, action.Settings{}, isolateOnly)
	if status, out, _ := f.post(t, `{"machineId":"`+defender.KnownIPMachineID+`","comment":"x"}`); status != 201 {
		t.Errorf("isolate by id with Machine.Isolate only = %d %v, want 201", status, out)
	}
	// ...but not by name, and not when protected tags must be read.
	if status, out, _ := f.post(t, `{"deviceName":"`+defender.UniqueFQDN+`","comment":"x"}`); status != 403 {
		t.Errorf("isolate by name with Machine.Isolate only = %d %v, want 403", status, out)
	}
	f = newFixture(t, action.Settings{ProtectedTags: []string{"protected"}}, isolateOnly)
	if status, out, _ := f.post(t, `{"machineId":"`+defender.PayrollMachineID+`","comment":"x"}`); status != 403 || errCode(out) != "forbidden" {
		t.Errorf("protected tags without Machine.Read.All = %d %v, want 403 forbidden (fail closed)", status, out)
	}
	if f.posts() != 0 {
		t.Errorf("Defender POSTs = %d, want 0", f.posts())
	}
}

func TestAuditLine(t *testing.T) {
	f := newFixture(t, action.Settings{}, nil)
	status, out, _ := f.post(t, `{"machineId":"`+defender.KnownIPMachineID+`","comment":"x","ticket":"INC42"}`)
	if status != 201 {
		t.Fatalf("isolate = %d %v", status, out)
	}
	var line map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(f.logs.Bytes()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["audit"] == "mdefn.isolate" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no audit line in %s", f.logs)
	}
	want := map[string]any{"function": "isolate", "ticket": "INC42", "machineId": defender.KnownIPMachineID,
		"actionId": actionOf(out)["id"], "outcome": "created", "action": "isolate"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("audit %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["invocationId"]; !ok {
		t.Error("audit line has no invocationId")
	}
}

func TestMethod(t *testing.T) {
	f := newFixture(t, action.Settings{}, nil)
	w := httptest.NewRecorder()
	f.svc.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/isolate", nil))
	if w.Code != 405 || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET = %d Allow %q, want 405 Allow POST", w.Code, w.Header().Get("Allow"))
	}
	var env envelope.Envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error.Code != envelope.MethodNotAllowed {
		t.Errorf("GET body = %s, want the method_not_allowed envelope", w.Body)
	}
}
