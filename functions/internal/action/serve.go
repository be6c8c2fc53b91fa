package action

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/internal/invocation"
)

// Handler answers POST requests whose JSON body decodes into R, running do
// for each: the HTTP shape every action function shares. An empty body is
// invalid_request with emptyBody as its message; any failure is written as
// the error envelope and logged on logger (nil discards) under function.
func Handler[R any](function, emptyBody string, logger *slog.Logger, do func(ctx context.Context, r R) (*Result, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			errmap.Write(w, envelope.Errorf(envelope.MethodNotAllowed, "use POST with a JSON body"))
			return
		}
		var body bytes.Buffer
		var r R
		_, err := body.ReadFrom(req.Body)
		if err == nil {
			if len(bytes.TrimSpace(body.Bytes())) == 0 {
				err = envelope.Errorf(envelope.InvalidRequest, "%s", emptyBody)
			} else {
				err = decode.JSON(body.Bytes(), &r)
			}
		}
		var res *Result
		if err == nil {
			res, err = do(req.Context(), r)
		}
		if err != nil {
			e := errmap.Write(w, err)
			errmap.LogFailure(req.Context(), logger, function, e)
			return
		}
		if res.Action != nil && res.Action.ID != "" && PrefersAsync(req) {
			// The asynchronous request-reply pattern (Logic Apps, Power
			// Automate): accepted, poll Location until it stops answering 202.
			w.Header().Set("Location", ActionURL(req, res.Action.ID))
			w.Header().Set("Retry-After", strconv.Itoa(PollSeconds))
			w.Header().Set("Preference-Applied", "respond-async")
			_ = envelope.WriteJSON(w, http.StatusAccepted, res)
			return
		}
		_ = envelope.WriteJSON(w, res.Status, res)
	})
}

// PollSeconds is the Retry-After of an accepted action: how long a client
// of the asynchronous pattern waits before polling the action again.
const PollSeconds = 10

// PrefersAsync reports whether the request carries Prefer: respond-async.
func PrefersAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// ActionURL is the URL of the actions function for a machine action:
// absolute when the request names its host (X-Forwarded-Host or Host, with
// X-Forwarded-Proto or the connection's scheme), else the path alone.
// In a multi-tenant deployment it names the request's tenant.
func ActionURL(r *http.Request, id string) string {
	path := "/api/actions/" + url.PathEscape(id)
	if t := invocation.Tenant(r.Context()); t != "" {
		path += "?tenant=" + url.QueryEscape(t)
	}
	host := firstValue(r.Header.Get("X-Forwarded-Host"))
	if host == "" {
		host = r.Host
	}
	if host == "" || strings.ContainsAny(host, "/\\@ ") {
		return path
	}
	scheme := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto")))
	if scheme != "http" && scheme != "https" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	return scheme + "://" + host + path
}

// firstValue is the first of a comma-separated header's values.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}
