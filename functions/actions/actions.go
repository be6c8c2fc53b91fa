// Package actions is the actions function: the status of a machine action
// that another function started (isolate, scan, restrict, collect,
// quarantine), its cancellation, and the download link of a collected
// investigation package.
//
// HTTP:
//
//	GET  /api/actions/{id}          the action: 200 once it has ended (Succeeded,
//	                                Failed, Cancelled, TimeOut), 202 with
//	                                Retry-After and Location while it is
//	                                Pending or InProgress
//	POST /api/actions/{id}/cancel   {"comment", "ticket", "dryRun"}: cancel it
//	GET  /api/actions/{id}/package  {"actionId", "uri"}: the package link of
//	                                a collection that has succeeded (202
//	                                while it runs)
//
// Deliveries without a path (a queue message, SQS, EventBridge, a direct
// invoke from Step Functions) are a POST of {"id", "cancel", "package",
// "comment", "ticket", "dryRun"} to /api/actions. The path is read from its
// end, so the same handler answers /api/actions/{id} behind Azure's route and
// /{id} on a Lambda Function URL of its own.
//
// Every answer carries "pending": true while the action has not ended, so a
// Step Functions Choice state can loop on it without reading the status.
package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
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
var Methods = []string{http.MethodGet, http.MethodPost}

// Needs is what a token must hold to read an action; NeedsCancel to cancel
// one (Defender accepts any one of the action permissions, and the action is
// read first); NeedsPackage to read a package link (Defender documents the
// read permissions for applications and Machine.CollectForensics for users).
var (
	Needs = auth.Needs{
		App:       []auth.AnyOf{{"Machine.Read.All", "Machine.ReadWrite.All"}},
		Delegated: []auth.AnyOf{{"Machine.Read", "Machine.ReadWrite"}},
	}
	NeedsCancel = auth.Needs{
		App:       []auth.AnyOf{{"Machine.Read.All", "Machine.ReadWrite.All"}, cancelPermissions},
		Delegated: []auth.AnyOf{{"Machine.Read", "Machine.ReadWrite"}, cancelPermissions},
	}
	NeedsPackage = auth.Needs{
		App:       []auth.AnyOf{{"Machine.Read.All", "Machine.ReadWrite.All"}},
		Delegated: []auth.AnyOf{{"Machine.CollectForensics"}},
	}
)

// cancelPermissions are the permissions Defender accepts for a cancellation,
// the least privileged first.
var cancelPermissions = auth.AnyOf{"Machine.Scan", "Machine.CollectForensics", "Machine.RestrictExecution",
	"Machine.StopAndQuarantine", "Machine.Isolate", "Machine.Offboard", "Machine.LiveResponse"}

// Client is the part of *atp.Client the function uses.
type Client interface {
	GetMachineAction(ctx context.Context, id string) (*atp.MachineAction, error)
	CancelMachineAction(ctx context.Context, id, comment string) (*atp.MachineAction, error)
	GetPackageURI(ctx context.Context, id string) (string, error)
}

// Request is what a delivery without a path carries; over HTTP the path
// gives ID and the operation, and the body (a cancellation's) the rest.
type Request struct {
	ID       string      `json:"id,omitempty"`
	ActionID string      `json:"actionId,omitempty"` // the same as id
	Cancel   decode.Bool `json:"cancel"`
	Package  decode.Bool `json:"package"`
	Comment  string      `json:"comment,omitempty"`
	Ticket   string      `json:"ticket,omitempty"`
	DryRun   decode.Bool `json:"dryRun"`
}

// Op is what a request asks of the action.
type Op string

// The operations.
const (
	OpGet     Op = "get"
	OpCancel  Op = "cancel"
	OpPackage Op = "package"
)

// Result is a successful answer. Status is 200, or 202 while the action has
// not ended (then Retry-After and Location go with it).
type Result struct {
	Status int `json:"-"`
	// Pending: the action is Pending or InProgress (always present).
	Pending bool               `json:"pending"`
	Action  *atp.MachineAction `json:"action,omitempty"`
	// AlreadyCancelled: a cancellation found the action cancelled already
	// (a repeated delivery); nothing was sent.
	AlreadyCancelled bool `json:"alreadyCancelled,omitempty"`
	// ActionID and URI: the package link (OpPackage, once it exists).
	ActionID string `json:"actionId,omitempty"`
	URI      string `json:"uri,omitempty"`
	// DryRun and Request: what a cancellation would have sent.
	DryRun  bool                   `json:"dryRun,omitempty"`
	Request *action.PlannedRequest `json:"request,omitempty"`
}

// Service runs action requests. It is safe for concurrent use.
type Service struct {
	Client Client
	DryRun bool         // MDE_DRY_RUN: a cancellation is never sent
	Logger *slog.Logger // failure and audit lines; nil discards
}

// call is one validated request.
type call struct {
	id      string // lower-case GUID
	op      Op
	comment string // as sent: the ticket first
	ticket  string
	dryRun  bool
}

// check validates r for op (OpGet when the request names none).
func (r Request) check(pathID string, op Op) (call, error) {
	c := call{op: op, dryRun: r.DryRun.Value}
	id := strings.TrimSpace(r.ID)
	if alt := strings.TrimSpace(r.ActionID); alt != "" {
		if id != "" && !strings.EqualFold(id, alt) {
			return c, envelope.Errorf(envelope.InvalidRequest, "id and actionId name different actions; give one")
		}
		id = alt
	}
	if pathID != "" {
		if id != "" && !strings.EqualFold(id, pathID) {
			return c, envelope.Errorf(envelope.InvalidRequest, "the body's id names another action than the path")
		}
		id = pathID
	}
	if id == "" {
		return c, envelope.Errorf(envelope.InvalidRequest, "id: required; the machine action ID (a GUID) that the action function answered with")
	}
	if !atp.ValidActionID(id) {
		return c, envelope.Errorf(envelope.InvalidRequest, "id: want a machine action ID, a GUID such as 7d5f7a8e-3c2b-4f1e-9a6d-0b1c2d3e4f5a")
	}
	c.id = strings.ToLower(id)
	switch {
	case r.Cancel.Value && r.Package.Value:
		return c, envelope.Errorf(envelope.InvalidRequest, "cancel and package: ask for one of them")
	case r.Cancel.Value:
		if op == OpPackage {
			return c, envelope.Errorf(envelope.InvalidRequest, "cancel: not allowed on the package path")
		}
		c.op = OpCancel
	case r.Package.Value:
		if op == OpCancel {
			return c, envelope.Errorf(envelope.InvalidRequest, "package: not allowed on the cancel path")
		}
		c.op = OpPackage
	}
	if c.op != OpCancel {
		if r.Comment != "" || r.Ticket != "" {
			return c, envelope.Errorf(envelope.InvalidRequest, "comment and ticket belong to a cancellation (cancel: true, or POST …/cancel)")
		}
		return c, nil
	}
	comment := strings.TrimSpace(r.Comment)
	if comment == "" {
		return c, envelope.Errorf(envelope.InvalidRequest, "comment: required; say why the action is cancelled (it is recorded in Defender's action history)")
	}
	if err := action.Text("comment", comment, action.MaxCommentLength); err != nil {
		return c, err
	}
	ticket := strings.TrimSpace(r.Ticket)
	if err := action.Text("ticket", ticket, action.MaxTicketLength); err != nil {
		return c, err
	}
	c.ticket, c.comment = ticket, comment
	if ticket != "" && !strings.HasPrefix(strings.ToLower(comment), strings.ToLower(ticket)) {
		c.comment = ticket + ": " + comment
	}
	return c, nil
}

// Do runs one request; pathID and op come from the URL path ("" and OpGet
// for a delivery without one).
func (s *Service) Do(ctx context.Context, r Request, pathID string, op Op) (*Result, error) {
	c, err := r.check(pathID, op)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, c)
	if c.op == OpCancel {
		s.audit(ctx, c, res, err)
	}
	return res, err
}

func (s *Service) run(ctx context.Context, c call) (*Result, error) {
	a, err := s.Client.GetMachineAction(ctx, c.id)
	if err != nil {
		return nil, notFound(err, "Defender knows no machine action "+c.id)
	}
	switch c.op {
	case OpCancel:
		return s.cancel(ctx, c, a)
	case OpPackage:
		return s.pkg(ctx, c, a)
	}
	return answer(a), nil
}

// answer is the status answer of a.
func answer(a *atp.MachineAction) *Result {
	res := &Result{Status: http.StatusOK, Action: a}
	if a.Status.Active() {
		res.Status, res.Pending = http.StatusAccepted, true
	}
	return res
}

func (s *Service) cancel(ctx context.Context, c call, a *atp.MachineAction) (*Result, error) {
	switch {
	case a.Status == atp.ActionCancelled:
		// A repeated delivery of the cancellation: its success.
		return &Result{Status: http.StatusOK, Action: a, AlreadyCancelled: true}, nil
	case !a.Status.Active():
		return nil, envelope.Errorf(envelope.InvalidRequest, "the action has already ended (%s); only a Pending or InProgress action can be cancelled", a.Status)
	}
	if c.dryRun || s.DryRun {
		return &Result{Status: http.StatusOK, Pending: true, Action: a, DryRun: true, Request: &action.PlannedRequest{
			Method: http.MethodPost,
			Path:   "/api/machineactions/" + c.id + "/cancel",
			Body:   map[string]any{"Comment": c.comment},
		}}, nil
	}
	done, err := s.Client.CancelMachineAction(ctx, c.id, c.comment)
	if err != nil {
		if atp.IsNotFound(err) {
			return nil, notFound(err, "Defender knows no machine action "+c.id)
		}
		// Defender refuses a cancellation that lost the race with the
		// action's end (or with another cancellation): read it again and
		// answer with what it is now.
		var re *atp.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			if now, gerr := s.Client.GetMachineAction(ctx, c.id); gerr == nil && !now.Status.Active() {
				if now.Status == atp.ActionCancelled {
					return &Result{Status: http.StatusOK, Action: now, AlreadyCancelled: true}, nil
				}
				return nil, envelope.Errorf(envelope.InvalidRequest, "the action has already ended (%s); only a Pending or InProgress action can be cancelled", now.Status)
			}
		}
		return nil, err
	}
	return &Result{Status: http.StatusOK, Pending: done.Status.Active(), Action: done}, nil
}

func (s *Service) pkg(ctx context.Context, c call, a *atp.MachineAction) (*Result, error) {
	if a.Type != atp.ActionCollectInvestigationPackage {
		return nil, envelope.Errorf(envelope.InvalidRequest, "the action is a %s, not a CollectInvestigationPackage; only a collection has a package", a.Type)
	}
	switch {
	case a.Status.Active():
		return answer(a), nil
	case a.Status != atp.ActionSucceeded:
		return nil, envelope.Errorf(envelope.NotFound, "the collection ended %s; it has no package (start a new one with /api/collect)", a.Status)
	}
	uri, err := s.Client.GetPackageURI(ctx, c.id)
	if err != nil {
		return nil, notFound(err, "Defender has no package for machine action "+c.id+" yet; try again shortly")
	}
	return &Result{Status: http.StatusOK, Action: a, ActionID: c.id, URI: uri}, nil
}

// notFound gives Defender's 404 (mapped to not_found with its upstream
// part) a message that says which action.
func notFound(err error, message string) error {
	if !atp.IsNotFound(err) {
		return err
	}
	e := *errmap.From(err)
	e.Code, e.Message = envelope.NotFound, message
	return &e
}

// audit writes the one audit line of a cancellation (reads have none).
func (s *Service) audit(ctx context.Context, c call, res *Result, err error) {
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
	case res.AlreadyCancelled:
		outcome = "alreadyCancelled"
	default:
		outcome = "cancelled"
	}
	attrs := []slog.Attr{
		slog.String("audit", "mdefn.actions"),
		slog.String("function", "actions"),
		slog.String("invocationId", info.ID),
		slog.String("trigger", string(info.Trigger)),
		slog.String("action", "cancel"),
		slog.String("ticket", c.ticket),
		slog.String("actionId", c.id),
		slog.String("outcome", outcome),
	}
	if res != nil && res.Action != nil {
		attrs = append(attrs, slog.String("machineId", res.Action.MachineID), slog.String("actionType", string(res.Action.Type)),
			slog.String("actionStatus", string(res.Action.Status)))
	}
	s.Logger.LogAttrs(ctx, slog.LevelInfo, "actions cancel "+outcome, attrs...)
}

// maxBody bounds a request body (the platform bounds it too).
const maxBody = 64 << 10

// ServeHTTP answers the routes of the package comment.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	res, err := s.serve(req)
	if err != nil {
		var ae *allowError
		if errors.As(err, &ae) {
			w.Header().Set("Allow", ae.allow)
		}
		e := errmap.Write(w, err)
		errmap.LogFailure(req.Context(), s.Logger, "actions", e)
		return
	}
	if res.Pending && res.Action != nil {
		w.Header().Set("Location", action.ActionURL(req, res.Action.ID))
		w.Header().Set("Retry-After", strconv.Itoa(action.PollSeconds))
	}
	_ = envelope.WriteJSON(w, res.Status, res)
}

func (s *Service) serve(req *http.Request) (*Result, error) {
	id, op, err := parsePath(req.URL)
	if err != nil {
		return nil, err
	}
	var r Request
	switch req.Method {
	case http.MethodGet:
		if op == OpCancel {
			return nil, methodNotAllowed("POST", "a cancellation is a POST with a JSON body holding comment")
		}
		if id == "" {
			return nil, envelope.Errorf(envelope.InvalidRequest, "GET /api/actions/{id}: name the machine action in the path")
		}
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		if err != nil {
			return nil, envelope.Errorf(envelope.InvalidRequest, "the request body could not be read")
		}
		if len(body) > maxBody {
			return nil, envelope.Errorf(envelope.PayloadTooLarge, "the request body is over %d bytes", maxBody)
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := decode.JSON(body, &r); err != nil {
				return nil, err
			}
		} else if id == "" {
			return nil, envelope.Errorf(envelope.InvalidRequest, "the request body must be a JSON object with id (and cancel with comment, or package)")
		}
	default:
		return nil, methodNotAllowed("GET, POST", "use GET /api/actions/{id}, POST /api/actions/{id}/cancel or GET /api/actions/{id}/package")
	}
	return s.Do(req.Context(), r, id, op)
}

func methodNotAllowed(allow, message string) error {
	return &allowError{allow: allow, err: envelope.Errorf(envelope.MethodNotAllowed, "%s", message)}
}

// allowError is a 405 with its Allow header.
type allowError struct {
	allow string
	err   *envelope.Error
}

func (e *allowError) Error() string { return e.err.Error() }
func (e *allowError) Unwrap() error { return e.err }

// parsePath reads the action ID and operation from the end of the path:
// …/{id}, …/{id}/cancel, …/{id}/package, or nothing (…/actions, /).
func parsePath(u *url.URL) (id string, op Op, err error) {
	p := strings.Trim(u.EscapedPath(), "/")
	segs := strings.Split(p, "/")
	last := func() string { return segs[len(segs)-1] }
	op = OpGet
	if len(segs) > 0 {
		switch strings.ToLower(last()) {
		case "cancel":
			op, segs = OpCancel, segs[:len(segs)-1]
		case "package":
			op, segs = OpPackage, segs[:len(segs)-1]
		}
	}
	if len(segs) == 0 || last() == "" || strings.EqualFold(last(), "actions") || strings.EqualFold(last(), "api") {
		if op != OpGet {
			return "", op, envelope.Errorf(envelope.InvalidRequest, "name the machine action in the path: /api/actions/{id}/%s", op)
		}
		return "", op, nil
	}
	seg, uerr := url.PathUnescape(last())
	if uerr != nil || !atp.ValidActionID(seg) {
		return "", op, envelope.Errorf(envelope.InvalidRequest, "%s: not a machine action ID; want a GUID such as 7d5f7a8e-3c2b-4f1e-9a6d-0b1c2d3e4f5a", clip(seg))
	}
	return seg, op, nil
}

// clip bounds a hostile path segment before it is echoed.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
