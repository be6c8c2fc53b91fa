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
	ActionIsolate                     ActionType = "Isolate"
	ActionUnisolate                   ActionType = "Unisolate"
	ActionRunAntiVirusScan            ActionType = "RunAntiVirusScan"
	ActionRestrictCodeExecution       ActionType = "RestrictCodeExecution"
	ActionUnrestrictCodeExecution     ActionType = "UnrestrictCodeExecution"
	ActionCollectInvestigationPackage ActionType = "CollectInvestigationPackage"
	ActionStopAndQuarantineFile       ActionType = "StopAndQuarantineFile"
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

// Scan types accepted in the antivirus scan request's ScanType; the
// action's scope is the scan type.
const (
	ScanQuick = "Quick"
	ScanFull  = "Full"
)

// maxBodyBytes bounds request bodies.
const maxBodyBytes = 1 << 20

// MachineAction is a Defender machine action as of one moment. Empty
// strings and zero times of the nullable fields are null on the wire.
type MachineAction struct {
	ID                      string
	Type                    ActionType
	Title                   string
	Scope                   string // isolation type for Isolate, scan type for RunAntiVirusScan; else empty (null)
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
	RelatedFileInfo         *RelatedFileInfo // the file of a StopAndQuarantineFile action; else nil (null)
}

// RelatedFileInfo identifies the file a file action applies to.
type RelatedFileInfo struct {
	FileIdentifier     string `json:"fileIdentifier"`
	FileIdentifierType string `json:"fileIdentifierType"` // Sha1, Sha256 or Md5
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
	var file any
	if a.RelatedFileInfo != nil {
		file = *a.RelatedFileInfo
	}
	return machineActionWire{
		ID: a.ID, Type: a.Type, Title: nullable(a.Title), Scope: nullable(a.Scope),
		Requestor: a.Requestor, RequestorComment: a.RequestorComment, RequestSource: a.RequestSource,
		ExternalID: nullable(a.ExternalID), Status: string(a.Status), MachineID: a.MachineID,
		ComputerDNSName: a.ComputerDNSName, CreationDateTimeUTC: a.CreationDateTimeUTC.UTC(),
		LastUpdateDateTimeUTC: a.LastUpdateDateTimeUTC.UTC(), CancellationRequestor: nullable(a.CancellationRequestor),
		CancellationComment: nullable(a.CancellationComment), CancellationDateTimeUTC: cancelled,
		ErrorHResult: a.ErrorHResult, Commands: []string{}, RelatedFileInfo: file,
	}
}

// MarshalJSON encodes the action as Defender does.
func (a MachineAction) MarshalJSON() ([]byte, error) { return json.Marshal(a.wire()) }

// action is a stored machine action; its status is computed from the clock.
// Its fields change only under Server.mu (cancellation, FailAction).
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

// cancel ends the active action a at now as Cancelled by requestor.
func (a *action) cancel(now time.Time, requestor, comment string) {
	a.final = ActionCancelled
	a.doneAt = now
	if a.inProgressAt.After(now) {
		a.inProgressAt = now
	}
	a.base.CancellationRequestor = requestor
	a.base.CancellationComment = comment
	a.base.CancellationDateTimeUTC = now
}

// isolatedLocked reports m's isolation state at now: the state left by its
// latest completed successful Isolate/Unisolate, else m.Isolated.
func (s *Server) isolatedLocked(m *Machine, now time.Time) bool {
	return s.stateLocked(m, now, ActionIsolate, ActionUnisolate, m.Isolated)
}

// restrictedLocked reports m's app restriction state at now, as
// isolatedLocked does for isolation.
func (s *Server) restrictedLocked(m *Machine, now time.Time) bool {
	return s.stateLocked(m, now, ActionRestrictCodeExecution, ActionUnrestrictCodeExecution, m.CodeRestricted)
}

// stateLocked reports a device state that actions of type on and off set
// and clear: the state left by the latest of them that completed
// successfully by now, else initial.
func (s *Server) stateLocked(m *Machine, now time.Time, on, off ActionType, initial bool) bool {
	state, last := initial, time.Time{}
	for _, a := range s.actionsByMachine[m.ID] {
		t := a.base.Type
		if (t != on && t != off) || a.final != ActionSucceeded || now.Before(a.doneAt) || a.doneAt.Before(last) {
			continue
		}
		state, last = t == on, a.doneAt
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
// InvalidRequestBody, a missing Comment (when required) is
// MissingRequiredParameter.
func readActionBody(r *http.Request, commentRequired bool, allowed ...string) (map[string]string, *apiError) {
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
	if commentRequired && strings.TrimSpace(out["Comment"]) == "" {
		return nil, errBadRequest(CodeMissingRequiredParameter, "Parameter Comment is missing")
	}
	return out, nil
}

// actionSpec describes a machine action endpoint,
// POST /api/machines/{id}/<verb>.
type actionSpec struct {
	verb   string // as documented, e.g. "runAntiVirusScan"
	typ    ActionType
	perm   permission
	params []string // body parameters besides Comment and ExternalID
	// check validates the parameters and returns the action's scope and
	// related file (nil check: no parameters to check).
	check func(params map[string]string) (scope string, file *RelatedFileInfo, e *apiError)
}

// actionSpecs are the machine action endpoints, keyed by lowercase verb.
var actionSpecs = map[string]*actionSpec{}

func init() {
	for _, sp := range []*actionSpec{
		{verb: "isolate", typ: ActionIsolate, perm: permIsolate, params: []string{"IsolationType"}, check: checkIsolation},
		{verb: "unisolate", typ: ActionUnisolate, perm: permIsolate},
		{verb: "runAntiVirusScan", typ: ActionRunAntiVirusScan, perm: permScan, params: []string{"ScanType"}, check: checkScan},
		{verb: "restrictCodeExecution", typ: ActionRestrictCodeExecution, perm: permRestrict},
		{verb: "unrestrictCodeExecution", typ: ActionUnrestrictCodeExecution, perm: permRestrict},
		{verb: "collectInvestigationPackage", typ: ActionCollectInvestigationPackage, perm: permCollect},
		{verb: "StopAndQuarantineFile", typ: ActionStopAndQuarantineFile, perm: permQuarantine, params: []string{"Sha1"}, check: checkQuarantine},
	} {
		actionSpecs[strings.ToLower(sp.verb)] = sp
	}
}

func checkIsolation(params map[string]string) (string, *RelatedFileInfo, *apiError) {
	scope := cmp.Or(params["IsolationType"], IsolationFull)
	switch scope {
	case IsolationFull, IsolationSelective, IsolationUnManagedDevice:
		return scope, nil, nil
	}
	return "", nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: IsolationType '%s' is not one of Full, Selective, UnManagedDevice", sanitizePath(scope))
}

// checkScan: ScanType is required (values are case-sensitive).
func checkScan(params map[string]string) (string, *RelatedFileInfo, *apiError) {
	switch st := params["ScanType"]; st {
	case ScanQuick, ScanFull:
		return st, nil, nil
	case "":
		return "", nil, errBadRequest(CodeMissingRequiredParameter, "Parameter ScanType is missing")
	default:
		return "", nil, errBadRequest(CodeInvalidRequestBody, "Request body is incorrect: ScanType '%s' is not one of Quick, Full", sanitizePath(st))
	}
}

// checkQuarantine: Sha1 is required and must be 40 hexadecimal characters.
func checkQuarantine(params map[string]string) (string, *RelatedFileInfo, *apiError) {
	h := params["Sha1"]
	if h == "" {
		return "", nil, errBadRequest(CodeMissingRequiredParameter, "Parameter Sha1 is missing")
	}
	if !isHex(h, 40) {
		return "", nil, errBadRequest(CodeInvalidHashValue, "Hash value %s is invalid.", sanitizePath(h))
	}
	return "", &RelatedFileInfo{FileIdentifier: strings.ToLower(h), FileIdentifierType: "Sha1"}, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// conflictKey names the "one pending action per device" slot of an action
// type: Defender refuses a second Pending or InProgress action of the same
// type on a device with 400 ActiveRequestAlreadyExists. Isolate and
// Unisolate share one slot (an isolation and a release cannot both be
// pending); every other type has its own, so a scan and a collection may
// run at once.
func conflictKey(t ActionType) ActionType {
	if t == ActionUnisolate {
		return ActionIsolate
	}
	return t
}

// requestorOf names the caller in an action: the UPN of a delegated
// caller, else the application ID.
func requestorOf(p Principal) string {
	if p.Delegated() && p.UPN != "" {
		return p.UPN
	}
	return p.AppID
}

// postAction answers POST /api/machines/{id}/<verb>. The check for an
// active action of the same slot and the creation happen under one lock,
// so concurrent requests create one action.
func (s *Server) postAction(w http.ResponseWriter, r *http.Request, p Principal, machineID string, sp *actionSpec) *apiError {
	params, aerr := readActionBody(r, true, append([]string{"Comment", "ExternalID"}, sp.params...)...)
	if aerr != nil {
		return aerr
	}
	var (
		scope string
		file  *RelatedFileInfo
	)
	if sp.check != nil {
		if scope, file, aerr = sp.check(params); aerr != nil {
			return aerr
		}
	}
	requestor := requestorOf(p)

	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machineByID[strings.ToLower(machineID)]
	if m == nil {
		return errNotFound("Machine %s was not found", sanitizePath(machineID))
	}
	now := s.now()
	for _, a := range s.actionsByMachine[m.ID] {
		if conflictKey(a.base.Type) == conflictKey(sp.typ) && a.active(now) {
			return errBadRequest(CodeActiveRequestAlreadyExists, "Action is already in progress")
		}
	}
	a := &action{
		base: MachineAction{
			ID: newGUID(), Type: sp.typ, Scope: scope, Requestor: requestor,
			RequestorComment: params["Comment"], RequestSource: "PublicApi", ExternalID: params["ExternalID"],
			MachineID: m.ID, ComputerDNSName: m.ComputerDNSName, CreationDateTimeUTC: now,
			RelatedFileInfo: file,
		},
		inProgressAt: now.Add(s.timings.InProgressAfter),
		doneAt:       now.Add(max(s.timings.CompletedAfter, s.timings.InProgressAfter)),
		final:        s.outcome,
	}
	if s.takeFailRuleLocked(m.ID, sp.typ) {
		a.final = ActionFailed
	}
	s.actions = append(s.actions, a)
	s.actionByID[a.base.ID] = a
	s.actionsByMachine[m.ID] = append(s.actionsByMachine[m.ID], a)
	wv := a.at(now).wire()
	wv.Context = odataContext(r, "MachineActions/$entity")
	writeJSON(w, http.StatusCreated, wv)
	return nil
}

// cancelAction answers POST /api/machineactions/{id}/cancel: a Pending or
// InProgress action becomes Cancelled at once. Comment is optional, as
// documented. Defender does not document the answer for an action already
// in a final state: the simulator answers 400 BadRequest.
func (s *Server) cancelAction(w http.ResponseWriter, r *http.Request, p Principal, id string) *apiError {
	params, aerr := readActionBody(r, false, "Comment")
	if aerr != nil {
		return aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.actionByID[strings.ToLower(id)]
	if a == nil {
		return errNotFound("MachineAction %s was not found", sanitizePath(id))
	}
	now := s.now()
	if !a.active(now) {
		return errBadRequest(CodeBadRequest, "Machine action %s is already in final state %s and cannot be cancelled", a.base.ID, a.at(now).Status)
	}
	a.cancel(now, requestorOf(p), params["Comment"])
	wv := a.at(now).wire()
	wv.Context = odataContext(r, "MachineActions/$entity")
	writeJSON(w, http.StatusOK, wv)
	return nil
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request, id string) *apiError {
	s.mu.RLock()
	a := s.actionByID[strings.ToLower(id)]
	var m MachineAction
	if a != nil {
		m = a.at(s.now())
	}
	s.mu.RUnlock()
	if a == nil {
		return errNotFound("MachineAction %s was not found", sanitizePath(id))
	}
	wv := m.wire()
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
