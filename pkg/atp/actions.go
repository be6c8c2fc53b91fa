package atp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// IsolationType is the kind of network isolation.
type IsolationType string

// Isolation types.
const (
	// IsolationFull cuts the device off the network except the Defender service.
	IsolationFull IsolationType = "Full"
	// IsolationSelective also keeps Outlook, Teams and Skype for Business working.
	IsolationSelective IsolationType = "Selective"
	// IsolationUnManagedDevice isolates a device Defender does not manage.
	IsolationUnManagedDevice IsolationType = "UnManagedDevice"
)

// Valid reports whether t is a known isolation type.
func (t IsolationType) Valid() bool {
	switch t {
	case IsolationFull, IsolationSelective, IsolationUnManagedDevice:
		return true
	}
	return false
}

// ActionType is the type of a machine action.
type ActionType string

// Machine action types.
const (
	ActionRunAntiVirusScan            ActionType = "RunAntiVirusScan"
	ActionOffboard                    ActionType = "Offboard"
	ActionLiveResponse                ActionType = "LiveResponse"
	ActionCollectInvestigationPackage ActionType = "CollectInvestigationPackage"
	ActionIsolate                     ActionType = "Isolate"
	ActionUnisolate                   ActionType = "Unisolate"
	ActionStopAndQuarantineFile       ActionType = "StopAndQuarantineFile"
	ActionRestrictCodeExecution       ActionType = "RestrictCodeExecution"
	ActionUnrestrictCodeExecution     ActionType = "UnrestrictCodeExecution"
)

// Valid reports whether t is a known action type.
func (t ActionType) Valid() bool {
	switch t {
	case ActionRunAntiVirusScan, ActionOffboard, ActionLiveResponse, ActionCollectInvestigationPackage,
		ActionIsolate, ActionUnisolate, ActionStopAndQuarantineFile, ActionRestrictCodeExecution,
		ActionUnrestrictCodeExecution:
		return true
	}
	return false
}

// ActionStatus is the status of a machine action.
type ActionStatus string

// Machine action statuses.
const (
	ActionPending    ActionStatus = "Pending"
	ActionInProgress ActionStatus = "InProgress"
	ActionSucceeded  ActionStatus = "Succeeded"
	ActionFailed     ActionStatus = "Failed"
	ActionTimeOut    ActionStatus = "TimeOut"
	ActionCancelled  ActionStatus = "Cancelled"
)

// Valid reports whether s is a known action status.
func (s ActionStatus) Valid() bool {
	switch s {
	case ActionPending, ActionInProgress, ActionSucceeded, ActionFailed, ActionTimeOut, ActionCancelled:
		return true
	}
	return false
}

// Active reports whether the action is still under way (Pending or InProgress).
func (s ActionStatus) Active() bool { return s == ActionPending || s == ActionInProgress }

// MachineAction is an action (isolation, scan...) on a machine. Times absent
// or null are zero.
type MachineAction struct {
	ID                      string           `json:"id"` // GUID
	Type                    ActionType       `json:"type"`
	Scope                   string           `json:"scope"`     // Full or Selective for isolation, Quick or Full for a scan
	Requestor               string           `json:"requestor"` // application ID or user principal name
	ExternalID              string           `json:"externalId"`
	RequestSource           string           `json:"requestSource"`
	RequestorComment        string           `json:"requestorComment"`
	Status                  ActionStatus     `json:"status"`
	MachineID               string           `json:"machineId"`
	ComputerDNSName         string           `json:"computerDnsName"`
	CreationDateTimeUTC     time.Time        `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC   time.Time        `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   string           `json:"cancellationRequestor"`
	CancellationComment     string           `json:"cancellationComment"`
	CancellationDateTimeUTC time.Time        `json:"cancellationDateTimeUtc"`
	ErrorHResult            int64            `json:"errorHResult"`
	Title                   string           `json:"title"`
	RelatedFileInfo         *RelatedFileInfo `json:"relatedFileInfo"`
	Commands                json.RawMessage  `json:"commands"`         // live response commands, as sent
	TroubleshootInfo        json.RawMessage  `json:"troubleshootInfo"` // as sent
}

// RelatedFileInfo identifies the file a file action (StopAndQuarantineFile)
// applies to.
type RelatedFileInfo struct {
	FileIdentifier     string `json:"fileIdentifier"`
	FileIdentifierType string `json:"fileIdentifierType"`
}

// IsolateRequest is the body of an isolation request.
type IsolateRequest struct {
	Comment       string        `json:"Comment"`       // required
	IsolationType IsolationType `json:"IsolationType"` // empty means Full
}

// maxComment bounds an action comment.
const maxComment = 4000

func checkComment(comment string) error {
	if strings.TrimSpace(comment) == "" {
		return argErr("Comment", "required")
	}
	if len(comment) > maxComment {
		return argErr("Comment", "longer than %d bytes", maxComment)
	}
	return nil
}

// Isolate asks Defender to isolate the machine from the network and returns
// the created action (status Pending). It needs the Machine.Isolate
// permission. If another isolation or release is pending on the device,
// Defender refuses: see [IsActiveRequestAlreadyExists].
func (c *Client) Isolate(ctx context.Context, machineID string, r IsolateRequest) (*MachineAction, error) {
	op := "isolate machine " + machineID
	if err := checkMachineID("machineID", machineID); err != nil {
		return nil, fmt.Errorf("atp: isolate machine: %w", err)
	}
	if r.IsolationType == "" {
		r.IsolationType = IsolationFull
	}
	if !r.IsolationType.Valid() {
		return nil, fmt.Errorf("atp: %s: %w", op, argErr("IsolationType", "unknown isolation type %q", r.IsolationType))
	}
	if err := checkComment(r.Comment); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	return c.action(ctx, op, machinePath(machineID, "isolate"), r, http.StatusCreated)
}

// Unisolate asks Defender to release the machine from isolation and returns
// the created action (status Pending). It needs the Machine.Isolate
// permission.
func (c *Client) Unisolate(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	op := "unisolate machine " + machineID
	if err := checkMachineID("machineID", machineID); err != nil {
		return nil, fmt.Errorf("atp: unisolate machine: %w", err)
	}
	if err := checkComment(comment); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	return c.action(ctx, op, machinePath(machineID, "unisolate"), commentBody{comment}, http.StatusCreated)
}

// action posts body to path and returns the machine action Defender
// answers with (status is the documented success status, for errors).
// Like every POST it is retried only on 429 and on failures that prove the
// request never reached Defender (see Client.send).
func (c *Client) action(ctx context.Context, op, path string, body any, status int) (*MachineAction, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	var a MachineAction
	if err := c.do(ctx, &call{op: op, method: http.MethodPost, path: path, body: b}, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		// A 2xx whose body names no action (an empty object, a proxy's
		// page decoded leniently) is not proof the action was created.
		return nil, fmt.Errorf("atp: %s: %w", op, &DecodeError{StatusCode: status, Method: http.MethodPost, Path: path, Err: errors.New("the answer names no machine action")})
	}
	return &a, nil
}

// GetMachineAction returns the machine action with the given ID (a GUID,
// see [ValidActionID]). It needs the Machine.Read.All or
// Machine.ReadWrite.All permission.
func (c *Client) GetMachineAction(ctx context.Context, id string) (*MachineAction, error) {
	if err := checkActionID(id); err != nil {
		return nil, fmt.Errorf("atp: get machine action: %w", err)
	}
	var a MachineAction
	cl := &call{op: "get machine action " + id, method: http.MethodGet, path: actionPath(id, "")}
	if err := c.do(ctx, cl, &a); err != nil {
		return nil, err
	}
	if !strings.EqualFold(a.ID, id) || !a.Status.Valid() {
		// A 200 that is not this action (an empty object, another
		// shape decoded leniently) must not pass for its status.
		return nil, fmt.Errorf("atp: %s: %w", cl.op, &DecodeError{StatusCode: http.StatusOK, Method: cl.method, Path: cl.path,
			Err: errors.New("the answer is not the machine action asked for")})
	}
	return &a, nil
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ListMachineActionsOptions select machine actions. The zero value lists
// Defender's default page of all actions. Conditions are combined with
// "and"; several values of one list with "or".
type ListMachineActionsOptions struct {
	MachineID   string         // actions on this machine (40 hex characters)
	Types       []ActionType   // any of these types
	Statuses    []ActionStatus // any of these statuses
	Requestor   string         // requested by this application ID or user principal name
	CreatedFrom time.Time      // creationDateTimeUtc at or after (zero: no bound)
	Top         int            // page size, 1..10000; 0 means Defender's default
	Skip        int            // actions to skip, >= 0
}

// BuildMachineActionFilter validates o and returns its OData $filter
// expression (empty when o selects everything).
func BuildMachineActionFilter(o *ListMachineActionsOptions) (string, error) {
	if o == nil {
		return "", nil
	}
	if err := validatePage(o.Top, o.Skip); err != nil {
		return "", err
	}
	var parts []string
	if o.MachineID != "" {
		if err := checkMachineID("MachineID", o.MachineID); err != nil {
			return "", err
		}
		parts = append(parts, "machineId eq "+ODataString(strings.ToLower(o.MachineID)))
	}
	if len(o.Types) > 0 {
		for _, t := range o.Types {
			if !t.Valid() {
				return "", argErr("Types", "unknown action type %q", t)
			}
		}
		parts = append(parts, anyOf("type", o.Types))
	}
	if len(o.Statuses) > 0 {
		for _, s := range o.Statuses {
			if !s.Valid() {
				return "", argErr("Statuses", "unknown action status %q", s)
			}
		}
		parts = append(parts, anyOf("status", o.Statuses))
	}
	if o.Requestor != "" {
		if len(o.Requestor) > 320 {
			return "", argErr("Requestor", "longer than 320 bytes")
		}
		parts = append(parts, "requestor eq "+ODataString(o.Requestor))
	}
	if !o.CreatedFrom.IsZero() {
		parts = append(parts, "creationDateTimeUtc ge "+odataTime(o.CreatedFrom))
	}
	return strings.Join(parts, " and "), nil
}

// ListMachineActions returns one page of machine actions matching o.
func (c *Client) ListMachineActions(ctx context.Context, o *ListMachineActionsOptions) ([]MachineAction, error) {
	const op = "list machine actions"
	filter, err := BuildMachineActionFilter(o)
	if err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	if o == nil {
		o = &ListMachineActionsOptions{}
	}
	cl := &call{op: op, method: http.MethodGet, path: "/api/machineactions", query: pageQuery(nil, filter, o.Top, o.Skip)}
	var page struct {
		Value []MachineAction `json:"value"`
	}
	if err := c.do(ctx, cl, &page); err != nil {
		return nil, err
	}
	return page.Value, nil
}
