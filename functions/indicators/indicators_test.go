package indicators

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

const sha256 = "2bbca2c2b0a7fc4de1b4c2c1e5f2c3f8e7fdd7a3d2bbca2c2b0a7fc4de1b4c2c"

type stack struct {
	def  *defender.Server
	svc  *Service
	logs *bytes.Buffer
}

func newStack(t *testing.T, neverBlock string) *stack {
	t.Helper()
	st := &stack{def: defender.New(defender.Options{RateLimits: &defender.RateLimits{}}), logs: &bytes.Buffer{}}
	srv := httptest.NewServer(st.def)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-token"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	nb, err := ParseNeverBlock(neverBlock)
	if err != nil {
		t.Fatal(err)
	}
	st.svc = &Service{Client: c, NeverBlock: nb, Logger: slog.New(slog.NewJSONHandler(st.logs, nil))}
	return st
}

func (st *stack) post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	st.svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/indicators", strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %q is not JSON", w.Body)
	}
	return w.Code, out
}

func (st *stack) sent() int {
	c := st.def.Stats().Calls
	return c["POST /api/indicators"] + c["POST /api/indicators/import"] + c["DELETE /api/indicators/{id}"]
}

// TestSubmitUpdateDelete: one value is submitted (ticket first in title and
// description, expiration from a duration), a repeated delivery updates
// the same indicator, and a deletion removes it.
func TestSubmitUpdateDelete(t *testing.T) {
	st := newStack(t, "")
	body := `{"indicatorType":"filesha256","indicatorValue":"` + sha256 + `","action":"Block","title":"dropper","severity":"high","expirationTime":"30d","ticket":"INC7"}`
	status, out := st.post(t, body)
	in, _ := out["indicator"].(map[string]any)
	if status != 200 || in["indicatorType"] != "FileSha256" || in["title"] != "INC7: dropper" || in["description"] != "INC7: dropper" || in["severity"] != "High" {
		t.Fatalf("submit = %d %v", status, out)
	}
	exp, _ := time.Parse(time.RFC3339, in["expirationTime"].(string))
	if d := time.Until(exp); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("expirationTime %v, want about 30 days ahead", exp)
	}
	if status, again := st.post(t, body); status != 200 || again["indicator"].(map[string]any)["id"] != in["id"] || len(st.def.Indicators()) != 1 {
		t.Errorf("repeated delivery = %d %v, %d indicators; want the same one", status, again, len(st.def.Indicators()))
	}
	id, _ := in["id"].(string)
	if status, out := st.post(t, `{"delete":true,"id":"`+id+`","ticket":"INC7"}`); status != 200 || out["deleted"] != true || len(st.def.Indicators()) != 0 {
		t.Errorf("delete = %d %v", status, out)
	}
	if status, _ := st.post(t, `{"delete":true,"id":"`+id+`"}`); status != 404 {
		t.Errorf("second delete = %d, want 404", status)
	}
	if !strings.Contains(st.logs.String(), `"audit":"mdefn.indicators"`) || strings.Contains(st.logs.String(), "test-token") {
		t.Errorf("audit lines: %s", st.logs)
	}
}

// TestImport: a list goes in one import call, one result each.
func TestImport(t *testing.T) {
	st := newStack(t, "")
	status, out := st.post(t, `{"indicatorType":"DomainName","indicatorValue":["evil.example.com","bad.example.net","evil.example.com"],"action":"AlertAndBlock","title":"feed"}`)
	res, _ := out["results"].([]any)
	if status != 200 || len(res) != 2 || st.def.Stats().Calls["POST /api/indicators/import"] != 1 || len(st.def.Indicators()) != 2 {
		t.Errorf("import = %d %v", status, out)
	}
}

// TestNeverBlock: a blocking action on a protected value is 403 with
// nothing sent; an alert-only one is not blocking.
func TestNeverBlock(t *testing.T) {
	st := newStack(t, "contoso.com, mail.fabrikam.com, 10.0.0.0/8, 2001:db8::1, "+sha256)
	for _, body := range []string{
		`{"indicatorType":"DomainName","indicatorValue":"login.contoso.com","action":"Block","title":"t"}`,
		`{"indicatorType":"DomainName","indicatorValue":"fabrikam.com","action":"Block","title":"t"}`, // a parent of a protected domain
		`{"indicatorType":"Url","indicatorValue":"https://www.contoso.com/x","action":"Warn","title":"t"}`,
		`{"indicatorType":"IpAddress","indicatorValue":["198.51.100.7","10.1.2.3"],"action":"BlockAndRemediate","title":"t"}`,
		`{"indicatorType":"Url","indicatorValue":"http://[2001:db8::1]/","action":"Block","title":"t"}`,
		`{"indicatorType":"FileSha256","indicatorValue":"` + strings.ToUpper(sha256) + `","action":"AlertAndBlock","title":"t"}`,
	} {
		if status, out := st.post(t, body); status != 403 || out["error"].(map[string]any)["code"] != "protected_indicator" {
			t.Errorf("%s = %d %v, want 403 protected_indicator", body, status, out)
		}
	}
	if st.sent() != 0 {
		t.Errorf("refused requests sent %d calls", st.sent())
	}
	if status, out := st.post(t, `{"indicatorType":"DomainName","indicatorValue":"login.contoso.com","action":"Audit","title":"t"}`); status != 200 {
		t.Errorf("an audit of a protected domain = %d %v, want 200", status, out)
	}
	if status, out := st.post(t, `{"indicatorType":"DomainName","indicatorValue":"notcontoso.com","action":"Block","title":"t"}`); status != 200 {
		t.Errorf("a lookalike domain = %d %v, want 200 (not covered)", status, out)
	}
}

// TestDryRun: nothing is sent; the planned request is shown.
func TestDryRun(t *testing.T) {
	st := newStack(t, "")
	status, out := st.post(t, `{"indicatorType":"IpAddress","indicatorValue":"198.51.100.7","action":"Block","title":"c2","dryRun":true}`)
	if req, _ := out["request"].(map[string]any); status != 200 || out["dryRun"] != true || req["path"] != "/api/indicators" || st.sent() != 0 {
		t.Errorf("dry run = %d %v, %d sent", status, out, st.sent())
	}
	st.svc.DryRun = true
	if status, out := st.post(t, `{"delete":true,"id":"5"}`); status != 200 || out["dryRun"] != true || st.sent() != 0 {
		t.Errorf("MDE_DRY_RUN delete = %d %v", status, out)
	}
}

type failClient struct{ t *testing.T }

func (c failClient) SubmitIndicator(context.Context, atp.Indicator) (*atp.Indicator, error) {
	c.t.Error("SubmitIndicator called")
	return nil, errors.New("unexpected")
}
func (c failClient) ImportIndicators(context.Context, []atp.Indicator) ([]atp.ImportResult, error) {
	c.t.Error("ImportIndicators called")
	return nil, errors.New("unexpected")
}
func (c failClient) DeleteIndicator(context.Context, string) error {
	c.t.Error("DeleteIndicator called")
	return errors.New("unexpected")
}

// TestBadInput: every value is checked by type before any call.
func TestBadInput(t *testing.T) {
	svc := &Service{Client: failClient{t}}
	many := `"` + strings.Repeat(`1.2.3.4","`, 500) + `1.2.3.5"`
	for _, body := range []string{
		``, `[]`, `{}`,
		`{"indicatorType":"FileSha1","indicatorValue":"abc","action":"Block","title":"t"}`,
		`{"indicatorType":"FileSha256","indicatorValue":"` + strings.Repeat("z", 64) + `","action":"Block","title":"t"}`,
		`{"indicatorType":"FileMd5","indicatorValue":"` + sha256 + `","action":"Block","title":"t"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"300.1.1.1","action":"Block","title":"t"}`,
		`{"indicatorType":"DomainName","indicatorValue":"not a domain","action":"Block","title":"t"}`,
		`{"indicatorType":"Url","indicatorValue":"ftp://x.example/","action":"Block","title":"t"}`,
		`{"indicatorType":"Url","indicatorValue":"/relative","action":"Block","title":"t"}`,
		`{"indicatorType":"Hostname","indicatorValue":"x","action":"Block","title":"t"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"1.2.3.4","action":"Quarantine","title":"t"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"1.2.3.4","action":"Block"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"1.2.3.4","action":"Block","title":"t","expirationTime":"2020-01-01T00:00:00Z"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"1.2.3.4","action":"Block","title":"t","expirationTime":"soon"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"1.2.3.4","action":"Block","title":"t","severity":"Severe"}`,
		`{"indicatorType":"IpAddress","indicatorValue":[` + many + `],"action":"Block","title":"t"}`,
		`{"indicatorType":"IpAddress","indicatorValue":"1.2.3.4","action":"Block","title":"t","id":"5"}`,
		`{"delete":true}`, `{"delete":true,"id":"abc"}`, `{"delete":true,"id":"5","indicatorValue":"1.2.3.4"}`,
	} {
		w := httptest.NewRecorder()
		svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/indicators", strings.NewReader(body)))
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"invalid_request"`) {
			t.Errorf("%.80s = %d %s, want 400 invalid_request", body, w.Code, w.Body)
		}
	}
}

func TestParseNeverBlock(t *testing.T) {
	if _, err := ParseNeverBlock("contoso.com, 10.0.0.0/8, ::1, *.fabrikam.com," + sha256); err != nil {
		t.Errorf("ParseNeverBlock: %v", err)
	}
	for _, bad := range []string{"not a domain", "10.0.0.0/99", "http://x"} {
		if _, err := ParseNeverBlock(bad); err == nil {
			t.Errorf("ParseNeverBlock(%q) = nil error", bad)
		}
	}
}

// FuzzRequest: hostile bodies never panic; a refusal is invalid_request;
// an accepted submission holds only values valid for its type.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"indicatorType":"Url","indicatorValue":["https://x.example/a,b"],"action":"Block","title":"t"}`,
		`{"delete":"true","id":"7"}`, `[]`, `{"indicatorValue":null}`} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		err := decode.JSON(body, &r)
		var p plan
		if err == nil {
			p, err = r.check(now)
		}
		if err != nil {
			var e *envelope.Error
			if !errors.As(err, &e) || e.Code != envelope.InvalidRequest {
				t.Errorf("%q: error %v, want invalid_request", body, err)
			}
			return
		}
		if p.del == "" && len(p.indicators) == 0 {
			t.Errorf("%q: accepted with nothing to do", body)
		}
		for _, in := range p.indicators {
			if atp.ValidIndicatorValue(in.IndicatorType, in.IndicatorValue) != nil {
				t.Errorf("%q: accepted %+v", body, in)
			}
		}
	})
}
