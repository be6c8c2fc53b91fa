// Package alert is the alert function: it writes an analyst's verdict back
// to a Defender alert from the ticket (status, assignee, classification and
// determination, and a comment that starts with the ticket), with
// PATCH /api/alerts/{id}.
//
// Every value is checked against Defender's documented lists before any
// call; a determination the classification does not allow is a 400 naming
// the allowed ones. The alert is read first: a repeated delivery of an
// update that is already in place (same values, the same comment among the
// alert's comments) answers the same and sends nothing, so a webhook retry
// never adds a second comment. dryRun (and MDE_DRY_RUN) shows the PATCH it
// would send.
package alert

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

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

// Needs is what a token must hold to update an alert (it is read first,
// which the same permission allows).
var Needs = auth.Needs{
	App:       []auth.AnyOf{{"Alert.ReadWrite.All"}},
	Delegated: []auth.AnyOf{{"Alert.ReadWrite"}},
}

// Client is the part of *atp.Client the function uses.
type Client interface {
	GetAlert(ctx context.Context, id string) (*atp.Alert, error)
	UpdateAlert(ctx context.Context, id string, u atp.AlertUpdate) (*atp.Alert, error)
}

// Request is an alert update.
type Request struct {
	AlertID        string      `json:"alertId"`
	Status         string      `json:"status,omitempty"`
	AssignedTo     string      `json:"assignedTo,omitempty"`
	Classification string      `json:"classification,omitempty"`
	Determination  string      `json:"determination,omitempty"`
	Comment        string      `json:"comment,omitempty"`
	Ticket         string      `json:"ticket,omitempty"`
	DryRun         decode.Bool `json:"dryRun"`
}

// Result is a successful answer (200).
type Result struct {
	Alert *atp.Alert `json:"alert"`
	// Unchanged: the update was already in place; nothing was sent.
	Unchanged bool                   `json:"unchanged,omitempty"`
	DryRun    bool                   `json:"dryRun,omitempty"`
	Request   *action.PlannedRequest `json:"request,omitempty"`
}

// Service runs alert updates. It is safe for concurrent use.
type Service struct {
	Client Client
	DryRun bool         // MDE_DRY_RUN
	Logger *slog.Logger // audit and failure lines; nil discards
}

// update is a validated request.
type update struct {
	id     string
	u      atp.AlertUpdate // Comment: as sent, the ticket first
	ticket string
	dryRun bool
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
	return "", envelope.Errorf(envelope.InvalidRequest, "%s: unknown value %q; use one of %s", field, clip(v), strings.Join(names, ", "))
}

func clip(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}

// check validates r without calling anything.
func (r Request) check() (update, error) {
	var up update
	up.dryRun = r.DryRun.Value
	up.id = strings.TrimSpace(r.AlertID)
	if up.id == "" {
		return up, envelope.Errorf(envelope.InvalidRequest, "alertId: required; the Defender alert ID, such as da637308392288907382_-880718168")
	}
	if !atp.ValidAlertID(up.id) {
		return up, envelope.Errorf(envelope.InvalidRequest, "alertId: want a Defender alert ID (letters, digits, '_', '-', '.'), such as da637308392288907382_-880718168")
	}
	var err error
	if r.Status != "" {
		if up.u.Status, err = canonical("status", r.Status, []atp.AlertStatus{atp.AlertStatusNew, atp.AlertStatusInProgress, atp.AlertStatusResolved}); err != nil {
			return up, err
		}
	}
	if r.Classification != "" {
		if up.u.Classification, err = canonical("classification", r.Classification, atp.Classifications()); err != nil {
			return up, err
		}
	}
	if r.Determination != "" {
		all := append(append(atp.ClassificationTruePositive.Determinations(), atp.ClassificationInformationalExpectedActivity.Determinations()...),
			atp.ClassificationFalsePositive.Determinations()...)
		slices.Sort(all)
		if up.u.Determination, err = canonical("determination", r.Determination, slices.Compact(all)); err != nil {
			return up, err
		}
		if up.u.Classification != "" && !up.u.Classification.Allows(up.u.Determination) {
			return up, badPair(up.u.Classification, up.u.Determination)
		}
	}
	up.u.AssignedTo = strings.TrimSpace(r.AssignedTo)
	if err := action.Text("assignedTo", up.u.AssignedTo, 256); err != nil {
		return up, err
	}
	comment, ticket := strings.TrimSpace(r.Comment), strings.TrimSpace(r.Ticket)
	if err := action.Text("comment", comment, action.MaxCommentLength); err != nil {
		return up, err
	}
	if err := action.Text("ticket", ticket, action.MaxTicketLength); err != nil {
		return up, err
	}
	up.ticket = ticket
	switch {
	case ticket != "" && comment == "":
		comment = ticket
	case ticket != "" && !strings.HasPrefix(strings.ToLower(comment), strings.ToLower(ticket)):
		comment = ticket + ": " + comment
	}
	up.u.Comment = comment
	if up.u == (atp.AlertUpdate{}) {
		return up, envelope.Errorf(envelope.InvalidRequest, "nothing to update: give status, assignedTo, classification, determination or comment")
	}
	return up, nil
}

func badPair(c atp.Classification, d atp.Determination) error {
	names := make([]string, 0, 7)
	for _, x := range c.Determinations() {
		names = append(names, string(x))
	}
	return envelope.Errorf(envelope.InvalidRequest, "determination: %s is not a determination of %s; %s allows %s", d, c, c, strings.Join(names, ", "))
}

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*Result, error) {
	up, err := r.check()
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, up)
	s.audit(ctx, up, res, err)
	return res, err
}

func (s *Service) run(ctx context.Context, up update) (*Result, error) {
	cur, err := s.Client.GetAlert(ctx, up.id)
	if err != nil {
		if atp.IsNotFound(err) {
			e := *errmap.From(err)
			e.Code, e.Message = envelope.NotFound, "Defender knows no alert "+up.id
			return nil, &e
		}
		return nil, err
	}
	if up.u.Determination != "" && up.u.Classification == "" {
		c := atp.Classification(cur.Classification)
		if !c.Valid() {
			return nil, envelope.Errorf(envelope.InvalidRequest, "determination: the alert has no classification yet; give classification with it")
		}
		if !c.Allows(up.u.Determination) {
			return nil, badPair(c, up.u.Determination)
		}
	}
	// Send only what differs: a repeated delivery sends nothing.
	send := up.u
	if send.Status == cur.Status {
		send.Status = ""
	}
	if strings.EqualFold(send.AssignedTo, cur.AssignedTo) {
		send.AssignedTo = ""
	}
	if string(send.Classification) == cur.Classification {
		send.Classification = ""
	}
	if string(send.Determination) == cur.Determination {
		send.Determination = ""
	}
	if send.Determination != "" && send.Classification == "" {
		// Defender checks the pair as sent: the determination goes with
		// its classification, the request's or the alert's own.
		send.Classification = cmp.Or(up.u.Classification, atp.Classification(cur.Classification))
	}
	if send.Comment != "" && slices.ContainsFunc(cur.Comments, func(c atp.Comment) bool { return strings.TrimSpace(c.Comment) == send.Comment }) {
		send.Comment = ""
	}
	if send == (atp.AlertUpdate{}) {
		return &Result{Alert: cur, Unchanged: true}, nil
	}
	if up.dryRun || s.DryRun {
		body := map[string]any{}
		for k, v := range map[string]string{"status": string(send.Status), "assignedTo": send.AssignedTo,
			"classification": string(send.Classification), "determination": string(send.Determination), "comment": send.Comment} {
			if v != "" {
				body[k] = v
			}
		}
		return &Result{Alert: cur, DryRun: true, Request: &action.PlannedRequest{
			Method: http.MethodPatch, Path: "/api/alerts/" + url.PathEscape(up.id), Body: body}}, nil
	}
	a, err := s.Client.UpdateAlert(ctx, up.id, send)
	if err != nil {
		return nil, err
	}
	return &Result{Alert: a}, nil
}

// audit writes the one audit line of an update.
func (s *Service) audit(ctx context.Context, up update, res *Result, err error) {
	if s.Logger == nil {
		return
	}
	info := invocation.From(ctx)
	var outcome string
	switch {
	case err != nil:
		outcome = string(errmap.From(err).Code)
	case res.DryRun:
		outcome = "dryRun"
	case res.Unchanged:
		outcome = "unchanged"
	default:
		outcome = "updated"
	}
	s.Logger.LogAttrs(ctx, slog.LevelInfo, "alert "+outcome,
		slog.String("audit", "mdefn.alert"),
		slog.String("function", "alert"),
		slog.String("invocationId", info.ID),
		slog.String("trigger", string(info.Trigger)),
		slog.String("ticket", up.ticket),
		slog.String("alertId", up.id),
		slog.String("status", string(up.u.Status)),
		slog.String("classification", string(up.u.Classification)),
		slog.String("determination", string(up.u.Determination)),
		slog.String("outcome", outcome))
}

// ServeHTTP answers POST alert updates.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	res, err := s.serve(req)
	if err != nil {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
		}
		e := errmap.Write(w, err)
		errmap.LogFailure(req.Context(), s.Logger, "alert", e)
		return
	}
	_ = envelope.WriteJSON(w, http.StatusOK, res)
}

func (s *Service) serve(req *http.Request) (*Result, error) {
	var r Request
	if err := decode.PostBody(req, &r, "the request body must be a JSON object with alertId and what to change (status, assignedTo, classification, determination, comment)"); err != nil {
		return nil, err
	}
	return s.Do(req.Context(), r)
}
