package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// AzureHandler returns the Azure Functions custom handler:
//
//   - GET / answers 200: the handler is ready.
//   - /api/<function> and /api/openapi.json: raw HTTP from the host
//     (enableForwardingHttpRequest, or proxied), served as HTTPHandler does,
//     with the function key (query parameter "code") removed.
//   - POST /<folder>: an invocation in the host's default style, a JSON body
//     {"Data": {...}, "Metadata": {...}}. Folder "alerts", "isolate" or
//     "tokencheck", or "<function>-<anything>" (isolate-queue), runs that
//     function. An HTTP trigger binding is answered 200 with
//     {"Outputs": {"res": {"statusCode", "headers", "body"}}, "Logs": [...],
//     "ReturnValue": <the same response>}, so the HTTP output binding may be
//     named "res" or "$return". A queue or Service Bus message's text, or an
//     Event Grid event's data, is the request JSON: success and permanent
//     failures are answered 200 (the message is completed; a permanent
//     failure is logged), retryable failures 500 so that the host retries;
//     Outputs is empty and ReturnValue null (the function's answer is only
//     logged, as status and error code).
//     A payload the adapter cannot read is a permanent failure: 200 with an
//     invalid_request (or payload_too_large) envelope in Outputs.res.
//   - A folder naming no function is answered 404 not_found to the host (an
//     invocation failure, so a misnamed queue function's messages end in the
//     poison queue instead of being dropped); a method other than POST, 405.
//
// Each invocation's deadline is a.Timeout; its ID the host's
// X-Azure-Functions-InvocationId header, else a random one.
func (a *App) AzureHandler() http.Handler {
	api := a.httpHandler(true)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case path == "/":
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, http.StatusMethodNotAllowed, envelope.MethodNotAllowed, "GET / only reports readiness")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"status":"ready"}`)
		case strings.HasPrefix(path, "/api/"):
			api.ServeHTTP(w, r)
		default:
			folder := strings.TrimPrefix(path, "/")
			function, ok := a.folderFunction(folder)
			if !ok {
				writeError(w, http.StatusNotFound, envelope.NotFound, fmt.Sprintf("no function for the folder %s; name it %s or <function>-<anything>", routeForMessage(folder), strings.Join(a.names(), ", ")))
				return
			}
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeError(w, http.StatusMethodNotAllowed, envelope.MethodNotAllowed, "the Functions host POSTs invocations")
				return
			}
			a.serveAzure(w, r, function)
		}
	})
}

// folderFunction maps a function folder name to the function it runs:
// exactly the function's name, or "<function>-<anything>".
func (a *App) folderFunction(folder string) (string, bool) {
	folder = strings.ToLower(folder)
	best := ""
	for name := range a.Functions {
		if name == folder {
			return name, true
		}
		if rest, ok := strings.CutPrefix(folder, name+"-"); ok && rest != "" && !strings.Contains(rest, "/") && len(name) > len(best) {
			best = name
		}
	}
	return best, best != ""
}

// azureResponse is the custom handler's answer to the host.
type azureResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// azureHTTPResponse is an HTTP output binding's value.
type azureHTTPResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// serveAzure runs one default-style invocation.
func (a *App) serveAzure(w http.ResponseWriter, r *http.Request, function string) {
	info := invocation.Info{ID: azureInvocationID(r.Header), Trigger: invocation.Other}
	ctx, cancel := a.withDeadline(r.Context())
	defer cancel()

	payload, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		a.answerAzureFailure(ctx, w, function, info, errorResult(http.StatusBadRequest, envelope.InvalidRequest, "the host payload could not be read"))
		return
	}
	if len(payload) > maxPayload {
		a.answerAzureFailure(ctx, w, function, info, errorResult(http.StatusRequestEntityTooLarge, envelope.PayloadTooLarge, fmt.Sprintf("the host payload is over %d bytes", maxPayload)))
		return
	}
	d, err := decodeAzure(payload)
	if err != nil {
		a.answerAzureFailure(ctx, w, function, info, asResult(err))
		return
	}
	info.Trigger = d.trigger

	if d.trigger == invocation.HTTP {
		req, err := d.http.request(function)
		if err != nil {
			a.answerAzureFailure(ctx, w, function, info, asResult(err))
			return
		}
		res := a.invoke(ctx, function, info, req.WithContext(ctx), nil)
		writeAzure(w, http.StatusOK, httpOutputs(res), a.azureLogs(function, res), toHTTPResponse(res))
		return
	}

	res := a.invoke(ctx, function, info, jsonRequest(ctx, function, d.body), d.meta)
	status := http.StatusOK
	if a.outcome(res) == Retryable {
		status = http.StatusInternalServerError
	}
	writeAzure(w, status, map[string]any{}, a.azureLogs(function, res), nil)
}

// answerAzureFailure answers a payload the adapter cannot use: a permanent
// failure, logged, with its envelope in Outputs.res.
func (a *App) answerAzureFailure(ctx context.Context, w http.ResponseWriter, function string, info invocation.Info, res result) {
	a.logResult(ctx, function, info, res, 0, nil)
	writeAzure(w, http.StatusOK, httpOutputs(res), a.azureLogs(function, res), toHTTPResponse(res))
}

func httpOutputs(res result) map[string]any {
	return map[string]any{"res": toHTTPResponse(res)}
}

func toHTTPResponse(res result) azureHTTPResponse {
	headers := make(map[string]string, len(res.header))
	for name, vals := range res.header {
		headers[name] = strings.Join(vals, ", ")
	}
	return azureHTTPResponse{StatusCode: res.status, Headers: headers, Body: string(res.body)}
}

// azureLogs is the human line shown in the invocation's logs on Azure:
// status, outcome and, for a failure, the envelope's code and message (the
// contract keeps secrets out of both).
func (a *App) azureLogs(function string, res result) []string {
	line := fmt.Sprintf("mdefn %s: %d %s", function, res.status, a.outcome(res))
	if res.code != "" {
		line += fmt.Sprintf(" %s: %s", res.code, bounded(res.message, 300))
	}
	return []string{line}
}

func writeAzure(w http.ResponseWriter, status int, outputs map[string]any, logs []string, ret any) {
	b, err := json.Marshal(azureResponse{Outputs: outputs, Logs: logs, ReturnValue: ret})
	if err != nil {
		b = []byte(`{"Outputs":{},"Logs":["mdefn: cannot encode the answer"],"ReturnValue":null}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
