package platform

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// lambdaKind is the kind of a Lambda event, recognised from its shape.
type lambdaKind int

const (
	lambdaDirect      lambdaKind = iota // any other JSON object: the request itself
	lambdaHTTP                          // Function URL or API Gateway HTTP API (payload 2.0)
	lambdaSQS                           // SQS batch
	lambdaEventBridge                   // EventBridge event: detail is the request
)

// lambdaEvent is a recognised Lambda event.
type lambdaEvent struct {
	kind   lambdaKind
	http   *events.APIGatewayV2HTTPRequest // lambdaHTTP
	sqs    *events.SQSEvent                // lambdaSQS
	detail []byte                          // lambdaEventBridge: the request JSON
	id     string                          // lambdaEventBridge: the event ID
	direct []byte                          // lambdaDirect: the request JSON
}

// decodeLambdaEvent recognises an event from its shape. A payload that is not
// a JSON object, or an object of a recognised kind with the wrong shape, is an
// invalid_request error.
func decodeLambdaEvent(payload []byte) (lambdaEvent, error) {
	fields := objectFields(payload)
	if fields == nil {
		return lambdaEvent{}, invalidf("the event is not a JSON object")
	}
	switch {
	case metaString(fields["version"]) == "2.0" && has(fields, "requestcontext") && isHTTPContext(fields["requestcontext"]):
		var e events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(payload, &e); err != nil {
			return lambdaEvent{}, invalidf("the HTTP event is malformed")
		}
		return lambdaEvent{kind: lambdaHTTP, http: &e}, nil
	case has(fields, "records"):
		var e events.SQSEvent
		if err := json.Unmarshal(payload, &e); err != nil {
			return lambdaEvent{}, invalidf("the Records event is malformed")
		}
		for i, r := range e.Records {
			if r.EventSource != "aws:sqs" {
				return lambdaEvent{}, invalidf("record %d comes from %q; only aws:sqs records are served", i, bounded(r.EventSource, 64))
			}
		}
		return lambdaEvent{kind: lambdaSQS, sqs: &e}, nil
	case has(fields, "detail-type", "source", "detail"):
		return lambdaEvent{kind: lambdaEventBridge, detail: peel(fields["detail"]), id: metaString(fields["id"])}, nil
	default:
		return lambdaEvent{kind: lambdaDirect, direct: bytes.TrimSpace(payload)}, nil
	}
}

// isHTTPContext reports whether a requestContext carries http.method.
func isHTTPContext(raw json.RawMessage) bool {
	h := objectFields(objectFields(raw)["http"])
	return metaString(h["method"]) != ""
}

// LambdaHandler returns the Lambda handler of one function,
// for lambda.Start. The event kind is recognised from its shape:
//
//   - Function URL / API Gateway HTTP API (payload version 2.0): the HTTP
//     request, whatever its path, runs the function, except a path ending in
//     /openapi.json, which the OpenAPI handler serves. The answer is an
//     events.APIGatewayV2HTTPResponse (the same JSON a Function URL expects).
//   - SQS: each record's body is a request, run in order; the answer is an
//     events.SQSEventResponse listing the retryable failures (the event
//     source mapping needs ReportBatchItemFailures); permanent failures are
//     logged and dropped. Records left when the deadline has passed are
//     listed as failures without being run.
//   - EventBridge: the event's detail (object or JSON string) is the request.
//   - Any other JSON object is a direct invoke: the payload is the request.
//
// For EventBridge and direct invokes a success returns the function's JSON
// answer, and a failure returns a messages.InvokeResponse_Error whose
// errorType is the contract code and errorMessage its message. A payload that
// is not a JSON object fails the same way with invalid_request.
//
// The invocation ID is the Lambda request ID; the deadline is the invocation's
// minus LambdaSafetyMargin.
func (a *App) LambdaHandler(function string) func(ctx context.Context, event json.RawMessage) (any, error) {
	return func(ctx context.Context, event json.RawMessage) (any, error) {
		ctx, cancel := a.withDeadline(ctx)
		defer cancel()
		id := lambdaRequestID(ctx)
		e, err := decodeLambdaEvent(event)
		if err != nil {
			res := asResult(err)
			a.logResult(ctx, function, invocation.Info{ID: id, Trigger: invocation.Other}, res, 0, nil)
			return nil, lambdaError(res)
		}
		switch e.kind {
		case lambdaHTTP:
			return a.lambdaHTTP(ctx, function, id, e.http), nil
		case lambdaSQS:
			return a.lambdaSQS(ctx, function, id, e.sqs), nil
		case lambdaEventBridge:
			info := invocation.Info{ID: id, Trigger: invocation.EventBridge}
			var extra logAttrs
			if e.id != "" {
				extra = logAttrs{slog.String("eventId", bounded(e.id, 128))}
			}
			return a.lambdaAnswer(a.invoke(ctx, function, info, jsonRequest(ctx, function, e.detail), extra))
		default:
			info := invocation.Info{ID: id, Trigger: invocation.Direct}
			return a.lambdaAnswer(a.invoke(ctx, function, info, jsonRequest(ctx, function, e.direct), nil))
		}
	}
}

// lambdaRequestID returns the Lambda request ID, or a random ID outside Lambda.
func lambdaRequestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	return newID()
}

// lambdaAnswer is a direct or EventBridge invocation's result: the function's
// JSON on success, else a function error typed with the contract code.
func (a *App) lambdaAnswer(res result) (any, error) {
	if a.outcome(res) != Success {
		return nil, lambdaError(res)
	}
	body := bytes.TrimSpace(res.body)
	switch {
	case len(body) == 0:
		return nil, nil
	case json.Valid(body):
		return json.RawMessage(body), nil
	default:
		return string(body), nil
	}
}

// lambdaError is the function error aws-lambda-go reports as is: it must be
// a messages.InvokeResponse_Error value (not a pointer, not wrapped).
func lambdaError(res result) error {
	code, message := res.code, res.message
	if code == "" {
		code = envelope.InternalError
	}
	if message == "" {
		message = fmt.Sprintf("the function answered status %d", res.status)
	}
	return messages.InvokeResponse_Error{Type: string(code), Message: message}
}

// lambdaHTTP runs an HTTP event and returns its response.
func (a *App) lambdaHTTP(ctx context.Context, function, id string, e *events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	info := invocation.Info{ID: id, Trigger: invocation.HTTP}
	name := function
	path := e.RawPath
	if path == "" {
		path = e.RequestContext.HTTP.Path
	}
	if strings.HasSuffix(path, "/openapi.json") {
		name = openAPIName
	}
	req, err := httpEventRequest(e, path)
	if err != nil {
		res := asResult(err)
		a.logResult(ctx, name, info, res, 0, nil)
		return toLambdaHTTPResponse(res)
	}
	return toLambdaHTTPResponse(a.invoke(ctx, name, info, req.WithContext(ctx), nil))
}

// httpEventRequest builds the request an HTTP event describes.
func httpEventRequest(e *events.APIGatewayV2HTTPRequest, path string) (*http.Request, error) {
	method := strings.ToUpper(e.RequestContext.HTTP.Method)
	if !validMethod(method) {
		return nil, invalidf("the HTTP event's method is invalid")
	}
	if path == "" {
		path = "/"
	}
	target, err := url.ParseRequestURI(path)
	if err != nil || target.Scheme != "" || target.Host != "" || !strings.HasPrefix(path, "/") {
		return nil, invalidf("the HTTP event's path is invalid")
	}
	target.RawQuery = e.RawQueryString
	if target.RawQuery == "" && len(e.QueryStringParameters) > 0 {
		q := url.Values{}
		for k, v := range e.QueryStringParameters {
			q.Set(k, v)
		}
		target.RawQuery = q.Encode()
	}
	header := make(http.Header, len(e.Headers)+1)
	for k, v := range e.Headers {
		header.Set(k, v)
	}
	if len(e.Cookies) > 0 {
		header.Set("Cookie", strings.Join(e.Cookies, "; "))
	}
	body := []byte(e.Body)
	if e.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(e.Body); err != nil {
			return nil, invalidf("the HTTP event's body is not valid base64")
		}
	}
	host := header.Get("Host")
	if host == "" {
		host = e.RequestContext.DomainName
	}
	req := newRequest(method, target, header, body, host)
	if ip := e.RequestContext.HTTP.SourceIP; ip != "" {
		req.RemoteAddr = ip + ":0"
	}
	return req, nil
}

// toLambdaHTTPResponse is the HTTP event answer: multi-value headers joined,
// Set-Cookie moved to cookies, a body that is not UTF-8 base64 encoded.
func toLambdaHTTPResponse(res result) events.APIGatewayV2HTTPResponse {
	out := events.APIGatewayV2HTTPResponse{StatusCode: res.status, Headers: make(map[string]string, len(res.header))}
	for name, vals := range res.header {
		if http.CanonicalHeaderKey(name) == "Set-Cookie" {
			out.Cookies = append(out.Cookies, vals...)
			continue
		}
		out.Headers[name] = strings.Join(vals, ", ")
	}
	if utf8.Valid(res.body) {
		out.Body = string(res.body)
	} else {
		out.Body, out.IsBase64Encoded = base64.StdEncoding.EncodeToString(res.body), true
	}
	return out
}

// lambdaSQS runs each record of a batch in order and reports the retryable
// failures.
func (a *App) lambdaSQS(ctx context.Context, function, id string, e *events.SQSEvent) events.SQSEventResponse {
	out := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	info := invocation.Info{ID: id, Trigger: invocation.SQS}
	for _, rec := range e.Records {
		extra := logAttrs{slog.String("messageId", bounded(rec.MessageId, 128))}
		if n, ok := metaInt(json.RawMessage(fmt.Sprintf("%q", rec.Attributes["ApproximateReceiveCount"]))); ok {
			extra = append(extra, slog.Int("deliveryCount", n))
		}
		var res result
		if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
			res = errorResult(http.StatusGatewayTimeout, envelope.UpstreamTimeout, "the invocation's deadline passed before this record was run")
			a.logResult(ctx, function, info, res, 0, extra)
		} else {
			res = a.invoke(ctx, function, info, jsonRequest(ctx, function, peel([]byte(rec.Body))), extra)
		}
		if a.outcome(res) == Retryable {
			out.BatchItemFailures = append(out.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return out
}
