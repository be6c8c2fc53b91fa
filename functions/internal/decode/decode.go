// Package decode reads the functions' requests from JSON bodies and query
// strings tolerantly (a list may be one string, a number may be a string) but
// strictly (unknown fields, trailing data and wrong types are errors that
// name the field).
package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mdefn/mdefn/internal/envelope"
)

// StringList is a JSON array of strings, or a single string (which may hold
// comma-separated items).
type StringList []string

// UnmarshalJSON implements json.Unmarshaler.
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = SplitList([]string{s})
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return errors.New("want a string or an array of strings")
	}
	*l = SplitList(a)
	return nil
}

// SplitList splits each value on commas, trims spaces and drops empty items.
func SplitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Int is a JSON number or a string holding one.
type Int struct {
	Value int
	Set   bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(b []byte) error {
	text, null, err := scalar(b)
	if err != nil || null {
		*n = Int{}
		return err
	}
	v, err := strconv.Atoi(text)
	if err != nil {
		return errors.New("want a whole number")
	}
	*n = Int{Value: v, Set: true}
	return nil
}

// scalar returns a JSON scalar's text, unquoting a string.
func scalar(b []byte) (text string, null bool, err error) {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return "", true, nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", false, err
		}
		return strings.TrimSpace(s), false, nil
	}
	return string(b), false, nil
}

// Bool is a JSON boolean or a string "true"/"false".
type Bool struct {
	Value bool
	Set   bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *Bool) UnmarshalJSON(b []byte) error {
	text, null, err := scalar(b)
	if err != nil || null {
		*v = Bool{}
		return err
	}
	x, err := ParseBool(text)
	if err != nil {
		return err
	}
	*v = Bool{Value: x, Set: true}
	return nil
}

// ParseBool accepts true/false (any case), 1/0 and yes/no.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no", "":
		return false, nil
	}
	return false, errors.New("want true or false")
}

// JSON decodes body into v strictly: one JSON object, no unknown fields, no
// trailing data. Errors are invalid_request errors naming the field.
func JSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(err, body, v)
	}
	if _, err := dec.Token(); err != io.EOF {
		return envelope.Errorf(envelope.InvalidRequest, "the request body must hold exactly one JSON object")
	}
	return nil
}

func invalid(err error, body []byte, v any) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		if ute.Field != "" {
			return envelope.Errorf(envelope.InvalidRequest, "field %q: want %s", ute.Field, ute.Type)
		}
		return envelope.Errorf(envelope.InvalidRequest, "the request body must be a JSON object")
	case errors.As(err, &se):
		return envelope.Errorf(envelope.InvalidRequest, "the request body is not valid JSON (at byte %d)", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return envelope.Errorf(envelope.InvalidRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	// A field's own decoder (Bool, Int, StringList) refused its value:
	// encoding/json does not say which field, so find it.
	if name := failingField(body, v); name != "" {
		return envelope.Errorf(envelope.InvalidRequest, "field %q: %s", name, err.Error())
	}
	return envelope.Errorf(envelope.InvalidRequest, "invalid request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// failingField returns the JSON name of the top-level field of *v whose
// value in body does not decode on its own, or "".
func failingField(body []byte, v any) string {
	var raw map[string]json.RawMessage
	rt := reflect.TypeOf(v)
	if json.Unmarshal(body, &raw) != nil || rt.Kind() != reflect.Pointer || rt.Elem().Kind() != reflect.Struct {
		return ""
	}
	return findFailing(rt.Elem(), raw)
}

func findFailing(rt reflect.Type, raw map[string]json.RawMessage) string {
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			if n := findFailing(f.Type, raw); n != "" {
				return n
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		for k, msg := range raw {
			if strings.EqualFold(k, name) && json.Unmarshal(msg, reflect.New(f.Type).Interface()) != nil {
				return k
			}
		}
	}
	return ""
}

var dayRe = regexp.MustCompile(`^(\d+(?:\.\d+)?)d`)

// Since parses an RFC 3339 time, or a Go duration with `d` for days added
// ("90m", "36h", "7d", "1d12h"), as a time before now. field names the
// parameter in errors.
func Since(field, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := Duration(s)
	if err != nil || d < 0 {
		return time.Time{}, envelope.Errorf(envelope.InvalidRequest,
			"%s: %q is neither an RFC 3339 time (2024-05-01T00:00:00Z) nor a duration like 90m, 36h or 7d", field, s)
	}
	return now.Add(-d).UTC(), nil
}

// Duration parses a Go duration that may start with a number of days ("7d", "1d12h").
func Duration(s string) (time.Duration, error) {
	var days time.Duration
	if m := dayRe.FindStringSubmatch(s); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil || f > 36500 {
			return 0, errors.New("bad number of days")
		}
		days = time.Duration(f * float64(24*time.Hour))
		s = s[len(m[0]):]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return days + d, nil
}

// MaxBody bounds a request body (the platform bounds it too).
const MaxBody = 1 << 20

// PostBody decodes a POST request's JSON body strictly into v: 405 for
// another method, 413 over MaxBody, 400 with the message empty when the
// body is blank, and JSON's errors.
func PostBody(req *http.Request, v any, empty string) error {
	if req.Method != http.MethodPost {
		return envelope.Errorf(envelope.MethodNotAllowed, "use POST with a JSON body")
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBody+1))
	if err != nil {
		return envelope.Errorf(envelope.InvalidRequest, "the request body could not be read")
	}
	if len(body) > MaxBody {
		return envelope.Errorf(envelope.PayloadTooLarge, "the request body is over %d bytes", MaxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return envelope.Errorf(envelope.InvalidRequest, "%s", empty)
	}
	return JSON(body, v)
}
