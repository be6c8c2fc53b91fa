// Package alerts is the alerts function: it lists Defender alerts filtered by
// severity, status, time and device, one $top/$skip page at a time, and
// returns Defender's alert objects unmodified.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodGet, http.MethodPost}

// Needs is what a token must hold to list alerts.
var Needs = auth.Needs{
	App:       []auth.AnyOf{{"Alert.Read.All", "Alert.ReadWrite.All"}},
	Delegated: []auth.AnyOf{{"Alert.Read", "Alert.ReadWrite"}},
}

// Lister is the part of *atp.Client the function uses.
type Lister interface {
	StreamAlerts(ctx context.Context, o *atp.ListAlertsOptions, fn func(raw json.RawMessage) error) (int, error)
}

// Service lists alerts. It is safe for concurrent use.
type Service struct {
	Client Lister
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Result is one page of alerts. Value holds Defender's alert objects as they
// arrived.
type Result struct {
	Value    []json.RawMessage `json:"value"`
	Count    int               `json:"count"`
	NextSkip *int              `json:"nextSkip,omitempty"`
}

// List runs one alerts request and calls emit with each alert's raw JSON, in
// Defender's order; raw is valid only during the call. It returns the count and, when the page was full, the
// skip of the next page.
func (s *Service) List(ctx context.Context, r Request, emit func(json.RawMessage) error) (count int, nextSkip *int, err error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	o, err := r.Options(now())
	if err != nil {
		return 0, nil, err
	}
	n, err := s.Client.StreamAlerts(ctx, o, emit)
	if err != nil {
		return 0, nil, err
	}
	if n == o.Top {
		k := o.Skip + n
		nextSkip = &k
	}
	return n, nextSkip, nil
}

// Do runs one request and returns the whole page.
func (s *Service) Do(ctx context.Context, r Request) (*Result, error) {
	res := &Result{Value: []json.RawMessage{}}
	n, next, err := s.List(ctx, r, func(raw json.RawMessage) error {
		// raw is only valid during the call: keep a copy.
		res.Value = append(res.Value, append(json.RawMessage(nil), raw...))
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Count, res.NextSkip = n, next
	return res, nil
}

// ServeHTTP answers GET (query string) and POST (JSON body) alerts requests.
// The answer is written while Defender's page is decoded. Up to 64 KiB of it
// is buffered, so a failure before that is an error envelope; a larger page
// is streamed to a network writer (pageWriter), and a failure after the
// status was sent aborts the connection (the caller sees a broken answer,
// never a short one that looks complete). A page is never held twice.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var r Request
	var err error
	switch req.Method {
	case http.MethodGet:
		r, err = ParseQuery(req.URL.Query())
	case http.MethodPost:
		var body bytes.Buffer
		if _, err = body.ReadFrom(req.Body); err == nil {
			err = decode.JSON(body.Bytes(), &r)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		err = envelope.Errorf(envelope.MethodNotAllowed, "use GET or POST")
	}
	if err != nil {
		s.fail(w, req, err)
		return
	}
	out := newPageWriter(w)
	defer out.release()
	out.writeString(`{"value":[`)
	first := true
	n, next, err := s.List(req.Context(), r, func(raw json.RawMessage) error {
		if !first {
			out.writeByte(',')
		}
		first = false
		out.write(raw)
		return out.err // the caller is gone: stop reading Defender's page
	})
	if err != nil {
		if out.committed() {
			errmap.LogFailure(req.Context(), s.Logger, "alerts", errmap.From(err))
			panic(http.ErrAbortHandler)
		}
		s.fail(w, req, err)
		return
	}
	out.writeString(`],"count":`)
	out.writeString(strconv.Itoa(n))
	if next != nil {
		out.writeString(`,"nextSkip":`)
		out.writeString(strconv.Itoa(*next))
	}
	out.writeString("}\n")
	out.finish()
}

func (s *Service) fail(w http.ResponseWriter, req *http.Request, err error) {
	e := errmap.Write(w, err)
	errmap.LogFailure(req.Context(), s.Logger, "alerts", e)
}
