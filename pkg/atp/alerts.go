package atp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Severity is an alert's severity.
type Severity string

// Alert severities.
const (
	SeverityInformational Severity = "Informational"
	SeverityLow           Severity = "Low"
	SeverityMedium        Severity = "Medium"
	SeverityHigh          Severity = "High"
)

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool {
	switch s {
	case SeverityInformational, SeverityLow, SeverityMedium, SeverityHigh:
		return true
	}
	return false
}

// AlertStatus is an alert's status.
type AlertStatus string

// Alert statuses.
const (
	AlertStatusNew        AlertStatus = "New"
	AlertStatusInProgress AlertStatus = "InProgress"
	AlertStatusResolved   AlertStatus = "Resolved"
)

// Valid reports whether s is a known alert status.
func (s AlertStatus) Valid() bool {
	switch s {
	case AlertStatusNew, AlertStatusInProgress, AlertStatusResolved:
		return true
	}
	return false
}

// Alert is a Defender alert. Times absent or null in the answer are zero.
type Alert struct {
	ID                 string      `json:"id"`
	IncidentID         int64       `json:"incidentId"`
	InvestigationID    int64       `json:"investigationId"`
	AssignedTo         string      `json:"assignedTo"`
	Severity           Severity    `json:"severity"`
	Status             AlertStatus `json:"status"`
	Classification     string      `json:"classification"` // TruePositive, InformationalExpectedActivity, FalsePositive, or empty
	Determination      string      `json:"determination"`
	InvestigationState string      `json:"investigationState"`
	DetectionSource    string      `json:"detectionSource"`
	DetectorID         string      `json:"detectorId"`
	Category           string      `json:"category"`
	ThreatFamilyName   string      `json:"threatFamilyName"`
	ThreatName         string      `json:"threatName"`
	Title              string      `json:"title"`
	Description        string      `json:"description"`
	AlertCreationTime  time.Time   `json:"alertCreationTime"`
	FirstEventTime     time.Time   `json:"firstEventTime"`
	LastEventTime      time.Time   `json:"lastEventTime"`
	LastUpdateTime     time.Time   `json:"lastUpdateTime"`
	ResolvedTime       time.Time   `json:"resolvedTime"`
	MachineID          string      `json:"machineId"`
	ComputerDNSName    string      `json:"computerDnsName"`
	RBACGroupName      string      `json:"rbacGroupName"`
	AADTenantID        string      `json:"aadTenantId"`
	MitreTechniques    []string    `json:"mitreTechniques"`
	RelatedUser        *User       `json:"relatedUser"`
	LoggedOnUsers      []User      `json:"loggedOnUsers"`
	Comments           []Comment   `json:"comments"`
	Evidence           []Evidence  `json:"evidence"` // only with ListAlertsOptions.ExpandEvidence
}

// User is an account related to an alert.
type User struct {
	UserName    string `json:"userName"`
	AccountName string `json:"accountName"`
	DomainName  string `json:"domainName"`
}

// Comment is a comment on an alert.
type Comment struct {
	Comment     string    `json:"comment"`
	CreatedBy   string    `json:"createdBy"`
	CreatedTime time.Time `json:"createdTime"`
}

// Evidence is an entity (file, process, IP, URL, user...) linked to an alert.
type Evidence struct {
	EntityType                string    `json:"entityType"` // User, Process, File, Ip, Url, RegistryValue...
	EvidenceCreationTime      time.Time `json:"evidenceCreationTime"`
	SHA1                      string    `json:"sha1"`
	SHA256                    string    `json:"sha256"`
	FileName                  string    `json:"fileName"`
	FilePath                  string    `json:"filePath"`
	ProcessID                 int64     `json:"processId"`
	ProcessCommandLine        string    `json:"processCommandLine"`
	ProcessCreationTime       time.Time `json:"processCreationTime"`
	ParentProcessID           int64     `json:"parentProcessId"`
	ParentProcessCreationTime time.Time `json:"parentProcessCreationTime"`
	ParentProcessFileName     string    `json:"parentProcessFileName"`
	ParentProcessFilePath     string    `json:"parentProcessFilePath"`
	IPAddress                 string    `json:"ipAddress"`
	URL                       string    `json:"url"`
	RegistryKey               string    `json:"registryKey"`
	RegistryHive              string    `json:"registryHive"`
	RegistryValueType         string    `json:"registryValueType"`
	RegistryValue             string    `json:"registryValue"`
	AccountName               string    `json:"accountName"`
	DomainName                string    `json:"domainName"`
	UserSID                   string    `json:"userSid"`
	AADUserID                 string    `json:"aadUserId"`
	UserPrincipalName         string    `json:"userPrincipalName"`
	DetectionStatus           string    `json:"detectionStatus"`
}

// ListAlertsOptions select alerts. The zero value (or nil) lists Defender's
// default page of all alerts. Conditions are combined with "and"; several
// values of one list are combined with "or".
type ListAlertsOptions struct {
	Severities    []Severity    // any of these severities
	Statuses      []AlertStatus // any of these statuses
	CreatedFrom   time.Time     // alertCreationTime at or after (zero: no bound)
	CreatedBefore time.Time     // alertCreationTime before (zero: no bound)
	UpdatedFrom   time.Time     // lastUpdateTime at or after (zero: no bound)
	MachineID     string        // alerts of this machine (40 hex characters)
	Top           int           // page size, 1..10000; 0 means Defender's default
	Skip          int           // alerts to skip, >= 0
	// ExpandEvidence asks for each alert's evidence ($expand=evidence).
	ExpandEvidence bool
}

// BuildAlertFilter validates o and returns its OData $filter expression
// (empty when o selects everything). Top and Skip are validated too.
func BuildAlertFilter(o *ListAlertsOptions) (string, error) {
	if o == nil {
		return "", nil
	}
	if err := validatePage(o.Top, o.Skip); err != nil {
		return "", err
	}
	var parts []string
	if len(o.Severities) > 0 {
		for _, s := range o.Severities {
			if !s.Valid() {
				return "", argErr("Severities", "unknown severity %q", s)
			}
		}
		parts = append(parts, anyOf("severity", o.Severities))
	}
	if len(o.Statuses) > 0 {
		for _, s := range o.Statuses {
			if !s.Valid() {
				return "", argErr("Statuses", "unknown status %q", s)
			}
		}
		parts = append(parts, anyOf("status", o.Statuses))
	}
	if !o.CreatedFrom.IsZero() {
		parts = append(parts, "alertCreationTime ge "+odataTime(o.CreatedFrom))
	}
	if !o.CreatedBefore.IsZero() {
		parts = append(parts, "alertCreationTime lt "+odataTime(o.CreatedBefore))
	}
	if !o.UpdatedFrom.IsZero() {
		parts = append(parts, "lastUpdateTime ge "+odataTime(o.UpdatedFrom))
	}
	if o.MachineID != "" {
		if err := checkMachineID("MachineID", o.MachineID); err != nil {
			return "", err
		}
		parts = append(parts, "machineId eq "+ODataString(strings.ToLower(o.MachineID)))
	}
	return strings.Join(parts, " and "), nil
}

func alertsCall(o *ListAlertsOptions) (*call, error) {
	filter, err := BuildAlertFilter(o)
	if err != nil {
		return nil, fmt.Errorf("atp: list alerts: %w", err)
	}
	if o == nil {
		o = &ListAlertsOptions{}
	}
	q := pageQuery(nil, filter, o.Top, o.Skip)
	if o.ExpandEvidence {
		q = append(q, [2]string{"$expand", "evidence"})
	}
	return &call{op: "list alerts", method: http.MethodGet, path: "/api/alerts", query: q}, nil
}

// ListAlerts returns one page of alerts matching o (nil: all, server
// default page size).
func (c *Client) ListAlerts(ctx context.Context, o *ListAlertsOptions) ([]Alert, error) {
	cl, err := alertsCall(o)
	if err != nil {
		return nil, err
	}
	var page struct {
		Value []Alert `json:"value"`
	}
	if err := c.do(ctx, cl, &page); err != nil {
		return nil, err
	}
	return page.Value, nil
}

// StreamAlerts fetches one page of alerts matching o and calls fn with each
// alert's JSON exactly as Defender sent it, decoding the answer's "value"
// array element by element instead of buffering it. raw is only valid
// during the call: fn must copy it to keep it. It returns how many alerts
// were handed to fn. An error from fn stops the stream and is returned
// wrapped. Retries (see the package doc) happen only before the first call
// of fn.
func (c *Client) StreamAlerts(ctx context.Context, o *ListAlertsOptions, fn func(raw json.RawMessage) error) (n int, err error) {
	cl, err := alertsCall(o)
	if err != nil {
		return 0, err
	}
	resp, err := c.send(ctx, cl)
	if err != nil {
		return 0, err
	}
	defer drainClose(resp.Body)
	dec := json.NewDecoder(&limitedBody{r: resp.Body, n: c.maxBody})
	fail := func(err error) (int, error) {
		return n, fmt.Errorf("atp: %s: %w", cl.op, c.decodeError(resp, err))
	}
	if err := expectDelim(dec, '{'); err != nil {
		return fail(err)
	}
	sawValue := false
	var raw json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		key, _ := tok.(string)
		if key != "value" || sawValue {
			if err := dec.Decode(&raw); err != nil { // skip other members
				return fail(err)
			}
			continue
		}
		sawValue = true
		if err := expectDelim(dec, '['); err != nil {
			return fail(fmt.Errorf("value: %w", err))
		}
		for dec.More() {
			raw = raw[:0]
			if err := dec.Decode(&raw); err != nil {
				return fail(err)
			}
			if len(raw) == 0 || raw[0] != '{' {
				return fail(errors.New("value: element is not an object"))
			}
			if err := fn(raw); err != nil {
				return n, fmt.Errorf("atp: %s: %w", cl.op, err)
			}
			n++
		}
		if err := expectDelim(dec, ']'); err != nil {
			return fail(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail(err)
	}
	if !sawValue {
		return fail(errors.New(`no "value" array`))
	}
	return n, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// AllAlerts pages through every alert matching o with $top/$skip (Defender
// offers no reliable next link), starting at o.Skip with pages of o.Top
// alerts (0 means 10,000). It stops after a page shorter than the page size,
// at the first error (yielded once), or when the loop body breaks.
func (c *Client) AllAlerts(ctx context.Context, o *ListAlertsOptions) iter.Seq2[Alert, error] {
	return func(yield func(Alert, error) bool) {
		var page ListAlertsOptions
		if o != nil {
			page = *o
		}
		if page.Top == 0 {
			page.Top = MaxTop
		}
		for {
			alerts, err := c.ListAlerts(ctx, &page)
			if err != nil {
				yield(Alert{}, err)
				return
			}
			for _, a := range alerts {
				if !yield(a, nil) {
					return
				}
			}
			if len(alerts) < page.Top {
				return
			}
			page.Skip += len(alerts)
		}
	}
}

// GetAlert returns the alert with the given ID.
func (c *Client) GetAlert(ctx context.Context, id string) (*Alert, error) {
	if err := checkAlertID(id); err != nil {
		return nil, fmt.Errorf("atp: get alert: %w", err)
	}
	cl := &call{op: "get alert " + id, method: http.MethodGet, path: "/api/alerts/" + url.PathEscape(id)}
	var a Alert
	if err := c.do(ctx, cl, &a); err != nil {
		return nil, err
	}
	if !strings.EqualFold(a.ID, id) {
		// A 200 that is not this alert (an empty object, another shape
		// decoded leniently) must not pass for it.
		return nil, fmt.Errorf("atp: %s: %w", cl.op, &DecodeError{StatusCode: http.StatusOK, Method: cl.method, Path: cl.path,
			Err: errors.New("the answer is not the alert asked for")})
	}
	return &a, nil
}

// checkAlertID accepts Defender alert IDs such as
// "da637308392288907382_-880718168": letters, digits, '_', '-' and '.'.
func checkAlertID(id string) error {
	if id == "" || len(id) > 200 || strings.Trim(id, ".") == "" {
		return argErr("alertID", "want 1 to 200 characters, not only dots")
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-' || c == '.') {
			return argErr("alertID", "unexpected character %q", c)
		}
	}
	return nil
}
