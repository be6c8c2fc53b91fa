// Package indicators is the indicators function: it blocks (or allows,
// audits, alerts on) a file hash, certificate, IP address, domain or URL
// everywhere with a Defender indicator, from a playbook that has confirmed
// it, and deletes an indicator again.
//
//	{"indicatorType": "FileSha256", "indicatorValue": "<hash>", "action": "Block",
//	 "title": "...", "description": "...", "severity": "High",
//	 "expirationTime": "30d", "rbacGroupNames": ["..."], "ticket": "INC1", "dryRun": false}
//
// indicatorValue may be a list (a blocklist from a threat-intelligence
// feed): up to 500 values of the one type go in one import call. Values are
// checked by type before any call. {"delete": true, "id": "<indicator id>"}
// deletes one.
//
// MDE_INDICATOR_NEVER_BLOCK lists what must never be blocked: domains
// (with their subdomains), IP addresses or CIDR ranges, and hashes. A
// blocking action (Block, AlertAndBlock, BlockAndRemediate, Warn) on a
// value it covers is refused with 403 protected_indicator, the way
// protected tags guard isolation; a domain is covered when it is the
// protected one, one of its subdomains or a parent of it, and a URL by its
// host. Nothing is sent under dry run.
package indicators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/internal/invocation"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodPost}

// Needs is what a token must hold to submit or delete indicators.
var Needs = auth.Needs{
	App:       []auth.AnyOf{{"Ti.ReadWrite", "Ti.ReadWrite.All"}},
	Delegated: []auth.AnyOf{{"Ti.ReadWrite"}},
}

// Client is the part of *atp.Client the function uses.
type Client interface {
	SubmitIndicator(ctx context.Context, in atp.Indicator) (*atp.Indicator, error)
	ImportIndicators(ctx context.Context, in []atp.Indicator) ([]atp.ImportResult, error)
	DeleteIndicator(ctx context.Context, id string) error
}

// Values is one value or a list of them (never split on commas: a URL may
// hold one).
type Values []string

// UnmarshalJSON implements json.Unmarshaler.
func (v *Values) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*v = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Values{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return errors.New("want a string or an array of strings")
	}
	*v = a
	return nil
}

// Request is an indicator request.
type Request struct {
	IndicatorType  string            `json:"indicatorType,omitempty"`
	IndicatorValue Values            `json:"indicatorValue,omitempty"`
	Action         string            `json:"action,omitempty"`
	Title          string            `json:"title,omitempty"`
	Description    string            `json:"description,omitempty"`
	Severity       string            `json:"severity,omitempty"`
	ExpirationTime string            `json:"expirationTime,omitempty"`
	RBACGroupNames decode.StringList `json:"rbacGroupNames,omitempty"`
	Ticket         string            `json:"ticket,omitempty"`
	DryRun         decode.Bool       `json:"dryRun"`
	Delete         decode.Bool       `json:"delete"`
	ID             string            `json:"id,omitempty"`
}

// Result is a successful answer (200).
type Result struct {
	// Indicator: the one indicator submitted.
	Indicator *atp.Indicator `json:"indicator,omitempty"`
	// Results and Failed: an import of several values, one result each.
	Results []atp.ImportResult `json:"results,omitempty"`
	Failed  int                `json:"failed,omitempty"`
	// Deleted and ID: a deletion.
	Deleted bool   `json:"deleted,omitempty"`
	ID      string `json:"id,omitempty"`
	// DryRun and Request: what would have been sent.
	DryRun  bool                   `json:"dryRun,omitempty"`
	Request *action.PlannedRequest `json:"request,omitempty"`
}

// Service runs indicator requests. It is safe for concurrent use.
type Service struct {
	Client     Client
	NeverBlock *NeverBlock      // MDE_INDICATOR_NEVER_BLOCK; nil protects nothing
	DryRun     bool             // MDE_DRY_RUN
	Logger     *slog.Logger     // audit and failure lines; nil discards
	Now        func() time.Time // nil: time.Now
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// canonical returns the documented value v matches without regard to case.
func canonical[T ~string](field, v string, allowed []T) (T, error) {
	v = strings.TrimSpace(v)
	for _, a := range allowed {
		if strings.EqualFold(v, string(a)) {
			return a, nil
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	if r := []rune(v); len(r) > 64 {
		v = string(r[:64]) + "…"
	}
	return "", envelope.Errorf(envelope.InvalidRequest, "%s: unknown value %q; use one of %s", field, v, strings.Join(names, ", "))
}

// plan is a validated request.
type plan struct {
	del        string          // a deletion's indicator ID
	indicators []atp.Indicator // submissions
	ticket     string
	dryRun     bool
}

// check validates r without calling anything.
func (r Request) check(now time.Time) (plan, error) {
	p := plan{dryRun: r.DryRun.Value, ticket: strings.TrimSpace(r.Ticket)}
	if err := action.Text("ticket", p.ticket, action.MaxTicketLength); err != nil {
		return p, err
	}
	if r.Delete.Value {
		id := strings.TrimSpace(r.ID)
		if id == "" || len(id) > 20 || strings.Trim(id, "0123456789") != "" {
			return p, envelope.Errorf(envelope.InvalidRequest, "id: a deletion names the indicator's numeric ID, as the submission answered it")
		}
		if len(r.IndicatorValue) > 0 || r.IndicatorType != "" || r.Action != "" {
			return p, envelope.Errorf(envelope.InvalidRequest, "delete: give only id (and ticket), not the indicator's fields")
		}
		p.del = id
		return p, nil
	}
	if r.ID != "" {
		return p, envelope.Errorf(envelope.InvalidRequest, "id: only a deletion (delete: true) names an indicator ID; a submission updates the indicator of the same value")
	}
	typ, err := canonical("indicatorType", r.IndicatorType, atp.IndicatorTypes())
	if err != nil {
		return p, err
	}
	act, err := canonical("action", r.Action, atp.IndicatorActions())
	if err != nil {
		return p, err
	}
	if len(r.IndicatorValue) == 0 {
		return p, envelope.Errorf(envelope.InvalidRequest, "indicatorValue: required (a value, or a list of up to %d)", atp.MaxIndicatorsPerImport)
	}
	if len(r.IndicatorValue) > atp.MaxIndicatorsPerImport {
		return p, envelope.Errorf(envelope.InvalidRequest, "indicatorValue: %d values; Defender imports at most %d at once", len(r.IndicatorValue), atp.MaxIndicatorsPerImport)
	}
	title, desc := strings.TrimSpace(r.Title), strings.TrimSpace(r.Description)
	if title == "" {
		return p, envelope.Errorf(envelope.InvalidRequest, "title: required; it is shown with every alert and block the indicator causes")
	}
	if desc == "" {
		desc = title
	}
	if p.ticket != "" && !strings.HasPrefix(strings.ToLower(title), strings.ToLower(p.ticket)) {
		title = p.ticket + ": " + title
	}
	if p.ticket != "" && !strings.HasPrefix(strings.ToLower(desc), strings.ToLower(p.ticket)) {
		desc = p.ticket + ": " + desc
	}
	if err := action.Text("title", title, 255); err != nil {
		return p, err
	}
	if err := action.Text("description", desc, action.MaxCommentLength); err != nil {
		return p, err
	}
	sev := ""
	if r.Severity != "" {
		s, err := canonical("severity", r.Severity, []string{"Informational", "Low", "Medium", "High"})
		if err != nil {
			return p, err
		}
		sev = s
	}
	var exp *time.Time
	if e := strings.TrimSpace(r.ExpirationTime); e != "" {
		t, err := expiration(e, now)
		if err != nil {
			return p, err
		}
		exp = &t
	}
	var groups []string
	for _, g := range r.RBACGroupNames {
		if err := action.Text("rbacGroupNames", g, 255); err != nil {
			return p, err
		}
		groups = append(groups, g)
	}
	seen := map[string]bool{}
	for i, v := range r.IndicatorValue {
		v = strings.TrimSpace(v)
		if err := atp.ValidIndicatorValue(typ, v); err != nil {
			var ae *atp.ArgumentError
			reason := err.Error()
			if errors.As(err, &ae) {
				reason = ae.Reason
			}
			return p, envelope.Errorf(envelope.InvalidRequest, "indicatorValue[%d] %q: %s", i, clip(v), reason)
		}
		if seen[strings.ToLower(v)] {
			continue
		}
		seen[strings.ToLower(v)] = true
		p.indicators = append(p.indicators, atp.Indicator{IndicatorValue: v, IndicatorType: typ, Action: act, Title: title,
			Description: desc, Severity: sev, ExpirationTime: exp, RBACGroupNames: groups})
	}
	return p, nil
}

// expiration parses an RFC 3339 time or a duration from now ("30d").
func expiration(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if !t.After(now) {
			return time.Time{}, envelope.Errorf(envelope.InvalidRequest, "expirationTime: %s is not in the future", s)
		}
		return t.UTC(), nil
	}
	d, err := decode.Duration(s)
	if err != nil || d <= 0 {
		return time.Time{}, envelope.Errorf(envelope.InvalidRequest,
			"expirationTime: %q is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration like 36h or 30d", clip(s))
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

func clip(s string) string {
	if r := []rune(s); len(r) > 80 {
		return string(r[:80]) + "…"
	}
	return s
}

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*Result, error) {
	p, err := r.check(s.now())
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, p)
	s.audit(ctx, p, res, err)
	return res, err
}

func (s *Service) run(ctx context.Context, p plan) (*Result, error) {
	dry := p.dryRun || s.DryRun
	if p.del != "" {
		if dry {
			return &Result{DryRun: true, ID: p.del, Request: &action.PlannedRequest{Method: http.MethodDelete, Path: "/api/indicators/" + p.del}}, nil
		}
		if err := s.Client.DeleteIndicator(ctx, p.del); err != nil {
			if atp.IsNotFound(err) {
				e := *errmap.From(err)
				e.Code, e.Message = envelope.NotFound, "Defender knows no indicator "+p.del
				return nil, &e
			}
			return nil, err
		}
		return &Result{Deleted: true, ID: p.del}, nil
	}
	if p.indicators[0].Action.Blocks() {
		for _, in := range p.indicators {
			if why := s.NeverBlock.Covers(in.IndicatorType, in.IndicatorValue); why != "" {
				return nil, envelope.Errorf(envelope.ProtectedIndicator, "%s %q may never be blocked: MDE_INDICATOR_NEVER_BLOCK lists %s; nothing was sent",
					in.IndicatorType, clip(in.IndicatorValue), why)
			}
		}
	}
	if len(p.indicators) == 1 {
		if dry {
			return &Result{DryRun: true, Request: &action.PlannedRequest{Method: http.MethodPost, Path: "/api/indicators", Body: bodyOf(p.indicators[0])}}, nil
		}
		in, err := s.Client.SubmitIndicator(ctx, p.indicators[0])
		if err != nil {
			return nil, err
		}
		return &Result{Indicator: in}, nil
	}
	if dry {
		list := make([]any, len(p.indicators))
		for i, in := range p.indicators {
			list[i] = bodyOf(in)
		}
		return &Result{DryRun: true, Request: &action.PlannedRequest{Method: http.MethodPost, Path: "/api/indicators/import",
			Body: map[string]any{"Indicators": list}}}, nil
	}
	results, err := s.Client.ImportIndicators(ctx, p.indicators)
	if err != nil {
		return nil, err
	}
	res := &Result{Results: results}
	for _, r := range results {
		if r.IsFailed {
			res.Failed++
		}
	}
	return res, nil
}

// bodyOf is the JSON object an indicator is sent as.
func bodyOf(in atp.Indicator) map[string]any {
	b, _ := json.Marshal(in)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// audit writes the one audit line of a request.
func (s *Service) audit(ctx context.Context, p plan, res *Result, err error) {
	if s.Logger == nil {
		return
	}
	info := invocation.From(ctx)
	outcome := "submitted"
	switch {
	case err != nil:
		outcome = string(errmap.From(err).Code)
	case res.DryRun:
		outcome = "dryRun"
	case res.Deleted:
		outcome = "deleted"
	}
	attrs := []slog.Attr{
		slog.String("audit", "mdefn.indicators"),
		slog.String("function", "indicators"),
		slog.String("invocationId", info.ID),
		slog.String("trigger", string(info.Trigger)),
		slog.String("ticket", p.ticket),
		slog.String("outcome", outcome),
	}
	if p.del != "" {
		attrs = append(attrs, slog.String("indicatorId", p.del))
	} else {
		first := p.indicators[0]
		attrs = append(attrs, slog.String("indicatorType", string(first.IndicatorType)), slog.String("action", string(first.Action)),
			slog.Int("values", len(p.indicators)), slog.String("firstValue", clip(first.IndicatorValue)))
	}
	if res != nil && res.Failed > 0 {
		attrs = append(attrs, slog.Int("failed", res.Failed))
	}
	s.Logger.LogAttrs(ctx, slog.LevelInfo, "indicators "+outcome, attrs...)
}

// ServeHTTP answers POST indicator requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	res, err := s.serve(req)
	if err != nil {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
		}
		e := errmap.Write(w, err)
		errmap.LogFailure(req.Context(), s.Logger, "indicators", e)
		return
	}
	_ = envelope.WriteJSON(w, http.StatusOK, res)
}

func (s *Service) serve(req *http.Request) (*Result, error) {
	var r Request
	if err := decode.PostBody(req, &r, "the request body must be a JSON object with indicatorType, indicatorValue, action and title (or delete with id)"); err != nil {
		return nil, err
	}
	return s.Do(req.Context(), r)
}
