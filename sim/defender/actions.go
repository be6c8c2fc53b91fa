package defender

import (
	"cmp"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ActionType is a machine action's type.
type ActionType string

// Machine action types the simulator creates.
const (
	ActionIsolate   ActionType = "Isolate"
	ActionUnisolate ActionType = "Unisolate"
)

// ActionStatus is a machine action's status.
type ActionStatus string

// Machine action statuses as Defender names them.
const (
	ActionPending    ActionStatus = "Pending"
	ActionInProgress ActionStatus = "InProgress"
	ActionSucceeded  ActionStatus = "Succeeded"
	ActionFailed     ActionStatus = "Failed"
	ActionTimeOut    ActionStatus = "TimeOut"
	ActionCancelled  ActionStatus = "Cancelled"
)

// Isolation types accepted in the isolate request's IsolationType.
const (
	IsolationFull            = "Full"
	IsolationSelective       = "Selective"
	IsolationUnManagedDevice = "UnManagedDevice"
)

// maxBodyBytes bounds request bodies.
const maxBodyBytes = 1 << 20

// MachineAction is a Defender machine action as of one moment. Empty
// strings and zero times of the nullable fields are null on the wire.
type MachineAction struct {
	ID                      string
	Type                    ActionType
	Title                   string
	Scope                   string // isolation type for Isolate; empty (null) for Unisolate
	Requestor               string // app ID, or UPN for delegated callers
	RequestorComment        string
	RequestSource           string
	ExternalID              string
	Status                  ActionStatus
	MachineID               string
	ComputerDNSName         string
	CreationDateTimeUTC     time.Time
	LastUpdateDateTimeUTC   time.Time
	CancellationRequestor   string
	CancellationComment     string
	CancellationDateTimeUTC time.Time
	ErrorHResult            int64
}

type machineActionWire struct {
	Context                 string     `json:"@odata.context,omitempty"`
	ID                      string     `json:"id"`
	Type                    ActionType `json:"type"`
	Title                   *string    `json:"title"`
	Scope                   *string    `json:"scope"`
	Requestor               string     `json:"requestor"`
	RequestorComment        string     `json:"requestorComment"`
	RequestSource           string     `json:"requestSource"`
	ExternalID              *string    `json:"externalId"`
	Status                  string     `json:"status"`
	MachineID               string     `json:"machineId"`
	ComputerDNSName         string     `json:"computerDnsName"`
	CreationDateTimeUTC     time.Time  `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC   time.Time  `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   *string    `json:"cancellationRequestor"`
	CancellationComment     *string    `json:"cancellationComment"`
	CancellationDateTimeUTC *time.Time `json:"cancellationDateTimeUtc"`
	ErrorHResult            int64      `json:"errorHResult"`
	Commands                []string   `json:"commands"`
	RelatedFileInfo         any        `json:"relatedFileInfo"`
	TroubleshootInfo        any        `json:"troubleshootInfo"`
}

func (a MachineAction) wire() machineActionWire {
	var cancelled *time.Time
	if !a.CancellationDateTimeUTC.IsZero() {
		t := a.CancellationDateTimeUTC.UTC()
		cancelled = &t
	}
	return machineActionWire{
		ID: a.ID, Type: a.Type, Title: nullable(a.Title), Scope: nullable(a.Scope),
		Requestor: a.Requestor, RequestorComment: a.RequestorComment, RequestSource: a.RequestSource,
		ExternalID: nullable(a.ExternalID), Status: string(a.Status), MachineID: a.MachineID,
		ComputerDNSName: a.ComputerDNSName, CreationDateTimeUTC: a.CreationDateTimeUTC.UTC(),
		LastUpdateDateTimeUTC: a.LastUpdateDateTimeUTC.UTC(), CancellationRequestor: nullable(a.CancellationRequestor),
		CancellationComment: nullable(a.CancellationComment), CancellationDateTimeUTC: cancelled,
		ErrorHResult: a.ErrorHResult, Commands: []string{},
	}
}

// MarshalJSON encodes the action as Defender does.
func (a MachineAction) MarshalJSON() ([]byte, error) { return json.Marshal(a.wire()) }

// action is a stored machine action; its status is computed from the clock.
type action struct {
	base         MachineAction // Status and LastUpdateDateTimeUTC unset
	inProgressAt time.Time
	doneAt       time.Time
	final        ActionStatus
}

// at returns the action as of now.
func (a *action) at(now time.Time) MachineAction {
	m := a.base
	switch {
	case now.Before(a.inProgressAt):
		m.Status, m.LastUpdateDateTimeUTC = ActionPending, m.CreationDateTimeUTC
	case now.Before(a.doneAt):
		m.Status, m.LastUpdateDateTimeUTC = ActionInProgress, a.inProgressAt
	default:
		m.Status, m.LastUpdateDateTimeUTC = a.final, a.doneAt
	}
	return m
}

func (a *action) active(now time.Time) bool { return now.Before(a.doneAt) }

// isolatedLocked reports m's isolation state at now: the state left by its
// latest completed successful Isolate/Unisolate, else m.Isolated.
func (s *Server) isolatedLocked(m *Machine, now time.Time) bool {
	state, last := m.Isolated, time.Time{}
	for _, a := range s.actionsByMachine[m.ID] {
		if a.final != ActionSucceeded || now.Before(a.doneAt) || a.doneAt.Before(last) {
			continue
		}
		state, last = a.base.Type == ActionIsolate, a.doneAt
	}
	return state
}

// actionSchema lists the properties $filter accepts on machine actions.
var actionSchema = schema[MachineAction]{entity: "MachineAction", fields: map[string]field[MachineAction]{
	"id":        {kind: kString, value: func(a *MachineAction) value { return strVal(a.ID) }},
	"machineid": {kind: kString, value: func(a *MachineAction) value { return strVal(a.MachineID) }},
	"requestor": {kind: kString, value: func(a *MachineAction) value { return strVal(a.Requestor) }},
	"type": {kind: kEnum, enum: []string{"RunAntiVirusScan", "Offboard", "LiveResponse", "CollectInvestigationPackage",
		"Isolate", "Unisolate", "StopAndQuarantineFile", "RestrictCodeExecution", "UnrestrictCodeExecution"},
		value: func(a *MachineAction) value { return strVal(string(a.Type)) }},
	"status": {kind: kEnum, enum: []string{"Pending", "InProgress", "Succeeded", "Failed", "TimeOut", "Cancelled"},
		value: func(a *MachineAction) value { return strVal(string(a.Status)) }},
	"creationdatetimeutc": {kind: kTime, value: func(a *MachineAction) value { return timeVal(a.CreationDateTimeUTC) }},
}}

// readActionBody reads a machine action's JSON body. Parameter names are
// case-sensitive, as Defender documents: an unknown name is
// InvalidRequestBody, a missing Comment is MissingRequiredParameter.
func readActionBody(r *http.Request, allowed ...string) (map[string]string, *apiError) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: Content-Type must be application/json")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: could not be read")
	}
	if len(body) > maxBodyBytes {
		return nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: larger than %d bytes", maxBodyBytes)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect")
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		if !slices.Contains(allowed, k) {
			return nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: unknown parameter '%s' (parameter names are case-sensitive)", k)
		}
		if string(v) == "null" {
			continue
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: parameter '%s' must be a string", k)
		}
		out[k] = str
	}
	if strings.TrimSpace(out["Comment"]) == "" {
		return nil, errBadRequest(CodeMissingRequiredParameter, "Parameter Comment is missing")
	}
	return out, nil
}

// postAction answers POST /api/machines/{id}/isolate and /unisolate.
func (s *Server) postAction(w http.ResponseWriter, r *http.Request, p Principal, machineID string, typ ActionType) *apiError {
	allowed := []string{"Comment", "ExternalID"}
	if typ == ActionIsolate {
		allowed = append(allowed, "IsolationType")
	}
	params, aerr := readActionBody(r, allowed...)
	if aerr != nil {
		return aerr
	}
	scope := ""
	if typ == ActionIsolate {
		scope = cmp.Or(params["IsolationType"], IsolationFull)
		switch scope {
		case IsolationFull, IsolationSelective, IsolationUnManagedDevice:
		default:
			return errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: IsolationType '%s' is not one of Full, Selective, UnManagedDevice", scope)
		}
	}
	requestor := p.AppID
	if p.Delegated() && p.UPN != "" {
		requestor = p.UPN
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machineByID[strings.ToLower(machineID)]
	if m == nil {
		return errNotFound("Machine %s was not found", machineID)
	}
	now := s.now()
	for _, a := range s.actionsByMachine[m.ID] {
		if (a.base.Type == ActionIsolate || a.base.Type == ActionUnisolate) && a.active(now) {
			return errBadRequest(CodeActiveRequestAlreadyExists, "Action is already in progress")
		}
	}
	a := &action{
		base: MachineAction{
			ID: newGUID(), Type: typ, Scope: scope, Requestor: requestor,
			RequestorComment: params["Comment"], RequestSource: "PublicApi", ExternalID: params["ExternalID"],
			MachineID: m.ID, ComputerDNSName: m.ComputerDNSName, CreationDateTimeUTC: now,
		},
		inProgressAt: now.Add(s.timings.InProgressAfter),
		doneAt:       now.Add(max(s.timings.CompletedAfter, s.timings.InProgressAfter)),
		final:        s.outcome,
	}
	s.actions = append(s.actions, a)
	s.actionByID[a.base.ID] = a
	s.actionsByMachine[m.ID] = append(s.actionsByMachine[m.ID], a)
	wv := a.at(now).wire()
	wv.Context = odataContext(r, "MachineActions/$entity")
	writeJSON(w, http.StatusCreated, wv)
	return nil
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request, id string) *apiError {
	s.mu.RLock()
	a := s.actionByID[strings.ToLower(id)]
	s.mu.RUnlock()
	if a == nil {
		return errNotFound("MachineAction %s was not found", id)
	}
	wv := a.at(s.now()).wire()
	wv.Context = odataContext(r, "MachineActions/$entity")
	writeJSON(w, http.StatusOK, wv)
	return nil
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request) *apiError {
	q, err := parseQuery(r.URL.Query(), false)
	if err != nil {
		return toAPIError(err)
	}
	pred, err := compileFilter(q.filter, actionSchema)
	if err != nil {
		return toAPIError(err)
	}
	var match []machineActionWire
	for _, a := range s.Actions() {
		if pred(&a) {
			match = append(match, a.wire())
		}
	}
	from, to := q.page(len(match))
	writeJSON(w, http.StatusOK, collection[machineActionWire]{Context: odataContext(r, "MachineActions"), Value: nonNil(match[from:to])})
	return nil
}
