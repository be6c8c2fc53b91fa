package platform

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// payloadError is a platform payload the adapter cannot use: answered with
// the contract's error envelope.
type payloadError struct {
	status  int
	code    envelope.Code
	message string
}

func (e *payloadError) Error() string { return "platform: " + e.message }

func invalidf(format string, args ...any) error {
	return &payloadError{status: http.StatusBadRequest, code: envelope.InvalidRequest, message: fmt.Sprintf(format, args...)}
}

// asResult turns an adapter error into the answer given in its place.
func asResult(err error) result {
	var pe *payloadError
	if errors.As(err, &pe) {
		return errorResult(pe.status, pe.code, pe.message)
	}
	return errorResult(http.StatusBadRequest, envelope.InvalidRequest, "the platform payload is not usable")
}

// azureInvocation is the body the Functions host POSTs to /<function> in the
// default (non-forwarding) style.
type azureInvocation struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// azureDelivery is what one host invocation asks for.
type azureDelivery struct {
	trigger invocation.Trigger
	http    *azureHTTPRequest // the HTTP trigger's request, when trigger is invocation.HTTP
	body    []byte            // the request JSON of a non-HTTP delivery
	meta    logAttrs          // message ID and delivery count, for the log line
}

// azureHTTPRequest is an HTTP trigger binding as the host sends it.
// Field names match case-insensitively.
type azureHTTPRequest struct {
	URL             string          `json:"Url"`
	Method          string          `json:"Method"`
	Query           json.RawMessage `json:"Query"`
	Headers         json.RawMessage `json:"Headers"`
	Body            json.RawMessage `json:"Body"`
	IsBase64Encoded json.RawMessage `json:"IsBase64Encoded"`
}

// decodeAzure reads a host invocation payload and finds its trigger.
func decodeAzure(payload []byte) (azureDelivery, error) {
	var inv azureInvocation
	if err := json.Unmarshal(payload, &inv); err != nil {
		return azureDelivery{}, invalidf("the host payload is not a JSON object with Data and Metadata")
	}
	if len(inv.Data) == 0 {
		return azureDelivery{}, invalidf("the host payload has no Data")
	}
	meta := lowerKeys(inv.Metadata)

	names := make([]string, 0, len(inv.Data))
	for name := range inv.Data {
		names = append(names, name)
	}
	slices.Sort(names)

	// An HTTP request binding wins, then an Event Grid event, then the only binding.
	for _, name := range names {
		if fields := objectFields(inv.Data[name]); looksLikeHTTPRequest(fields) {
			var req azureHTTPRequest
			if err := json.Unmarshal(inv.Data[name], &req); err != nil {
				return azureDelivery{}, invalidf("the HTTP trigger binding %q is malformed", name)
			}
			return azureDelivery{trigger: invocation.HTTP, http: &req}, nil
		}
	}
	for _, name := range names {
		value := peel(inv.Data[name])
		if fields := objectFields(value); looksLikeEvent(fields) {
			body, err := eventData(fields)
			if err != nil {
				return azureDelivery{}, err
			}
			return azureDelivery{trigger: invocation.EventGrid, body: body, meta: messageAttrs(fields, nil)}, nil
		}
	}
	if len(names) != 1 {
		return azureDelivery{}, invalidf("the host payload has %d bindings and none is an HTTP request or an event", len(names))
	}
	return azureDelivery{trigger: messageTrigger(meta), body: peel(inv.Data[names[0]]), meta: messageAttrs(nil, meta)}, nil
}

// peel returns the request JSON inside a delivered value: a JSON string
// holding JSON (message text, encoded once or twice) is unwrapped; a string
// holding other text is returned as that text for the function to judge.
func peel(raw []byte) []byte {
	raw = bytes.TrimSpace(raw)
	for range 3 {
		if len(raw) == 0 || raw[0] != '"' {
			return raw
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return raw
		}
		inner := bytes.TrimSpace([]byte(s))
		if !json.Valid(inner) {
			return []byte(s)
		}
		raw = inner
	}
	return raw
}

// objectFields returns the fields of a JSON object by lowercase name, nil for
// anything else.
func objectFields(raw []byte) map[string]json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return lowerKeys(m)
}

func lowerKeys(m map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func has(fields map[string]json.RawMessage, names ...string) bool {
	for _, n := range names {
		if _, ok := fields[n]; !ok {
			return false
		}
	}
	return true
}

func looksLikeHTTPRequest(f map[string]json.RawMessage) bool {
	return has(f, "method") && (has(f, "url") || has(f, "headers"))
}

// looksLikeEvent recognises an Event Grid schema event or a CloudEvent.
func looksLikeEvent(f map[string]json.RawMessage) bool {
	return has(f, "eventtype", "subject", "data") ||
		has(f, "specversion", "data") || has(f, "specversion", "data_base64")
}

// eventData returns an event's data as the request JSON.
func eventData(f map[string]json.RawMessage) ([]byte, error) {
	if data, ok := f["data"]; ok && !isNull(data) {
		return peel(data), nil
	}
	if b64, ok := f["data_base64"]; ok {
		var s string
		if json.Unmarshal(b64, &s) != nil {
			return nil, invalidf("the CloudEvent's data_base64 is not a string")
		}
		data, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, invalidf("the CloudEvent's data_base64 is not base64")
		}
		return peel(data), nil
	}
	return nil, invalidf("the event has no data")
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

// messageTrigger tells a Storage queue message from a Service Bus message by
// the trigger metadata the host sends with it.
func messageTrigger(meta map[string]json.RawMessage) invocation.Trigger {
	switch {
	case has(meta, "deliverycount"), has(meta, "sequencenumber"), has(meta, "enqueuedtimeutc"), has(meta, "lockeduntilutc"):
		return invocation.ServiceBus
	case has(meta, "dequeuecount"), has(meta, "popreceipt"), has(meta, "insertiontime"):
		return invocation.Queue
	default:
		return invocation.Other
	}
}

// messageAttrs picks a message's ID and delivery count for the log line, from
// an event's own fields or the trigger metadata.
func messageAttrs(event, meta map[string]json.RawMessage) logAttrs {
	var attrs logAttrs
	for _, src := range []struct {
		fields map[string]json.RawMessage
		name   string
	}{{event, "id"}, {meta, "messageid"}, {meta, "id"}} {
		if id := metaString(src.fields[src.name]); id != "" {
			attrs = append(attrs, slog.String("messageId", bounded(id, 128)))
			break
		}
	}
	for _, name := range []string{"dequeuecount", "deliverycount"} {
		if n, ok := metaInt(meta[name]); ok {
			attrs = append(attrs, slog.Int("deliveryCount", n))
			break
		}
	}
	return attrs
}

// metaString decodes a metadata value tolerantly: a string (possibly JSON
// encoded twice, "\"abc\""), a number or a boolean as its text; anything else
// is "".
func metaString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	for range 3 {
		if len(raw) == 0 {
			return ""
		}
		if raw[0] != '"' {
			var n json.Number
			if json.Unmarshal(raw, &n) == nil {
				return n.String()
			}
			var b bool
			if json.Unmarshal(raw, &b) == nil {
				return strconv.FormatBool(b)
			}
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		if len(s) < 2 || s[0] != '"' {
			return s
		}
		raw = []byte(s)
	}
	return ""
}

// metaInt decodes a metadata number that may arrive as a number or a string.
func metaInt(raw json.RawMessage) (int, bool) {
	s := metaString(raw)
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f != float64(int(f)) {
			return 0, false
		}
		n = int(f)
	}
	return n, true
}

func bounded(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// request builds the *http.Request an HTTP trigger binding describes.
func (r *azureHTTPRequest) request(function string) (*http.Request, error) {
	method := strings.ToUpper(strings.TrimSpace(r.Method))
	if !validMethod(method) {
		return nil, invalidf("the HTTP trigger's method is missing or invalid")
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, invalidf("the HTTP trigger's Url does not parse")
	}
	target := &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	if target.Path == "" {
		target.Path = "/api/" + function
	}
	if target.RawQuery == "" {
		q, err := queryValues(r.Query)
		if err != nil {
			return nil, err
		}
		target.RawQuery = q.Encode()
	}
	target.RawQuery = dropKeyParam(target.RawQuery)
	header, err := headerValues(r.Headers)
	if err != nil {
		return nil, err
	}
	body, err := r.body()
	if err != nil {
		return nil, err
	}
	return newRequest(method, target, header, body, u.Host), nil
}

// validMethod accepts an HTTP token of reasonable length.
func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// queryValues decodes the trigger's Query: an object of name → string (or
// list of strings), possibly itself sent as a JSON string.
func queryValues(raw json.RawMessage) (url.Values, error) {
	q := url.Values{}
	raw = peel(raw)
	if len(raw) == 0 || isNull(raw) {
		return q, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, invalidf("the HTTP trigger's Query is not an object")
	}
	for name, v := range m {
		vals, ok := stringList(v)
		if !ok {
			return nil, invalidf("the HTTP trigger's query parameter %q is not a string", bounded(name, 64))
		}
		q[name] = vals
	}
	return q, nil
}

// headerValues decodes the trigger's Headers: name → list of strings (or a
// single string).
func headerValues(raw json.RawMessage) (http.Header, error) {
	h := http.Header{}
	raw = peel(raw)
	if len(raw) == 0 || isNull(raw) {
		return h, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, invalidf("the HTTP trigger's Headers is not an object")
	}
	for name, v := range m {
		vals, ok := stringList(v)
		if !ok {
			return nil, invalidf("the HTTP trigger's header %q is not a string", bounded(name, 64))
		}
		for _, val := range vals {
			h.Add(name, val)
		}
	}
	return h, nil
}

// stringList accepts a string, a list of strings or null.
func stringList(raw json.RawMessage) ([]string, bool) {
	if isNull(raw) {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, true
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list, true
	}
	return nil, false
}

// body returns the request body: a string as its text (base64 decoded when
// the binding says IsBase64Encoded), any other JSON value as its JSON text
// (the host may hand over a JSON body already parsed), absent or null as empty.
func (r *azureHTTPRequest) body() ([]byte, error) {
	raw := bytes.TrimSpace(r.Body)
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	if raw[0] != '"' {
		return raw, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, invalidf("the HTTP trigger's Body is malformed")
	}
	if metaString(r.IsBase64Encoded) == "true" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, invalidf("the HTTP trigger's Body is not valid base64")
		}
		return b, nil
	}
	return []byte(s), nil
}
