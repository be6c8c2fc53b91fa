package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

type stack struct {
	def  *defender.Server
	svc  *Service
	logs *bytes.Buffer
}

// newStack is the function on the real atp client against the Defender
// simulator over real HTTP.
func newStack(t *testing.T) *stack {
	t.Helper()
	st := &stack{def: defender.New(defender.Options{RateLimits: &defender.RateLimits{}}), logs: &bytes.Buffer{}}
	srv := httptest.NewServer(st.def)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-token"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st.svc = &Service{Client: c, Logger: slog.New(slog.NewJSONHandler(st.logs, nil))}
	return st
}

func (st *stack) post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	st.svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/alert", strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %q is not JSON", w.Body)
	}
	return w.Code, out
}

func (st *stack) patches() int { return st.def.Stats().Calls["PATCH /api/alerts/{id}"] }

// TestResolve: the ticket's verdict reaches Defender with the ticket first
// in the comment; a repeated delivery answers the same with no second PATCH
// and no second comment.
func TestResolve(t *testing.T) {
	st := newStack(t)
	id := st.def.Alerts()[0].ID
	body := `{"alertId":"` + id + `","status":"resolved","classification":"FalsePositive","determination":"NotMalicious","assignedTo":"secop2@contoso.com","comment":"benign admin script","ticket":"INC0012345"}`
	status, out := st.post(t, body)
	a, _ := out["alert"].(map[string]any)
	if status != 200 || a["status"] != "Resolved" || a["classification"] != "FalsePositive" || a["determination"] != "NotMalicious" || a["assignedTo"] != "secop2@contoso.com" {
		t.Fatalf("POST = %d %v", status, out)
	}
	got, _ := st.def.Alert(id)
	if n := len(got.Comments); n == 0 || got.Comments[n-1].Comment != "INC0012345: benign admin script" {
		t.Errorf("alert comments = %+v, want the ticket first", got.Comments)
	}
	comments := len(got.Comments)
	status, again := st.post(t, body)
	if status != 200 || again["unchanged"] != true {
		t.Errorf("repeated delivery = %d %v, want 200 unchanged", status, again)
	}
	if got, _ := st.def.Alert(id); len(got.Comments) != comments || st.patches() != 1 {
		t.Errorf("repeated delivery: %d comments (want %d), %d PATCHes (want 1)", len(got.Comments), comments, st.patches())
	}
	if !strings.Contains(st.logs.String(), `"audit":"mdefn.alert"`) || !strings.Contains(st.logs.String(), `"outcome":"unchanged"`) {
		t.Errorf("audit lines missing: %s", st.logs)
	}
	if strings.Contains(st.logs.String(), "test-token") {
		t.Errorf("the token is in the logs")
	}
}

// TestDryRunAndNotFound: a dry run sends nothing; an unknown alert is 404.
func TestDryRunAndNotFound(t *testing.T) {
	st := newStack(t)
	id := st.def.Alerts()[0].ID
	status, out := st.post(t, `{"alertId":"`+id+`","status":"InProgress","dryRun":true}`)
	req, _ := out["request"].(map[string]any)
	if status != 200 || out["dryRun"] != true || req["method"] != "PATCH" || st.patches() != 0 {
		t.Errorf("dry run = %d %v, %d PATCHes", status, out, st.patches())
	}
	st.svc.DryRun = true
	if status, out := st.post(t, `{"alertId":"`+id+`","status":"InProgress"}`); status != 200 || out["dryRun"] != true || st.patches() != 0 {
		t.Errorf("MDE_DRY_RUN = %d %v", status, out)
	}
	st.svc.DryRun = false
	if status, out := st.post(t, `{"alertId":"da000000000000000000_-1","status":"Resolved"}`); status != 404 {
		t.Errorf("unknown alert = %d %v, want 404", status, out)
	}
}

// TestDeterminationOfTheAlertsClassification: a determination alone is
// checked against the classification the alert already has.
func TestDeterminationOfTheAlertsClassification(t *testing.T) {
	st := newStack(t)
	id := st.def.Alerts()[0].ID
	if status, out := st.post(t, `{"alertId":"`+id+`","classification":"TruePositive","determination":"Malware"}`); status != 200 {
		t.Fatalf("classify = %d %v", status, out)
	}
	if status, out := st.post(t, `{"alertId":"`+id+`","determination":"NotMalicious"}`); status != 400 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "MultiStagedAttack") {
		t.Errorf("determination of another classification = %d %v, want 400 naming the allowed ones", status, out)
	}
	if status, out := st.post(t, `{"alertId":"`+id+`","determination":"Phishing"}`); status != 200 || out["alert"].(map[string]any)["determination"] != "Phishing" {
		t.Errorf("determination of the alert's classification = %d %v", status, out)
	}
}

// failClient fails the test on any call.
type failClient struct{ t *testing.T }

func (c failClient) GetAlert(context.Context, string) (*atp.Alert, error) {
	c.t.Error("GetAlert called")
	return nil, errors.New("unexpected")
}
func (c failClient) UpdateAlert(context.Context, string, atp.AlertUpdate) (*atp.Alert, error) {
	c.t.Error("UpdateAlert called")
	return nil, errors.New("unexpected")
}

// TestBadInput: refused in the envelope before any call.
func TestBadInput(t *testing.T) {
	svc := &Service{Client: failClient{t}}
	for _, body := range []string{
		``, `[]`, `{}`, `{"alertId":"a b","status":"New"}`, `{"alertId":"x"}`,
		`{"alertId":"x","status":"Closed"}`,
		`{"alertId":"x","classification":"Benign"}`,
		`{"alertId":"x","classification":"FalsePositive","determination":"Malware"}`, // Microsoft's own example pairs these
		`{"alertId":"x","determination":"Apt"}`,
		`{"alertId":"x","comment":"a\nb"}`,
		`{"alertId":"x","status":"New","dryRun":"perhaps"}`,
		`{"alertId":"x","status":"New","unknown":1}`,
	} {
		w := httptest.NewRecorder()
		svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/alert", strings.NewReader(body)))
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"invalid_request"`) {
			t.Errorf("%s = %d %s, want 400 invalid_request", body, w.Code, w.Body)
		}
	}
	w := httptest.NewRecorder()
	svc.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/alert", nil))
	if w.Code != 405 || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET = %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	// A wrong pair names the allowed determinations.
	w = httptest.NewRecorder()
	svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/alert", strings.NewReader(`{"alertId":"x","classification":"FalsePositive","determination":"Malware"}`)))
	if !strings.Contains(w.Body.String(), "NotMalicious, InsufficientData, Other") {
		t.Errorf("wrong pair message %s does not name the allowed values", w.Body)
	}
}

// FuzzRequest: hostile bodies never panic; a refusal is invalid_request;
// an accepted update holds only documented values.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"alertId":"da1_-2","status":"Resolved","classification":"TruePositive","determination":"Malware","ticket":"INC1"}`,
		`{"alertId":null}`, `[]`, `{"alertId":"x","determination":"other"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		err := decode.JSON(body, &r)
		var up update
		if err == nil {
			up, err = r.check()
		}
		if err != nil {
			var e *envelope.Error
			if !errors.As(err, &e) || e.Code != envelope.InvalidRequest {
				t.Errorf("%q: error %v, want invalid_request", body, err)
			}
			return
		}
		if !atp.ValidAlertID(up.id) || (up.u.Status != "" && !up.u.Status.Valid()) || (up.u.Classification != "" && !up.u.Classification.Valid()) ||
			(up.u.Classification != "" && up.u.Determination != "" && !up.u.Classification.Allows(up.u.Determination)) {
			t.Errorf("%q: accepted %+v", body, up)
		}
	})
}
