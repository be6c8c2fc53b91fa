// Package action holds the rules every device response action follows
// (isolate, and the actions that come after it): the device is resolved by ID,
// exact name or address and never guessed; protected devices are refused for
// containment; a dry run sends nothing; a repeated delivery while the same
// action is pending is the first delivery's success; identical deliveries in
// flight at once share one run; the isolation budget; one audit line per
// request. A function describes its action with a Kind and builds a Request;
// a Runner does the rest.
package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Kind describes one response action.
type Kind struct {
	// Function names the function in log and audit lines ("isolate").
	Function string
	// Type is the Defender action type (atp.ActionIsolate), Path the last
	// segment of its endpoint under /api/machines/{id}/ ("isolate").
	Type atp.ActionType
	Path string
	// Release and ReleasePath undo the action (atp.ActionUnisolate,
	// "unisolate"); empty when the action has no undo.
	Release     atp.ActionType
	ReleasePath string
	// Verb and ReleaseVerb name the action in audit lines ("isolate",
	// "release").
	Verb, ReleaseVerb string
	// Containment actions are refused on devices carrying a protected tag
	// (MDE_PROTECTED_TAGS); their release never is.
	Containment bool
	// Budgeted actions count against MaxIsolationsPerHour; their release
	// never does.
	Budgeted bool
}

// Settings are the safety settings every action shares.
type Settings struct {
	ProtectedTags        []string // MDE_PROTECTED_TAGS
	DryRun               bool     // MDE_DRY_RUN: resolve and validate, never send
	MaxIsolationsPerHour int      // MDE_MAX_ISOLATIONS_PER_HOUR: 0 = no cap
}

// Client is the part of *atp.Client the rules use.
type Client interface {
	GetMachine(ctx context.Context, id string) (*atp.Machine, error)
	FindMachinesByName(ctx context.Context, name string) ([]atp.Machine, error)
	FindMachinesByIP(ctx context.Context, ip netip.Addr, at time.Time) ([]atp.Machine, error)
	ListMachineActions(ctx context.Context, o *atp.ListMachineActionsOptions) ([]atp.MachineAction, error)
}

// Runner runs action requests under the shared rules. It is safe for
// concurrent use; one Runner serves every action function of a process, so
// that the isolation budget is counted in one place.
type Runner struct {
	Client   Client
	Settings Settings
	// Requestor returns the identity Defender records as the requestor of
	// this app's actions (the app ID, or the user in password mode); it is
	// needed only for the isolation budget.
	Requestor func(ctx context.Context) (string, error)
	Logger    *slog.Logger     // audit and failure lines; nil discards
	Now       func() time.Time // nil: time.Now

	// budgetMu serialises count-then-act within this instance, so that
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

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// actionType is the Defender type req asks for.
func (k *Kind) actionType(req *Request) atp.ActionType {
	if req.Release {
		return k.Release
	}
	return k.Type
}

// Do runs one request of kind k and writes its audit line.
func (r *Runner) Do(ctx context.Context, k *Kind, req Request) (*Result, error) {
	if req.Release && k.Release == "" {
		return nil, envelope.Errorf(envelope.InvalidRequest, "release: %s has no release", k.Function)
	}
	res, err := r.coalesce(ctx, k, &req)
	r.audit(ctx, k, &req, res, err)
	return res, err
}

func (r *Runner) do(ctx context.Context, k *Kind, req *Request) (*Result, error) {
	m, err := r.resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	t := k.actionType(req)
	if k.Containment && !req.Release {
		if tag, ok := r.protected(m); ok {
			return nil, &envelope.Error{Code: envelope.ProtectedDevice,
				Message: fmt.Sprintf("device %s carries the protected tag %q (MDE_PROTECTED_TAGS) and is never %s by this function", m.ID, tag, pastTense(k.Verb))}
		}
	}
	dryRun := req.DryRun || r.Settings.DryRun
	budgeted := k.Budgeted && !req.Release && r.Settings.MaxIsolationsPerHour > 0
	if budgeted && !dryRun {
		r.budgetMu.Lock()
		defer r.budgetMu.Unlock()
	}
	if budgeted {
		// A repeated delivery of a pending action is success, not a new
		// action: it must not be refused by the budget.
		if p, err := r.pending(ctx, m.ID, k, t, req.Matches); err != nil {
			return nil, err
		} else if p != nil {
			return &Result{Status: http.StatusOK, AlreadyPending: true, Action: p, Machine: machineOf(m, p)}, nil
		}
		if err := r.checkBudget(ctx, t); err != nil {
			return nil, err
		}
	}
	if dryRun {
		path := k.Path
		if req.Release {
			path = k.ReleasePath
		}
		return &Result{Status: http.StatusOK, DryRun: true, Machine: machineOf(m, nil),
			Request: &PlannedRequest{Method: http.MethodPost, Path: "/api/machines/" + m.ID + "/" + path, Body: req.Body}}, nil
	}
	a, err := req.Send(ctx, m.ID)
	if err == nil {
		return &Result{Status: http.StatusCreated, Action: a, Machine: machineOf(m, a)}, nil
	}
	if !atp.IsActiveRequestAlreadyExists(err) {
		return nil, err
	}
	// Defender refuses a second pending action of a type on a device: find
	// the one that is pending. It is this request's (or its first
	// delivery's) success.
	p, lerr := r.pending(ctx, m.ID, k, t, req.Matches)
	if lerr != nil {
		var fe *envelope.Error
		if errors.As(lerr, &fe) && fe.Code == envelope.Forbidden {
			return nil, &envelope.Error{Code: envelope.Forbidden, Err: lerr, Upstream: fe.Upstream,
				Message: "Defender reports an action already in progress on this device, and reading it to confirm it is the same action needs Machine.Read.All; grant it to the app"}
		}
		return nil, lerr
	}
	if p != nil {
		return &Result{Status: http.StatusOK, AlreadyPending: true, Action: p, Machine: machineOf(m, p)}, nil
	}
	// Not this request's: another action of the type (another file), or,
	// with an undo, the opposite action (a release racing an isolation).
	other := "another action"
	if o, _ := r.pending(ctx, m.ID, k, "", nil); o != nil {
		other = "a " + string(o.Type) + " action (" + o.ID + ")"
	}
	fe := errmap.From(err)
	return nil, &envelope.Error{Code: envelope.UpstreamError, Err: err, Upstream: fe.Upstream,
		Message: fmt.Sprintf("%s is already in progress on device %s, so Defender refused this %s; retry when it has completed", other, m.ID, t)}
}

func pastTense(verb string) string {
	switch {
	case verb == "":
		return "acted on"
	case strings.HasSuffix(verb, "e"):
		return verb + "d"
	default:
		return verb + "ed"
	}
}

func (r *Runner) protected(m *atp.Machine) (string, bool) {
	for _, t := range m.MachineTags {
		for _, p := range r.Settings.ProtectedTags {
			if strings.EqualFold(strings.TrimSpace(t), p) {
				return t, true
			}
		}
	}
	return "", false
}

// pending returns the oldest Pending or InProgress action of type t on the
// device (of k's type or its release when t is empty) for which matches (nil:
// any) holds, or nil.
func (r *Runner) pending(ctx context.Context, machineID string, k *Kind, t atp.ActionType, matches func(*atp.MachineAction) bool) (*atp.MachineAction, error) {
	types := []atp.ActionType{t}
	if t == "" {
		types = []atp.ActionType{k.Type}
		if k.Release != "" {
			types = append(types, k.Release)
		}
	}
	acts, err := r.Client.ListMachineActions(ctx, &atp.ListMachineActionsOptions{
		MachineID: machineID, Types: types, Statuses: []atp.ActionStatus{atp.ActionPending, atp.ActionInProgress}, Top: 100})
	if err != nil {
		return nil, errmap.From(err)
	}
	var best *atp.MachineAction
	for i := range acts {
		a := &acts[i]
		if !a.Status.Active() || !containsType(types, a.Type) || matches != nil && !matches(a) {
			continue
		}
		if best == nil || a.CreationDateTimeUTC.Before(best.CreationDateTimeUTC) {
			best = a
		}
	}
	return best, nil
}

func containsType(types []atp.ActionType, t atp.ActionType) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// checkBudget refuses an action when this app (or user) already started
// MaxIsolationsPerHour actions of type t in the last 60 minutes, counted
// from Defender's own machine-action records so that the cap holds across
// all instances.
func (r *Runner) checkBudget(ctx context.Context, t atp.ActionType) error {
	if r.Requestor == nil {
		return envelope.Errorf(envelope.InternalError, "the isolation budget is configured but the requestor is unknown")
	}
	who, err := r.Requestor(ctx)
	if err != nil {
		return err
	}
	now := r.now()
	from := now.Add(-time.Hour)
	acts, err := r.Client.ListMachineActions(ctx, &atp.ListMachineActionsOptions{
		Types: []atp.ActionType{t}, Requestor: who, CreatedFrom: from, Top: atp.MaxTop})
	if err != nil {
		return err
	}
	var times []time.Time
	for _, a := range acts {
		if a.Type == t && strings.EqualFold(a.Requestor, who) && !a.CreationDateTimeUTC.Before(from) {
			times = append(times, a.CreationDateTimeUTC)
		}
	}
	limit := r.Settings.MaxIsolationsPerHour
	if len(times) < limit {
		return nil
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	// The request may go once enough of the oldest have left the window.
	leave := times[len(times)-limit].Add(time.Hour)
	wait := max(leave.Sub(now), time.Second)
	return &envelope.Error{Code: envelope.IsolationBudgetExceeded, RetryAfter: wait,
		Message: fmt.Sprintf("this app started %d isolations in the last 60 minutes, the cap set by MDE_MAX_ISOLATIONS_PER_HOUR (%d); retry after %d s or raise the cap",
			len(times), limit, envelope.RetryAfterSeconds(wait))}
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
