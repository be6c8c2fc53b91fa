package platform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// App holds the functions one process serves and how it serves them. Its
// fields are set once before the first invocation and never changed after;
// the handlers it returns are then safe for concurrent use.
type App struct {
	// Functions maps a function name ("alerts", "isolate", "tokencheck") to
	// the handler implementing its HTTP surface. A name not in the map is
	// answered 404 not_found.
	Functions map[string]http.Handler

	// OpenAPI serves the OpenAPI document (/api/openapi.json). Nil answers
	// 404 not_found.
	OpenAPI http.Handler

	// Timeout is the invocation deadline where the platform gives none (the
	// Azure custom handler, the local server): MDE_TIMEOUT. Zero means no
	// deadline of the adapter's own.
	Timeout time.Duration

	// Logger receives one line per invocation. Nil means slog.Default().
	Logger *slog.Logger

	// Nested names the functions that also answer paths below their own
	// (/api/actions/{id}/cancel); the others answer /api/<name> alone.
	Nested map[string]bool

	// PermanentCodes are error codes whose failures are never redelivered,
	// whatever their status (a capped isolation storm must not replay an
	// hour later). Other failures are retryable when 5xx or 429.
	PermanentCodes []envelope.Code
	// MultiTenant: the functions serve several tenants; every invocation
	// line names the one it ran for ("" when the request's was refused).
	MultiTenant bool
}

// LambdaSafetyMargin is cut from a Lambda invocation's deadline so that the
// function answers before Lambda ends the invocation.
const LambdaSafetyMargin = 300 * time.Millisecond

// maxPayload bounds what the adapters read from the platform: Lambda's own
// invocation payload limit.
const maxPayload = 6 << 20

// openAPIName is the name the OpenAPI handler is logged under.
const openAPIName = "openapi"

func (a *App) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// handler returns the handler for a function name (or "openapi"), nil when
// there is none.
func (a *App) handler(name string) http.Handler {
	if name == openAPIName {
		return a.OpenAPI
	}
	return a.Functions[name]
}

// names lists the served functions, sorted.
func (a *App) names() []string {
	return slices.Sorted(maps.Keys(a.Functions))
}

// routeList names the served routes for an error message.
func (a *App) routeList() string {
	names := a.names()
	for i, n := range names {
		names[i] = "/api/" + n
	}
	return strings.Join(names, ", ")
}

// lookup maps a route segment to a function name, ignoring case.
func (a *App) lookup(segment string) (string, bool) {
	segment = strings.ToLower(segment)
	if segment == "openapi.json" {
		return openAPIName, true
	}
	if _, ok := a.Functions[segment]; ok {
		return segment, true
	}
	return "", false
}

// withDeadline returns the invocation's context: where ctx already has a
// deadline (Lambda), that deadline minus LambdaSafetyMargin (or half the time
// left, when less than twice the margin is left); else a.Timeout, if set.
func (a *App) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		margin := LambdaSafetyMargin
		if left < 2*margin {
			margin = left / 2
		}
		return context.WithDeadline(ctx, deadline.Add(-margin))
	}
	if a.Timeout > 0 {
		return context.WithTimeout(ctx, a.Timeout)
	}
	return context.WithCancel(ctx)
}

// result is a function's buffered answer.
type result struct {
	status  int
	header  http.Header
	body    []byte
	code    envelope.Code // error.code of a non-2xx envelope
	message string        // error.message of a non-2xx envelope
}

// errorResult is an answer the adapter makes itself.
func errorResult(status int, code envelope.Code, message string) result {
	h := make(http.Header)
	h.Set("Content-Type", "application/json")
	return result{status: status, header: h, body: envelopeJSON(code, message), code: code, message: message}
}

// logAttrs are extra attributes for an invocation's log line (message IDs,
// delivery counts); never bodies or headers.
type logAttrs []slog.Attr

// invoke runs one invocation of the named handler with req and buffers its
// answer. ctx must already carry the invocation's deadline. It logs one line
// and never panics because of the handler.
func (a *App) invoke(ctx context.Context, name string, info invocation.Info, req *http.Request, extra logAttrs) result {
	start := time.Now()
	if info.Notes == nil {
		info.Notes = &invocation.Notes{}
	}
	res := a.call(invocation.With(ctx, info), name, req)
	a.logResult(ctx, name, info, res, time.Since(start), extra)
	return res
}

func (a *App) call(ctx context.Context, name string, req *http.Request) (res result) {
	h := a.handler(name)
	if h == nil {
		return errorResult(http.StatusNotFound, envelope.NotFound, fmt.Sprintf("no function %q here", name))
	}
	rec := &recorder{header: make(http.Header)}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				res = errorResult(http.StatusInternalServerError, envelope.InternalError, "the function aborted its answer")
				return
			}
			// The panic value may hold anything: log the stack only.
			a.logger().ErrorContext(ctx, "platform: function panicked", "function", name, "stack", string(debug.Stack()))
			res = errorResult(http.StatusInternalServerError, envelope.InternalError, "the function failed unexpectedly; see the logs")
		}
	}()
	h.ServeHTTP(rec, req.WithContext(ctx))
	return rec.result()
}

func (a *App) logResult(ctx context.Context, name string, info invocation.Info, res result, took time.Duration, extra logAttrs) {
	o := a.outcome(res)
	level := slog.LevelInfo
	switch {
	case res.status >= 500:
		level = slog.LevelError
	case o != Success:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("function", name),
		slog.String("trigger", string(info.Trigger)),
		slog.String("invocationId", info.ID),
		slog.Int("status", res.status),
		slog.String("outcome", o.String()),
		slog.Float64("durationMs", float64(took.Microseconds())/1000),
	}
	if res.code != "" {
		attrs = append(attrs, slog.String("code", string(res.code)))
	}
	if n := info.Notes; n != nil && (n.Resolved || a.MultiTenant) {
		attrs = append(attrs, slog.String("tenant", n.Tenant))
	}
	attrs = append(attrs, extra...)
	a.logger().LogAttrs(ctx, level, "invocation", attrs...)
}

// recorder buffers a handler's answer. The handler is ours, so its body is
// not bounded here.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.wroteHeader || status < 100 || status > 999 {
		return
	}
	if status < 200 { // informational: not the final answer
		return
	}
	r.status, r.wroteHeader = status, true
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(p)
}

func (r *recorder) result() result {
	if !r.wroteHeader {
		r.status = http.StatusOK
	}
	res := result{status: r.status, header: r.header, body: r.body.Bytes()}
	if res.status < 200 || res.status > 299 {
		res.code, res.message = parseEnvelope(res.body)
	}
	return res
}

// newID returns a random UUID for invocations the platform does not name.
func newID() string { return uuid.NewString() }

// jsonRequest builds the POST /api/<function> request a non-HTTP delivery
// becomes.
func jsonRequest(ctx context.Context, function string, body []byte) *http.Request {
	req := newRequest(http.MethodPost, &url.URL{Path: "/api/" + function},
		http.Header{"Content-Type": {"application/json"}}, body, "localhost")
	return req.WithContext(ctx)
}

// newRequest builds a server-side request as net/http would have read it.
func newRequest(method string, target *url.URL, header http.Header, body []byte, host string) *http.Request {
	req := &http.Request{
		Method:        method,
		URL:           target,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          http.NoBody,
		ContentLength: int64(len(body)),
		Host:          host,
		RequestURI:    target.RequestURI(),
	}
	if len(body) > 0 {
		req.Body = readCloser(body)
	}
	return req
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
