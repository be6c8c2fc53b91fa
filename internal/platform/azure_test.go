package platform

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// postAzure sends a host invocation to the custom handler.
func postAzure(t *testing.T, h http.Handler, folder string, payload []byte, invocationID string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/"+folder, bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	if invocationID != "" {
		req.Header.Set(invocationIDHeader, invocationID)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type hostAnswer struct {
	Outputs struct {
		Res *azureHTTPResponse `json:"res"`
	} `json:"Outputs"`
	Logs        []string        `json:"Logs"`
	ReturnValue json.RawMessage `json:"ReturnValue"`
}

func decodeHostAnswer(t *testing.T, rec *httptest.ResponseRecorder) hostAnswer {
	t.Helper()
	var a hostAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("host answer %q is not JSON: %v", rec.Body.String(), err)
	}
	return a
}

func TestAzureDeliveries(t *testing.T) {
	tests := []struct {
		file     string
		folder   string
		function string
		trigger  invocation.Trigger
		method   string
		path     string
		query    url.Values
		body     string
		header   map[string]string // headers the function must see
	}{
		{
			file: "azure_http_get.json", folder: "alerts", function: "alerts", trigger: invocation.HTTP,
			method: "GET", path: "/api/alerts", query: url.Values{"severity": {"High,Medium"}, "since": {"24h"}},
			header: map[string]string{"X-Hub-Signature-256": "sha256=5a3f1c0e2b0d7e5bd1ad6f1d8d6b1f3f0c7b2a6e9d4c3b2a1f0e9d8c7b6a5f4e", "Accept": "application/json"},
		},
		{
			file: "azure_http_post.json", folder: "isolate", function: "isolate", trigger: invocation.HTTP,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body:   `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"Ransomware on host","ticket":"INC0012345"}`,
			header: map[string]string{"Content-Type": "application/json"},
		},
		{
			file: "azure_http_base64.json", folder: "tokencheck-binary", function: "tokencheck", trigger: invocation.HTTP,
			method: "POST", path: "/api/tokencheck", query: url.Values{},
			body: `{"token":"eyJ0eXAiOiJKV1QifQ.e30."}`,
		},
		{
			file: "azure_queue.json", folder: "isolate-queue", function: "isolate", trigger: invocation.Queue,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body:   `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"Isolated by SOAR playbook 42","isolationType":"Selective"}`,
			header: map[string]string{"Content-Type": "application/json"},
		},
		{
			file: "azure_queue_double.json", folder: "isolate-queue", function: "isolate", trigger: invocation.Queue,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body: `{"deviceName":"ws-042.contoso.local","comment":"double encoded by the sender"}`,
		},
		{
			file: "azure_servicebus.json", folder: "isolate-servicebus", function: "isolate", trigger: invocation.ServiceBus,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body: `{"ipAddress":"10.1.2.3","comment":"Isolated from the ticketing bus","release":false}`,
		},
		{
			file: "azure_eventgrid.json", folder: "alerts-eventgrid", function: "alerts", trigger: invocation.EventGrid,
			method: "POST", path: "/api/alerts", query: url.Values{},
			body: `{"severity":["High"],"status":["New"],"since":"1h"}`,
		},
		{
			file: "azure_cloudevent.json", folder: "isolate-eventgrid", function: "isolate", trigger: invocation.EventGrid,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body: `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"CloudEvents delivery","release":true}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fx := newFixture(t)
			rec := postAzure(t, fx.app.AzureHandler(), tt.folder, readTestdata(t, tt.file), "3e1b6d0c-"+tt.folder)
			if rec.Code != http.StatusOK {
				t.Fatalf("POST /%s = %d %s, want 200", tt.folder, rec.Code, rec.Body)
			}
			calls := fx.fns[tt.function].calls()
			if len(calls) != 1 {
				t.Fatalf("function %s called %d times, want 1", tt.function, len(calls))
			}
			got := calls[0]
			if got.Method != tt.method || got.Path != tt.path {
				t.Errorf("request = %s %s, want %s %s", got.Method, got.Path, tt.method, tt.path)
			}
			q, err := url.ParseQuery(got.Query)
			if err != nil {
				t.Fatalf("query %q: %v", got.Query, err)
			}
			if diff := cmp.Diff(tt.query, q); diff != "" {
				t.Errorf("query mismatch (-want +got):\n%s", diff)
			}
			if tt.body == "" {
				if got.Body != "" {
					t.Errorf("body = %q, want empty", got.Body)
				}
			} else if !jsonEqual(t, got.Body, tt.body) {
				t.Errorf("body = %s, want %s", got.Body, tt.body)
			}
			for k, v := range tt.header {
				if g := got.Header.Get(k); g != v {
					t.Errorf("header %s = %q, want %q", k, g, v)
				}
			}
			want := invocation.Info{ID: "3e1b6d0c-" + tt.folder, Trigger: tt.trigger}
			if got.Info != want {
				t.Errorf("invocation.Info = %+v, want %+v", got.Info, want)
			}
			if !got.HasDeadline || time.Until(got.Deadline) > fx.app.Timeout {
				t.Errorf("deadline = %v (set %v), want within %v", got.Deadline, got.HasDeadline, fx.app.Timeout)
			}
			for name, f := range fx.fns {
				if name != tt.function && len(f.calls()) != 0 {
					t.Errorf("function %s called, want only %s", name, tt.function)
				}
			}
		})
	}
}

func TestAzureHTTPAnswer(t *testing.T) {
	statuses := []struct {
		status int
		body   string
	}{
		{http.StatusOK, `{"value":[],"count":0}`},
		{http.StatusForbidden, `{"error":{"code":"forbidden","message":"the token lacks Alert.Read.All"}}`},
		{http.StatusTooManyRequests, `{"error":{"code":"throttled","message":"retry later"}}`},
		{http.StatusBadGateway, `{"error":{"code":"upstream_error","message":"Defender answered 500"}}`},
	}
	for _, s := range statuses {
		t.Run(http.StatusText(s.status), func(t *testing.T) {
			fx := newFixture(t)
			fx.fns["alerts"].answer = answerWith(s.status, s.body)
			fx.fns["alerts"].header = http.Header{"Retry-After": {"30"}}
			rec := postAzure(t, fx.app.AzureHandler(), "alerts", readTestdata(t, "azure_http_get.json"), "")
			if rec.Code != http.StatusOK {
				t.Fatalf("host status = %d, want 200 for an HTTP trigger", rec.Code)
			}
			a := decodeHostAnswer(t, rec)
			want := &azureHTTPResponse{
				StatusCode: s.status,
				Headers:    map[string]string{"Content-Type": "application/json", "Retry-After": "30"},
				Body:       s.body,
			}
			if diff := cmp.Diff(want, a.Outputs.Res); diff != "" {
				t.Errorf("Outputs.res mismatch (-want +got):\n%s", diff)
			}
			var ret azureHTTPResponse
			if err := json.Unmarshal(a.ReturnValue, &ret); err != nil || !cmp.Equal(*want, ret) {
				t.Errorf("ReturnValue = %s, want the same response as Outputs.res", a.ReturnValue)
			}
			if len(a.Logs) == 0 || !strings.Contains(a.Logs[0], "alerts") {
				t.Errorf("Logs = %q, want a line naming the function", a.Logs)
			}
		})
	}
}

func TestAzureNonHTTPOutcome(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
	}{
		{"created", http.StatusCreated, `{"action":{"id":"a1"}}`, http.StatusOK},
		{"invalid", http.StatusBadRequest, `{"error":{"code":"invalid_request","message":"comment is required"}}`, http.StatusOK},
		{"protected", http.StatusForbidden, `{"error":{"code":"protected_device","message":"tag"}}`, http.StatusOK},
		{"budget", http.StatusTooManyRequests, `{"error":{"code":"isolation_budget_exceeded","message":"cap"}}`, http.StatusOK},
		{"throttled", http.StatusTooManyRequests, `{"error":{"code":"throttled","message":"later"}}`, http.StatusInternalServerError},
		{"upstream", http.StatusBadGateway, `{"error":{"code":"upstream_error","message":"500"}}`, http.StatusInternalServerError},
		{"timeout", http.StatusGatewayTimeout, `{"error":{"code":"upstream_timeout","message":"slow"}}`, http.StatusInternalServerError},
		{"not an envelope", http.StatusServiceUnavailable, `oops`, http.StatusInternalServerError},
	}
	for _, file := range []string{"azure_queue.json", "azure_servicebus.json", "azure_cloudevent.json"} {
		for _, tt := range tests {
			t.Run(file+"/"+tt.name, func(t *testing.T) {
				fx := newFixture(t)
				fx.fns["isolate"].answer = answerWith(tt.status, tt.body)
				rec := postAzure(t, fx.app.AzureHandler(), "isolate-x", readTestdata(t, file), "")
				if rec.Code != tt.wantStatus {
					t.Errorf("host status = %d, want %d", rec.Code, tt.wantStatus)
				}
				a := decodeHostAnswer(t, rec)
				if a.Outputs.Res != nil {
					t.Errorf("Outputs.res = %+v, want none for a non-HTTP trigger", a.Outputs.Res)
				}
				if string(a.ReturnValue) != "null" {
					t.Errorf("ReturnValue = %s, want null", a.ReturnValue)
				}
				if len(a.Logs) != 1 {
					t.Errorf("Logs = %q, want one line", a.Logs)
				}
			})
		}
	}
}

func TestAzureFolders(t *testing.T) {
	tests := []struct {
		path   string
		method string
		want   string // function called, "" for none
		status int
	}{
		{"/alerts", http.MethodPost, "alerts", http.StatusOK},
		{"/isolate", http.MethodPost, "isolate", http.StatusOK},
		{"/tokencheck", http.MethodPost, "tokencheck", http.StatusOK},
		{"/isolate-queue", http.MethodPost, "isolate", http.StatusOK},
		{"/Isolate-Queue", http.MethodPost, "isolate", http.StatusOK},
		{"/alerts-eventgrid", http.MethodPost, "alerts", http.StatusOK},
		{"/tokencheck-servicebus-2", http.MethodPost, "tokencheck", http.StatusOK},
		{"/isolate-", http.MethodPost, "", http.StatusNotFound},
		{"/isolatequeue", http.MethodPost, "", http.StatusNotFound},
		{"/queue-isolate", http.MethodPost, "", http.StatusNotFound},
		{"/isolate-queue/extra", http.MethodPost, "", http.StatusNotFound},
		{"/openapi", http.MethodPost, "", http.StatusNotFound},
		{"/isolate", http.MethodGet, "", http.StatusMethodNotAllowed},
	}
	payload := readTestdata(t, "azure_queue.json")
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			fx := newFixture(t)
			req := httptest.NewRequest(tt.method, tt.path, bytes.NewReader(payload))
			rec := httptest.NewRecorder()
			fx.app.AzureHandler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.status)
			}
			for name, f := range fx.fns {
				if n := len(f.calls()); (name == tt.want) != (n == 1) {
					t.Errorf("%s %s called %s %d times, want function %q", tt.method, tt.path, name, n, tt.want)
				}
			}
			if tt.status != http.StatusOK {
				var e envelope.Envelope
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
					t.Errorf("body = %s, want an error envelope", rec.Body)
				}
			}
		})
	}
}

func TestAzureReadyAndRawHTTP(t *testing.T) {
	fx := newFixture(t)
	h := fx.app.AzureHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET / = %d, want 200", rec.Code)
	}

	body := `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"raw"}`
	req := httptest.NewRequest(http.MethodPost, "/api/isolate?code=functionkey&dryRun=true", strings.NewReader(body))
	req.Header.Set(invocationIDHeader, "f0e1d2c3-raw")
	req.Header.Set("X-Hub-Signature-256", "sha256=abc")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /api/isolate = %d, want the function's 200", rec.Code)
	}
	calls := fx.fns["isolate"].calls()
	if len(calls) != 1 {
		t.Fatalf("isolate called %d times, want 1", len(calls))
	}
	got := calls[0]
	if got.Query != "dryRun=true" {
		t.Errorf("query = %q, want the function key removed: %q", got.Query, "dryRun=true")
	}
	if got.Body != body || got.Header.Get("X-Hub-Signature-256") != "sha256=abc" {
		t.Errorf("request body/header not passed through: %q %v", got.Body, got.Header)
	}
	if want := (invocation.Info{ID: "f0e1d2c3-raw", Trigger: invocation.HTTP}); got.Info != want {
		t.Errorf("invocation.Info = %+v, want %+v", got.Info, want)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil))
	if rec.Code != http.StatusOK || len(fx.fns[openAPIName].calls()) != 1 {
		t.Errorf("GET /api/openapi.json = %d, openapi calls %d; want 200 from the OpenAPI handler", rec.Code, len(fx.fns[openAPIName].calls()))
	}
}

func TestAzureBadPayloads(t *testing.T) {
	huge := append([]byte(`{"Data":{"msg":"`), bytes.Repeat([]byte("a"), maxPayload)...)
	huge = append(huge, `"}}`...)
	tests := []struct {
		name    string
		payload string
		code    envelope.Code
	}{
		{"garbage", "\x00\xff not json", envelope.InvalidRequest},
		{"empty", "", envelope.InvalidRequest},
		{"null", "null", envelope.InvalidRequest},
		{"array", "[1,2]", envelope.InvalidRequest},
		{"no data", `{"Metadata":{}}`, envelope.InvalidRequest},
		{"data not object", `{"Data":"x"}`, envelope.InvalidRequest},
		{"two unknown bindings", `{"Data":{"a":"{}","b":"{}"}}`, envelope.InvalidRequest},
		{"method wrong type", `{"Data":{"req":{"Method":5,"Url":"http://x/api/alerts"}}}`, envelope.InvalidRequest},
		{"method invalid", `{"Data":{"req":{"Method":"GE T","Url":"http://x/api/alerts"}}}`, envelope.InvalidRequest},
		{"url invalid", `{"Data":{"req":{"Method":"GET","Url":"http://[::1"}}}`, envelope.InvalidRequest},
		{"headers wrong type", `{"Data":{"req":{"Method":"GET","Headers":[1]}}}`, envelope.InvalidRequest},
		{"header value wrong type", `{"Data":{"req":{"Method":"GET","Headers":{"A":{"b":1}}}}}`, envelope.InvalidRequest},
		{"query wrong type", `{"Data":{"req":{"Method":"GET","Url":"http://x/api/alerts","Query":7}}}`, envelope.InvalidRequest},
		{"bad base64", `{"Data":{"req":{"Method":"POST","Url":"http://x/api/alerts","Body":"%%%","IsBase64Encoded":true}}}`, envelope.InvalidRequest},
		{"cloudevent bad base64", `{"Data":{"e":{"specversion":"1.0","data_base64":"%%%"}}}`, envelope.InvalidRequest},
		{"huge", string(huge), envelope.PayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			rec := postAzure(t, fx.app.AzureHandler(), "alerts", []byte(tt.payload), "")
			if rec.Code != http.StatusOK {
				t.Errorf("host status = %d, want 200 (a permanent failure)", rec.Code)
			}
			a := decodeHostAnswer(t, rec)
			if a.Outputs.Res == nil {
				t.Fatalf("Outputs.res missing in %s", rec.Body)
			}
			code, _ := parseEnvelope([]byte(a.Outputs.Res.Body))
			if code != tt.code {
				t.Errorf("Outputs.res error code = %q (status %d), want %q", code, a.Outputs.Res.StatusCode, tt.code)
			}
			if n := len(fx.fns["alerts"].calls()); n != 0 {
				t.Errorf("function called %d times for a bad payload, want 0", n)
			}
		})
	}
}

func TestMetaString(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{`"abc"`, "abc"},
		{`"\"abc\""`, "abc"},
		{`"\"\\\"abc\\\"\""`, "abc"},
		{`3`, "3"},
		{`"3"`, "3"},
		{`"\"3\""`, "3"},
		{`true`, "true"},
		{`null`, ""},
		{`{"a":1}`, ""},
		{``, ""},
		{`"\""`, `"`},
	}
	for _, tt := range tests {
		if got := metaString(json.RawMessage(tt.raw)); got != tt.want {
			t.Errorf("metaString(%s) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	if n, ok := metaInt(json.RawMessage(`"\"2\""`)); !ok || n != 2 {
		t.Errorf(`metaInt("\"2\"") = %d, %v, want 2, true`, n, ok)
	}
}

func TestAzureLogLine(t *testing.T) {
	fx := newFixture(t)
	postAzure(t, fx.app.AzureHandler(), "isolate", readTestdata(t, "azure_http_post.json"), "inv-log-1")
	postAzure(t, fx.app.AzureHandler(), "isolate-queue", readTestdata(t, "azure_queue.json"), "inv-log-2")
	out := fx.logs.String()
	for _, secret := range []string{"sha256=", "Ransomware", "SOAR playbook", "machineId"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
	lines := fx.logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want one per invocation:\n%s", len(lines), out)
	}
	want := []map[string]any{
		{"function": "isolate", "trigger": "http", "invocationId": "inv-log-1", "status": 200.0, "outcome": "success"},
		{"function": "isolate", "trigger": "queue", "invocationId": "inv-log-2", "status": 200.0, "outcome": "success",
			"messageId": "b54cc2a1-8f1a-4a6e-bb0c-2d0cc3f1b5e2", "deliveryCount": 2.0},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("log line %d %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
		if _, ok := lines[i]["durationMs"]; !ok {
			t.Errorf("log line %d has no durationMs", i)
		}
	}
}
