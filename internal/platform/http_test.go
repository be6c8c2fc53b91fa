package platform

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

func TestHTTPHandlerRoutes(t *testing.T) {
	tests := []struct {
		method, target string
		want           string // handler called, "" for none
		status         int
	}{
		{http.MethodGet, "/api/alerts?severity=High&top=5", "alerts", http.StatusOK},
		{http.MethodPost, "/api/alerts", "alerts", http.StatusOK},
		{http.MethodPost, "/api/isolate", "isolate", http.StatusOK},
		{http.MethodGet, "/api/tokencheck", "tokencheck", http.StatusOK},
		{http.MethodGet, "/api/TokenCheck/", "tokencheck", http.StatusOK},
		{http.MethodGet, "/api/openapi.json", openAPIName, http.StatusOK},
		{http.MethodGet, "/", "", http.StatusNotFound},
		{http.MethodGet, "/api/", "", http.StatusNotFound},
		{http.MethodGet, "/api/unknown", "", http.StatusNotFound},
		{http.MethodGet, "/api/alerts/extra", "", http.StatusNotFound},
		{http.MethodGet, "/alerts", "", http.StatusNotFound},
		{http.MethodPost, "/isolate-queue", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			fx := newFixture(t)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(`{"a":1}`))
			fx.app.HTTPHandler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.target, rec.Code, tt.status)
			}
			for name, f := range fx.fns {
				if n := len(f.calls()); (name == tt.want) != (n == 1) {
					t.Errorf("%s called %d times, want handler %q", name, n, tt.want)
				}
			}
			if tt.want == "" {
				var e envelope.Envelope
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != envelope.NotFound {
					t.Errorf("body = %s, want a not_found envelope", rec.Body)
				}
			}
		})
	}
}

func TestHTTPHandlerPassesRequest(t *testing.T) {
	fx := newFixture(t)
	fx.fns["alerts"].answer = answerWith(http.StatusBadGateway, `{"error":{"code":"upstream_error","message":"Defender 500"}}`)
	fx.fns["alerts"].header = http.Header{"Retry-After": {"7"}}
	req := httptest.NewRequest(http.MethodGet, "/api/alerts?severity=High,Medium&code=kept-locally", nil)
	req.Header.Set("X-Hub-Signature-256", "sha256=feed")
	rec := httptest.NewRecorder()
	fx.app.HTTPHandler().ServeHTTP(rec, req)

	if rec.Code != http.StatusBadGateway || rec.Header().Get("Retry-After") != "7" {
		t.Errorf("answer = %d Retry-After %q, want the function's 502 and 7", rec.Code, rec.Header().Get("Retry-After"))
	}
	got := fx.fns["alerts"].calls()[0]
	if got.Method != http.MethodGet || got.Path != "/api/alerts" || got.Query != "severity=High,Medium&code=kept-locally" {
		t.Errorf("request = %s %s?%s, want GET /api/alerts with the same query", got.Method, got.Path, got.Query)
	}
	if got.Header.Get("X-Hub-Signature-256") != "sha256=feed" {
		t.Errorf("signature header not passed")
	}
	if got.Info.Trigger != invocation.HTTP || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got.Info.ID) {
		t.Errorf("invocation.Info = %+v, want trigger http and a random UUID", got.Info)
	}
	if !got.HasDeadline || time.Until(got.Deadline) > fx.app.Timeout {
		t.Errorf("deadline %v, want within Timeout %v", got.Deadline, fx.app.Timeout)
	}
	lines := fx.logs.lines(t)
	if len(lines) != 1 || lines[0]["code"] != "upstream_error" || lines[0]["outcome"] != "retryable" || lines[0]["level"] != "ERROR" {
		t.Errorf("log lines = %v, want one ERROR line with code upstream_error, outcome retryable", lines)
	}
	if strings.Contains(fx.logs.String(), "feed") || strings.Contains(fx.logs.String(), "kept-locally") {
		t.Errorf("logs contain a header or query value: %s", fx.logs)
	}
}

func TestHTTPHandlerTimeout(t *testing.T) {
	fx := newFixture(t)
	fx.app.Timeout = 100 * time.Millisecond
	fx.fns["isolate"].block = true
	rec := httptest.NewRecorder()
	start := time.Now()
	fx.app.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/isolate", strings.NewReader("{}")))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v, want the invocation cut at Timeout", took)
	}
	if rec.Code != http.StatusGatewayTimeout {
		t.Errorf("status = %d, want the function's 504", rec.Code)
	}
}

type panicHandler struct{}

func (panicHandler) ServeHTTP(http.ResponseWriter, *http.Request) { panic("the secret is hunter2") }

func TestFunctionPanic(t *testing.T) {
	fx := newFixture(t)
	fx.app.Functions["alerts"] = panicHandler{}

	rec := httptest.NewRecorder()
	fx.app.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/alerts", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("HTTP status = %d, want 500", rec.Code)
	}

	ctx, _ := lambdaContext(t, "p", 5*time.Second)
	_, err := fx.app.LambdaHandler("alerts")(ctx, readTestdata(t, "lambda_direct.json"))
	if err == nil {
		t.Errorf("Lambda direct invoke of a panicking function: error nil, want internal_error")
	}

	host := postAzure(t, fx.app.AzureHandler(), "alerts-queue", readTestdata(t, "azure_queue.json"), "")
	if host.Code != http.StatusInternalServerError {
		t.Errorf("Azure queue status = %d, want 500 (retryable)", host.Code)
	}
	if strings.Contains(fx.logs.String(), "hunter2") || strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("the panic value leaked into logs or answer")
	}
}

// TestNestedRoutes: a function marked Nested answers the paths below its
// own, with the whole path; the others answer /api/<name> alone.
func TestNestedRoutes(t *testing.T) {
	var got []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path)
		w.WriteHeader(http.StatusOK)
	})
	a := &App{Functions: map[string]http.Handler{"actions": h, "alerts": h}, Nested: map[string]bool{"actions": true}}
	for path, want := range map[string]int{
		"/api/actions":             200,
		"/api/actions/abc":         200,
		"/api/Actions/abc/cancel":  200,
		"/api/actions/abc/cancel/": 200,
		"/api/alerts/abc":          404,
		"/api/nothing/abc":         404,
		"/api//abc":                404,
	} {
		w := httptest.NewRecorder()
		a.HTTPHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != want {
			t.Errorf("GET %s = %d, want %d", path, w.Code, want)
		}
	}
	if !slices.Contains(got, "/api/actions/abc/cancel/") {
		t.Errorf("the handler saw %v, want the whole nested path", got)
	}
}
