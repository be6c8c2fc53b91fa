package platform

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// invocationIDHeader is the header the Azure Functions host names an
// invocation with.
const invocationIDHeader = "X-Azure-Functions-InvocationId"

// azureKeyParam is the query parameter carrying an Azure function key; the
// host has checked it, the functions never see it.
const azureKeyParam = "code"

// HTTPHandler returns the handler of the HTTP surface for the
// local server: /api/<function> runs that function, /api/openapi.json the
// OpenAPI handler, anything else is answered 404 not_found. Each request is an
// invocation with trigger invocation.HTTP and the deadline a.Timeout.
func (a *App) HTTPHandler() http.Handler { return a.httpHandler(false) }

func (a *App) httpHandler(dropKey bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := a.route(r.URL.Path)
		if !ok {
			writeError(w, http.StatusNotFound, envelope.NotFound, fmt.Sprintf("no route %s; the routes are %s and /api/openapi.json", routeForMessage(r.URL.Path), a.routeList()))
			return
		}
		if dropKey {
			r.URL.RawQuery = dropKeyParam(r.URL.RawQuery)
		}
		a.serveStream(w, r, name)
	})
}

// route maps /api/<segment> to a function name or "openapi".
func (a *App) route(path string) (string, bool) {
	segment, ok := strings.CutPrefix(path, "/api/")
	if !ok {
		return "", false
	}
	segment = strings.TrimSuffix(segment, "/")
	first, rest, nested := strings.Cut(segment, "/")
	if first == "" {
		return "", false
	}
	name, ok := a.lookup(first)
	if nested && (!ok || !a.Nested[name] || rest == "") {
		return "", false
	}
	return name, ok
}

// routeForMessage bounds a hostile path before it is echoed in an error.
func routeForMessage(path string) string {
	const maxShown = 80
	if len(path) > maxShown {
		path = path[:maxShown] + "…"
	}
	return fmt.Sprintf("%q", path)
}

// serveStream runs one HTTP invocation writing straight to w, so large
// answers are not buffered; the first bytes of a non-2xx answer are kept to
// log its error code.
func (a *App) serveStream(w http.ResponseWriter, r *http.Request, name string) {
	info := invocation.Info{ID: azureInvocationID(r.Header), Trigger: invocation.HTTP, Notes: &invocation.Notes{}}
	ctx, cancel := a.withDeadline(r.Context())
	defer cancel()
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		res := sw.result()
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				a.logger().ErrorContext(ctx, "platform: function panicked", "function", name, "stack", string(debug.Stack()))
			}
			if !sw.wrote {
				writeError(w, http.StatusInternalServerError, envelope.InternalError, "the function failed unexpectedly; see the logs")
				res = errorResult(http.StatusInternalServerError, envelope.InternalError, "")
			} else {
				defer panic(http.ErrAbortHandler) // the answer is half written: drop the connection
			}
		}
		a.logResult(ctx, name, info, res, time.Since(start), nil)
	}()
	h := a.handler(name)
	if h == nil {
		writeError(sw, http.StatusNotFound, envelope.NotFound, fmt.Sprintf("function %q is not served here", name))
		return
	}
	h.ServeHTTP(sw, r.WithContext(invocation.With(ctx, info)))
}

// azureInvocationID returns the host's invocation ID, or a new one when the
// header is missing or implausible.
func azureInvocationID(h http.Header) string {
	id := h.Get(invocationIDHeader)
	if id == "" || len(id) > 128 {
		return newID()
	}
	for _, c := range id {
		if c <= ' ' || c > '~' {
			return newID()
		}
	}
	return id
}

// writeError writes the contract's error envelope.
func writeError(w http.ResponseWriter, status int, code envelope.Code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(envelopeJSON(code, message))
}

// statusWriter passes an answer through, noting its status and the start of
// a non-2xx body.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	errBuf bytes.Buffer
}

// maxErrorCapture bounds how much of a failure's body is kept for its code.
const maxErrorCapture = 64 << 10

func (s *statusWriter) WriteHeader(status int) {
	if !s.wrote && status >= 200 {
		s.status, s.wrote = status, true
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	if (s.status < 200 || s.status > 299) && s.errBuf.Len() < maxErrorCapture {
		s.errBuf.Write(p[:min(len(p), maxErrorCapture-s.errBuf.Len())])
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) result() result {
	status := s.status
	if !s.wrote {
		status = http.StatusOK
	}
	res := result{status: status}
	if status < 200 || status > 299 {
		res.code, res.message = parseEnvelope(s.errBuf.Bytes())
	}
	return res
}

// dropKeyParam removes the Azure function key from a raw query.
func dropKeyParam(rawQuery string) string {
	q, err := url.ParseQuery(rawQuery)
	if err != nil || !q.Has(azureKeyParam) {
		return rawQuery
	}
	q.Del(azureKeyParam)
	return q.Encode()
}
