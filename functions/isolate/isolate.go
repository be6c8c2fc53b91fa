// Package isolate is the isolate function: it resolves one device (by ID,
// name or IP address), refuses protected devices and storms over budget, and
// asks Defender to isolate it or release it, treating a repeated delivery as
// the first one's success (contract §2).
package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/internal/invocation"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodPost}

// Client is the part of *atp.Client the function uses.
type Client interface {
	GetMachine(ctx context.Context, id string) (*atp.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]atp.Machine, error)
	FindMachinesByIP(ctx context.Context, ip netip.Addr, at time.Time) ([]atp.Machine, error)
	Isolate(ctx context.Context, machineID string, r atp.IsolateRequest) (*atp.MachineAction, error)
	Unisolate(ctx context.Context, machineID, comment string) (*atp.MachineAction, error)
	ListMachineActions(ctx context.Context, o *atp.ListMachineActionsOptions) ([]atp.MachineAction, error)
}

// Config is the function's safety configuration.
type Config struct {
	ProtectedTags []string // MDE_PROTECTED_TAGS: a device with one of these tags is never isolated
	DryRun        bool     // MDE_DRY_RUN: resolve and validate, never send
	MaxPerHour    int      // MDE_MAX_ISOLATIONS_PER_HOUR: 0 = no cap
}

// Service runs isolate requests. It is safe for concurrent use.
type Service struct {
	Client Client
	Config Config
	// Requestor returns the identity Defender records as the requestor of
	// this app's actions (the app ID, or the user in password mode); it is
	// needed only for the isolation budget.
	Requestor func(ctx context.Context) (string, error)
	Logger    *slog.Logger     // audit and failure lines; nil discards
	Now       func() time.Time // nil: time.Now

	// budgetMu serialises count-then-isolate within this instance, so that
	// concurrent deliveries cannot all pass the same count.
	budgetMu sync.Mutex
	// inflight coalesces identical deliveries that arrive while the first
	// is still running: one set of Defender calls serves all of them.
	inflight singleflight.Group
}

// Machine is the device an answer names.
type Machine struct {
	ID              string   `json:"id"`
	ComputerDNSName string   `json:"computerDnsName,omitempty"`
	MachineTags     []string `json:"machineTags"`
}

// Candidate is one of several devices a name or address matched.
type Candidate struct {
	ID              string    `json:"id"`
	ComputerDNSName string    `json:"computerDnsName"`
	LastSeen        time.Time `json:"lastSeen"`
}

// PlannedRequest is what a dry run would have sent.
type PlannedRequest struct {
	Method string         `json:"method"`
	Path   string         `json:"path"`
	Body   map[string]any `json:"body"`
}

// Result is a successful answer: Status 201 (created), or 200 (already
// pending, or a dry run).
type Result struct {
	Status         int                `json:"-"`
	AlreadyPending bool               `json:"alreadyPending,omitempty"`
	DryRun         bool               `json:"dryRun,omitempty"`
	Action         *atp.MachineAction `json:"action,omitempty"`
	Machine        Machine            `json:"machine"`
	Request        *PlannedRequest    `json:"request,omitempty"`
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*Result, error) {
	c, err := r.check()
	if err != nil {
		return nil, err
	}
	// Identical deliveries in flight at once (a webhook storm, a retry
	// racing its original) share one run: the first caller's answer is
	// the run's own, the others are repeated deliveries of it.
	leader := false
	v, err, _ := s.inflight.Do(c.key(), func() (any, error) {
		leader = true
		return s.do(ctx, c)
	})
	res, _ := v.(*Result)
	if !leader && err == nil && res.Status == http.StatusCreated {
		again := *res
		again.Status, again.AlreadyPending = http.StatusOK, true
		res = &again
	}
	s.audit(ctx, c, res, err)
	return res, err
}

func (s *Service) do(ctx context.Context, c *checked) (*Result, error) {
	m, err := s.resolve(ctx, c)
	if err != nil {
		return nil, err
	}
	actionType := atp.ActionType("Isolate")
	if c.release {
		actionType = "Unisolate"
	}
	if !c.release {
		if tag, ok := s.protected(m); ok {
			return nil, &envelope.Error{Code: envelope.ProtectedDevice,
				Message: fmt.Sprintf("device %s carries the protected tag %q (MDE_PROTECTED_TAGS) and is never isolated by this function", m.ID, tag)}
		}
	}
	if !c.release && s.Config.MaxPerHour > 0 && !c.dryRun && !s.Config.DryRun {
		s.budgetMu.Lock()
		defer s.budgetMu.Unlock()
	}
	if !c.release && s.Config.MaxPerHour > 0 {
		// A repeated delivery of a pending isolation is success, not a new
		// isolation: it must not be refused by the budget.
		if p, err := s.pending(ctx, m.ID, actionType); err != nil {
			return nil, err
		} else if p != nil {
			return &Result{Status: http.StatusOK, AlreadyPending: true, Action: p, Machine: machineOf(m, p)}, nil
		}
		if err := s.checkBudget(ctx); err != nil {
			return nil, err
		}
	}
	path := "/api/machines/" + m.ID + "/isolate"
	body := map[string]any{"Comment": c.comment, "IsolationType": string(c.isolationType)}
	if c.release {
		path = "/api/machines/" + m.ID + "/unisolate"
		body = map[string]any{"Comment": c.comment}
	}
	if c.dryRun || s.Config.DryRun {
		return &Result{Status: http.StatusOK, DryRun: true, Machine: machineOf(m, nil),
			Request: &PlannedRequest{Method: http.MethodPost, Path: path, Body: body}}, nil
	}
	var a *atp.MachineAction
	if c.release {
		a, err = s.Client.Unisolate(ctx, m.ID, c.comment)
	} else {
		a, err = s.Client.Isolate(ctx, m.ID, atp.IsolateRequest{Comment: c.comment, IsolationType: c.isolationType})
	}
	if err == nil {
		return &Result{Status: http.StatusCreated, Action: a, Machine: machineOf(m, a)}, nil
	}
	if !atp.IsActiveRequestAlreadyExists(err) {
		return nil, err
	}
	// Defender refuses a second pending action on a device: find the one
	// that is pending. Of the same type, it is this request's (or its first
	// delivery's) success; of another type, this request has not been done.
	p, lerr := s.pending(ctx, m.ID, "")
	if lerr != nil {
		var fe *envelope.Error
		if errors.As(lerr, &fe) && fe.Code == envelope.Forbidden {
			return nil, &envelope.Error{Code: envelope.Forbidden, Err: lerr, Upstream: fe.Upstream,
				Message: "Defender reports an action already in progress on this device, and reading it to confirm it is the same action needs Machine.Read.All; grant it to the app"}
		}
		return nil, lerr
	}
	if p != nil && p.Type == actionType {
		return &Result{Status: http.StatusOK, AlreadyPending: true, Action: p, Machine: machineOf(m, p)}, nil
	}
	other := "another action"
	if p != nil {
		other = "a " + string(p.Type) + " action (" + p.ID + ")"
	}
	fe := errmap.From(err)
	return nil, &envelope.Error{Code: envelope.UpstreamError, Err: err, Upstream: fe.Upstream,
		Message: fmt.Sprintf("%s is already in progress on device %s, so Defender refused this %s; retry when it has completed", other, m.ID, actionType)}
}

// resolve finds the one device the request names.
func (s *Service) resolve(ctx context.Context, c *checked) (*atp.Machine, error) {
	var found []atp.Machine
	var err error
	switch c.by {
	case ByMachineID:
		m, err := s.Client.GetMachine(ctx, c.machineID)
		if err == nil {
			return m, nil
		}
		var re *atp.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden && len(s.Config.ProtectedTags) == 0 {
			// Isolating by ID needs only Machine.Isolate; the device's
			// details come back with the action.
			return &atp.Machine{ID: c.machineID}, nil
		}
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			fe := errmap.From(err)
			return nil, &envelope.Error{Code: envelope.Forbidden, Err: err, Upstream: fe.Upstream,
				Message: "MDE_PROTECTED_TAGS is set, so the device's tags must be read before isolating it: grant Machine.Read.All to the app"}
		}
		if atp.IsNotFound(err) {
			return nil, &envelope.Error{Code: envelope.NotFound, Err: err, Upstream: errmap.From(err).Upstream,
				Message: fmt.Sprintf("Defender has no device with machineId %s", c.machineID)}
		}
		return nil, err
	case ByDeviceName:
		found, err = s.Client.FindMachinesByName(ctx, c.deviceName)
	case ByIPAddress:
		found, err = s.Client.FindMachinesByIP(ctx, c.ip, s.now())
	}
	if err != nil {
		return nil, err
	}
	var active []atp.Machine
	for _, m := range found {
		if !m.IsDuplicate() && m.ID != "" {
			active = append(active, m)
		}
	}
	what := fmt.Sprintf("deviceName %q", c.deviceName)
	if c.by == ByIPAddress {
		what = fmt.Sprintf("ipAddress %s (seen within 15 minutes of now)", c.ip)
	}
	switch len(active) {
	case 0:
		return nil, envelope.Errorf(envelope.NotFound, "no active Defender device matches %s", what)
	case 1:
		return &active[0], nil
	}
	cands := make([]Candidate, len(active))
	for i, m := range active {
		cands[i] = Candidate{ID: m.ID, ComputerDNSName: m.ComputerDNSName, LastSeen: m.LastSeen}
	}
	return nil, &envelope.Error{Code: envelope.AmbiguousDevice, Candidates: cands,
		Message: fmt.Sprintf("%d active devices match %s; name one by machineId", len(active), what)}
}

func (s *Service) protected(m *atp.Machine) (string, bool) {
	for _, t := range m.MachineTags {
		for _, p := range s.Config.ProtectedTags {
			if strings.EqualFold(strings.TrimSpace(t), p) {
				return t, true
			}
		}
	}
	return "", false
}

// pending returns the Pending or InProgress isolation-type action on the
// device (of type t, or of either type when t is empty), or nil.
func (s *Service) pending(ctx context.Context, machineID string, t atp.ActionType) (*atp.MachineAction, error) {
	types := []atp.ActionType{"Isolate", "Unisolate"}
	if t != "" {
		types = []atp.ActionType{t}
	}
	acts, err := s.Client.ListMachineActions(ctx, &atp.ListMachineActionsOptions{
		MachineID: machineID, Types: types, Statuses: []atp.ActionStatus{"Pending", "InProgress"}, Top: 100})
	if err != nil {
		return nil, errmap.From(err)
	}
	var best *atp.MachineAction
	for i := range acts {
		a := &acts[i]
		if a.Status != "Pending" && a.Status != "InProgress" || !slices.Contains(types, a.Type) {
			continue
		}
		if best == nil || a.CreationDateTimeUTC.Before(best.CreationDateTimeUTC) {
			best = a
		}
	}
	return best, nil
}

// checkBudget refuses an isolation when this app (or user) already started
// MaxPerHour isolations in the last 60 minutes, counted from Defender's own
// machine-action records so that the cap holds across all instances.
func (s *Service) checkBudget(ctx context.Context) error {
	if s.Requestor == nil {
		return envelope.Errorf(envelope.InternalError, "the isolation budget is configured but the requestor is unknown")
	}
	who, err := s.Requestor(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	from := now.Add(-time.Hour)
	acts, err := s.Client.ListMachineActions(ctx, &atp.ListMachineActionsOptions{
		Types: []atp.ActionType{"Isolate"}, Requestor: who, CreatedFrom: from, Top: atp.MaxTop})
	if err != nil {
		return err
	}
	var times []time.Time
	for _, a := range acts {
		if a.Type == "Isolate" && strings.EqualFold(a.Requestor, who) && !a.CreationDateTimeUTC.Before(from) {
			times = append(times, a.CreationDateTimeUTC)
		}
	}
	if len(times) < s.Config.MaxPerHour {
		return nil
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	// The request may go once enough of the oldest have left the window.
	leave := times[len(times)-s.Config.MaxPerHour].Add(time.Hour)
	wait := max(leave.Sub(now), time.Second)
	return &envelope.Error{Code: envelope.IsolationBudgetExceeded, RetryAfter: wait,
		Message: fmt.Sprintf("this app started %d isolations in the last 60 minutes, the cap set by MDE_MAX_ISOLATIONS_PER_HOUR (%d); retry after %d s or raise the cap",
			len(times), s.Config.MaxPerHour, envelope.RetryAfterSeconds(wait))}
}

func machineOf(m *atp.Machine, a *atp.MachineAction) Machine {
	out := Machine{ID: m.ID, ComputerDNSName: m.ComputerDNSName, MachineTags: m.MachineTags}
	if out.MachineTags == nil {
		out.MachineTags = []string{}
	}
	if a != nil && out.ComputerDNSName == "" {
		out.ComputerDNSName = a.ComputerDNSName
	}
	return out
}

// audit writes the one audit line of a request.
func (s *Service) audit(ctx context.Context, c *checked, res *Result, err error) {
	if s.Logger == nil {
		return
	}
	info := invocation.From(ctx)
	action := "isolate"
	if c.release {
		action = "release"
	}
	attrs := []slog.Attr{
		slog.String("audit", "mdefn.isolate"),
		slog.String("function", "isolate"),
		slog.String("invocationId", info.ID),
		slog.String("trigger", string(info.Trigger)),
		slog.String("action", action),
		slog.String("ticket", c.ticket),
		slog.String("by", string(c.by)),
	}
	outcome := "failed"
	switch {
	case err != nil:
		e := errmap.From(err)
		outcome = string(e.Code)
		if e.Code == envelope.ProtectedDevice {
			outcome = "protected"
		}
	case res.DryRun:
		outcome = "dryRun"
	case res.AlreadyPending:
		outcome = "alreadyPending"
	default:
		outcome = "created"
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	if res != nil {
		attrs = append(attrs, slog.String("machineId", res.Machine.ID), slog.String("computerDnsName", res.Machine.ComputerDNSName))
		if res.Action != nil {
			attrs = append(attrs, slog.String("actionId", res.Action.ID), slog.String("actionStatus", string(res.Action.Status)))
		}
	} else {
		attrs = append(attrs, slog.String("machineId", c.machineID))
	}
	s.Logger.LogAttrs(ctx, slog.LevelInfo, "isolate "+outcome, attrs...)
}

// ServeHTTP answers POST isolate requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		errmap.Write(w, envelope.Errorf(envelope.MethodNotAllowed, "use POST with a JSON body"))
		return
	}
	var body bytes.Buffer
	var r Request
	_, err := body.ReadFrom(req.Body)
	if err == nil {
		if len(bytes.TrimSpace(body.Bytes())) == 0 {
			err = envelope.Errorf(envelope.InvalidRequest, "the request body must be a JSON object with machineId, deviceName or ipAddress, and comment")
		} else {
			err = decode.JSON(body.Bytes(), &r)
		}
	}
	var res *Result
	if err == nil {
		res, err = s.Do(req.Context(), r)
	}
	if err != nil {
		e := errmap.Write(w, err)
		errmap.LogFailure(req.Context(), s.Logger, "isolate", e)
		return
	}
	_ = envelope.WriteJSON(w, res.Status, res)
}
