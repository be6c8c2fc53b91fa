package platform

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// lambdaContext is what the Lambda runtime gives an invocation: a request ID
// and a deadline.
func lambdaContext(t *testing.T, requestID string, left time.Duration) (context.Context, time.Time) {
	t.Helper()
	deadline := time.Now().Add(left)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: requestID}), deadline
}

func TestLambdaDeliveries(t *testing.T) {
	tests := []struct {
		file     string
		function string // the bootstrap's function
		handler  string // the handler that must be called
		trigger  invocation.Trigger
		method   string
		path     string
		query    url.Values
		body     string
		header   map[string]string
	}{
		{
			file: "lambda_apigw_v2.json", function: "alerts", handler: "alerts", trigger: invocation.HTTP,
			method: "GET", path: "/api/alerts", query: url.Values{"severity": {"High", "Medium"}, "top": {"50"}},
			header: map[string]string{
				"X-Hub-Signature-256": "sha256=9c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
				"Cookie":              "session=abc123; theme=dark",
			},
		},
		{
			file: "lambda_function_url.json", function: "isolate", handler: "isolate", trigger: invocation.HTTP,
			method: "POST", path: "/", query: url.Values{},
			body:   `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"via Function URL"}`,
			header: map[string]string{"Content-Type": "application/json"},
		},
		{
			file: "lambda_function_url_openapi.json", function: "isolate", handler: openAPIName, trigger: invocation.HTTP,
			method: "GET", path: "/api/openapi.json", query: url.Values{},
		},
		{
			file: "lambda_eventbridge.json", function: "isolate", handler: "isolate", trigger: invocation.EventBridge,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body:   `{"deviceName":"ws-042","comment":"EventBridge rule contain-host","ticket":"INC0012399"}`,
			header: map[string]string{"Content-Type": "application/json"},
		},
		{
			file: "lambda_eventbridge_string.json", function: "alerts", handler: "alerts", trigger: invocation.EventBridge,
			method: "POST", path: "/api/alerts", query: url.Values{},
			body: `{"severity":"High","since":"2h"}`,
		},
		{
			file: "lambda_direct.json", function: "isolate", handler: "isolate", trigger: invocation.Direct,
			method: "POST", path: "/api/isolate", query: url.Values{},
			body:   `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"Step Functions state IsolateHost","isolationType":"Full","ticket":"INC0012400"}`,
			header: map[string]string{"Content-Type": "application/json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			fx := newFixture(t)
			ctx, lambdaDeadline := lambdaContext(t, "c6af9ac6-7b61-11e6-9a41-93e812345678", 10*time.Second)
			if _, err := fx.app.LambdaHandler(tt.function)(ctx, readTestdata(t, tt.file)); err != nil {
				t.Fatalf("LambdaHandler(%s) error = %v, want nil", tt.function, err)
			}
			calls := fx.fns[tt.handler].calls()
			if len(calls) != 1 {
				t.Fatalf("handler %s called %d times, want 1", tt.handler, len(calls))
			}
			got := calls[0]
			if got.Method != tt.method || got.Path != tt.path {
				t.Errorf("request = %s %s, want %s %s", got.Method, got.Path, tt.method, tt.path)
			}
			q, err := url.ParseQuery(got.Query)
			if err != nil {
				t.Fatal(err)
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
			want := invocation.Info{ID: "c6af9ac6-7b61-11e6-9a41-93e812345678", Trigger: tt.trigger}
			if got.Info != want {
				t.Errorf("invocation.Info = %+v, want %+v", got.Info, want)
			}
			if !got.HasDeadline || !got.Deadline.Before(lambdaDeadline.Add(-LambdaSafetyMargin+time.Millisecond)) {
				t.Errorf("deadline = %v, want at least %v before Lambda's %v", got.Deadline, LambdaSafetyMargin, lambdaDeadline)
			}
			for name, f := range fx.fns {
				if name != tt.handler && len(f.calls()) != 0 {
					t.Errorf("handler %s called, want only %s", name, tt.handler)
				}
			}
		})
	}
}

func TestLambdaHTTPResponse(t *testing.T) {
	fx := newFixture(t)
	body := `{"error":{"code":"isolation_budget_exceeded","message":"10 isolations in the last hour"}}`
	fx.fns["isolate"].answer = answerWith(http.StatusTooManyRequests, body)
	fx.fns["isolate"].header = http.Header{"Retry-After": {"1200"}, "Set-Cookie": {"a=1", "b=2"}, "Vary": {"Accept", "Origin"}}
	ctx, _ := lambdaContext(t, "req-1", 10*time.Second)
	out, err := fx.app.LambdaHandler("isolate")(ctx, readTestdata(t, "lambda_function_url.json"))
	if err != nil {
		t.Fatalf("LambdaHandler error = %v, want nil (HTTP failures are answers)", err)
	}
	want := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusTooManyRequests,
		Headers:    map[string]string{"Content-Type": "application/json", "Retry-After": "1200", "Vary": "Accept, Origin"},
		Body:       body,
		Cookies:    []string{"a=1", "b=2"},
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("HTTP response mismatch (-want +got):\n%s", diff)
	}

	// A binary answer is base64 encoded.
	fx.fns["isolate"].answer = answerWith(http.StatusOK, "\xff\xfe")
	fx.fns["isolate"].header = nil
	out, _ = fx.app.LambdaHandler("isolate")(ctx, readTestdata(t, "lambda_function_url.json"))
	if r, ok := out.(events.APIGatewayV2HTTPResponse); !ok || !r.IsBase64Encoded || r.Body != "//4=" {
		t.Errorf("binary answer = %+v, want base64 //4=", out)
	}
}

func TestLambdaSQSBatch(t *testing.T) {
	fx := newFixture(t)
	fx.fns["isolate"].answer = func(body string) (int, string) {
		switch {
		case strings.Contains(body, "record ok"):
			return http.StatusCreated, `{"action":{"id":"a1"}}`
		case strings.Contains(body, "record throttled"):
			return http.StatusTooManyRequests, `{"error":{"code":"throttled","message":"Defender throttled"}}`
		case strings.Contains(body, "record over budget"):
			return http.StatusTooManyRequests, `{"error":{"code":"isolation_budget_exceeded","message":"cap"}}`
		default:
			return http.StatusBadRequest, `{"error":{"code":"invalid_request","message":"not JSON"}}`
		}
	}
	ctx, _ := lambdaContext(t, "sqs-req-1", 10*time.Second)
	out, err := fx.app.LambdaHandler("isolate")(ctx, readTestdata(t, "lambda_sqs.json"))
	if err != nil {
		t.Fatalf("LambdaHandler(sqs) error = %v", err)
	}
	want := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "2e1424d4-f796-459a-8184-9c92662be6da"}}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("SQS answer mismatch (-want +got):\n%s", diff)
	}
	calls := fx.fns["isolate"].calls()
	if len(calls) != 4 {
		t.Fatalf("isolate called %d times, want 4 (each record, in order)", len(calls))
	}
	for i, marker := range []string{"record ok", "record throttled", "record over budget", "not json at all"} {
		if !strings.Contains(calls[i].Body, marker) {
			t.Errorf("record %d body = %q, want %q", i, calls[i].Body, marker)
		}
		if calls[i].Info.Trigger != invocation.SQS || calls[i].Method != http.MethodPost || calls[i].Path != "/api/isolate" {
			t.Errorf("record %d = %s %s %+v, want POST /api/isolate trigger sqs", i, calls[i].Method, calls[i].Path, calls[i].Info)
		}
	}
	if n := len(fx.logs.lines(t)); n != 4 {
		t.Errorf("%d log lines, want one per record", n)
	}
}

func TestLambdaSQSDeadlinePassed(t *testing.T) {
	fx := newFixture(t)
	fx.fns["isolate"].block = true
	ctx, _ := lambdaContext(t, "sqs-slow", 400*time.Millisecond)
	out, err := fx.app.LambdaHandler("isolate")(ctx, readTestdata(t, "lambda_sqs.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp := out.(events.SQSEventResponse)
	if len(resp.BatchItemFailures) != 4 {
		t.Errorf("batchItemFailures = %v, want all 4 records (first timed out, rest never run)", resp.BatchItemFailures)
	}
	if n := len(fx.fns["isolate"].calls()); n != 1 {
		t.Errorf("isolate called %d times, want 1: records after the deadline are not run", n)
	}
}

func TestLambdaDirectErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantType string
		wantMsg  string
	}{
		{"not found", http.StatusNotFound, `{"error":{"code":"not_found","message":"no device ws-042"}}`, "not_found", "no device ws-042"},
		{"ambiguous", http.StatusConflict, `{"error":{"code":"ambiguous_device","message":"2 devices","candidates":[]}}`, "ambiguous_device", "2 devices"},
		{"budget", http.StatusTooManyRequests, `{"error":{"code":"isolation_budget_exceeded","message":"cap"}}`, "isolation_budget_exceeded", "cap"},
		{"upstream", http.StatusBadGateway, `{"error":{"code":"upstream_error","message":"Defender 500"}}`, "upstream_error", "Defender 500"},
		{"no envelope", http.StatusInternalServerError, `boom`, string(envelope.InternalError), "the function answered status 500"},
	}
	for _, file := range []string{"lambda_direct.json", "lambda_eventbridge.json"} {
		for _, tt := range tests {
			t.Run(file+"/"+tt.name, func(t *testing.T) {
				fx := newFixture(t)
				fx.fns["isolate"].answer = answerWith(tt.status, tt.body)
				ctx, _ := lambdaContext(t, "direct-1", 10*time.Second)
				out, err := fx.app.LambdaHandler("isolate")(ctx, readTestdata(t, file))
				if out != nil {
					t.Errorf("result = %v, want nil on failure", out)
				}
				// aws-lambda-go reports an error as is only when it is this value type.
				ive, ok := err.(messages.InvokeResponse_Error)
				if !ok {
					t.Fatalf("error = %#v, want a messages.InvokeResponse_Error value", err)
				}
				if ive.Type != tt.wantType || ive.Message != tt.wantMsg {
					t.Errorf("error = {%q, %q}, want {%q, %q}", ive.Type, ive.Message, tt.wantType, tt.wantMsg)
				}
			})
		}
	}
}

func TestLambdaDirectSuccessThroughRuntime(t *testing.T) {
	fx := newFixture(t)
	fx.fns["isolate"].answer = answerWith(http.StatusCreated, `{"action":{"id":"a1","type":"Isolate"},"machine":{"id":"m"}}`)
	h := lambda.NewHandler(fx.app.LambdaHandler("isolate"))
	ctx, _ := lambdaContext(t, "direct-2", 10*time.Second)
	out, err := h.Invoke(ctx, readTestdata(t, "lambda_direct.json"))
	if err != nil {
		t.Fatalf("Invoke error = %v", err)
	}
	if !jsonEqual(t, string(out), `{"action":{"id":"a1","type":"Isolate"},"machine":{"id":"m"}}`) {
		t.Errorf("Invoke = %s, want the function's JSON", out)
	}

	fx.fns["isolate"].answer = answerWith(http.StatusNotFound, `{"error":{"code":"not_found","message":"gone"}}`)
	_, err = h.Invoke(ctx, readTestdata(t, "lambda_direct.json"))
	var ive messages.InvokeResponse_Error
	if !errors.As(err, &ive) || ive.Type != "not_found" {
		t.Errorf("Invoke error = %#v, want InvokeResponse_Error not_found", err)
	}
}

func TestLambdaDeadline(t *testing.T) {
	fx := newFixture(t)
	fx.fns["alerts"].block = true
	ctx, lambdaDeadline := lambdaContext(t, "slow-1", time.Second)
	start := time.Now()
	out, err := fx.app.LambdaHandler("alerts")(ctx, readTestdata(t, "lambda_apigw_v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().After(lambdaDeadline) {
		t.Errorf("answered after Lambda's deadline (took %v)", time.Since(start))
	}
	if r := out.(events.APIGatewayV2HTTPResponse); r.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status = %d, want the function's 504", r.StatusCode)
	}
	got := fx.fns["alerts"].calls()[0]
	if margin := lambdaDeadline.Sub(got.Deadline); margin < LambdaSafetyMargin-time.Millisecond {
		t.Errorf("handler deadline is %v before Lambda's, want at least %v", margin, LambdaSafetyMargin)
	}
}

func TestLambdaBadEvents(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		http    bool // answered as an HTTP response rather than a function error
	}{
		{"string", `"hello"`, false},
		{"number", `42`, false},
		{"array", `[{"a":1}]`, false},
		{"null", `null`, false},
		{"garbage", "\x00{", false},
		{"records not sqs", `{"Records":[{"eventSource":"aws:sns","body":"{}"}]}`, false},
		{"records wrong type", `{"Records":"x"}`, false},
		{"http wrong types", `{"version":"2.0","requestContext":{"http":{"method":"GET"}},"headers":[1]}`, false},
		{"http bad base64", `{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"POST"}},"body":"%%","isBase64Encoded":true}`, true},
		{"http bad method", `{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"G T"}}}`, true},
		{"http absolute path", `{"version":"2.0","rawPath":"http://evil.example/x","requestContext":{"http":{"method":"GET"}}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			ctx, _ := lambdaContext(t, "bad-1", 5*time.Second)
			out, err := fx.app.LambdaHandler("alerts")(ctx, json.RawMessage(tt.payload))
			if tt.http {
				r, ok := out.(events.APIGatewayV2HTTPResponse)
				if err != nil || !ok || r.StatusCode != http.StatusBadRequest {
					t.Errorf("LambdaHandler(%s) = %v, %v; want a 400 HTTP response", tt.payload, out, err)
				}
			} else {
				ive, ok := err.(messages.InvokeResponse_Error)
				if !ok || ive.Type != string(envelope.InvalidRequest) {
					t.Errorf("LambdaHandler(%s) error = %#v, want invalid_request", tt.payload, err)
				}
			}
			if n := len(fx.fns["alerts"].calls()); n != 0 {
				t.Errorf("function called %d times, want 0", n)
			}
		})
	}
}

func TestLambdaUnknownFunction(t *testing.T) {
	fx := newFixture(t)
	ctx, _ := lambdaContext(t, "x", 5*time.Second)
	_, err := fx.app.LambdaHandler("nope")(ctx, readTestdata(t, "lambda_direct.json"))
	if ive, ok := err.(messages.InvokeResponse_Error); !ok || ive.Type != string(envelope.NotFound) {
		t.Errorf("LambdaHandler(nope) error = %#v, want not_found", err)
	}
}
