package defender

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Severity is an alert's severity.
type Severity string

// Alert severities as Defender names them.
const (
	SeverityUnSpecified   Severity = "UnSpecified"
	SeverityInformational Severity = "Informational"
	SeverityLow           Severity = "Low"
	SeverityMedium        Severity = "Medium"
	SeverityHigh          Severity = "High"
)

// AlertStatus is an alert's status.
type AlertStatus string

// Alert statuses as Defender names them.
const (
	AlertStatusUnknown    AlertStatus = "Unknown"
	AlertStatusNew        AlertStatus = "New"
	AlertStatusInProgress AlertStatus = "InProgress"
	AlertStatusResolved   AlertStatus = "Resolved"
)

// Alert is a Defender alert, serialized with Defender's field names and order.
// Nullable fields are null on the wire when empty: "" strings (AssignedTo,
// Classification, Determination, ThreatFamilyName, ThreatName), 0 ids
// (IncidentID, InvestigationID), zero times, and a nil RelatedUser.
//
// Evidence is only written when the request expands it ($expand=evidence);
// otherwise "evidence" is the empty array, as in Microsoft's list example.
type Alert struct {
	ID                 string
	IncidentID         int64
	InvestigationID    int64
	AssignedTo         string
	Severity           Severity
	Status             AlertStatus
	Classification     string
	Determination      string
	InvestigationState string
	DetectionSource    string
	DetectorID         string
	Category           string
	ThreatFamilyName   string
	Title              string
	Description        string
	AlertCreationTime  time.Time
	FirstEventTime     time.Time
	LastEventTime      time.Time
	LastUpdateTime     time.Time
	ResolvedTime       time.Time
	MachineID          string
	ComputerDNSName    string
	RBACGroupName      string
	AADTenantID        string
	ThreatName         string
	MitreTechniques    []string
	RelatedUser        *RelatedUser
	LoggedOnUsers      []LoggedOnUser
	Comments           []AlertComment
	Evidence           []Evidence

	evSeed uint64 // seeded alerts generate their evidence lazily from this
}

// RelatedUser is the user an alert is about.
type RelatedUser struct {
	UserName   string
	DomainName string
}

// LoggedOnUser is a user logged on to the alert's device.
type LoggedOnUser struct {
	AccountName string
	DomainName  string
}

// AlertComment is an analyst comment on an alert.
type AlertComment struct {
	Comment     string
	CreatedBy   string
	CreatedTime time.Time
}

// Evidence is one entity related to an alert. Empty strings, zero ids and
// zero times are null on the wire.
type Evidence struct {
	EntityType                string
	EvidenceCreationTime      time.Time
	SHA1                      string
	SHA256                    string
	FileName                  string
	FilePath                  string
	ProcessID                 int64
	ProcessCommandLine        string
	ProcessCreationTime       time.Time
	ParentProcessID           int64
	ParentProcessCreationTime time.Time
	ParentProcessFileName     string
	ParentProcessFilePath     string
	IPAddress                 string
	URL                       string
	RegistryKey               string
	RegistryHive              string
	RegistryValueType         string
	RegistryValue             string
	AccountName               string
	DomainName                string
	UserSID                   string
	AADUserID                 string
	UserPrincipalName         string
	DetectionStatus           string
}

// MarshalJSON encodes the alert as Defender does with evidence expanded.
func (a Alert) MarshalJSON() ([]byte, error) { return a.appendJSON(nil, true), nil }

// MarshalJSON encodes the evidence as Defender does.
func (e Evidence) MarshalJSON() ([]byte, error) { return e.appendJSON(nil), nil }

// evidence returns the alert's evidence, generating a seeded alert's.
func (a *Alert) evidence() []Evidence {
	if a.Evidence == nil && a.evSeed != 0 {
		return seededEvidence(a)
	}
	return a.Evidence
}

func (a *Alert) appendJSON(b []byte, expand bool) []byte {
	b = append(b, '{')
	b = appendKey(b, "id", true)
	b = appendString(b, a.ID)
	b = appendKey(b, "incidentId", false)
	b = appendNullInt(b, a.IncidentID)
	b = appendKey(b, "investigationId", false)
	b = appendNullInt(b, a.InvestigationID)
	b = appendKey(b, "assignedTo", false)
	b = appendNullString(b, a.AssignedTo)
	b = appendKey(b, "severity", false)
	b = appendString(b, string(a.Severity))
	b = appendKey(b, "status", false)
	b = appendString(b, string(a.Status))
	b = appendKey(b, "classification", false)
	b = appendNullString(b, a.Classification)
	b = appendKey(b, "determination", false)
	b = appendNullString(b, a.Determination)
	b = appendKey(b, "investigationState", false)
	b = appendString(b, a.InvestigationState)
	b = appendKey(b, "detectionSource", false)
	b = appendString(b, a.DetectionSource)
	b = appendKey(b, "detectorId", false)
	b = appendNullString(b, a.DetectorID)
	b = appendKey(b, "category", false)
	b = appendString(b, a.Category)
	b = appendKey(b, "threatFamilyName", false)
	b = appendNullString(b, a.ThreatFamilyName)
	b = appendKey(b, "title", false)
	b = appendString(b, a.Title)
	b = appendKey(b, "description", false)
	b = appendString(b, a.Description)
	b = appendKey(b, "alertCreationTime", false)
	b = appendTime(b, a.AlertCreationTime)
	b = appendKey(b, "firstEventTime", false)
	b = appendTime(b, a.FirstEventTime)
	b = appendKey(b, "lastEventTime", false)
	b = appendTime(b, a.LastEventTime)
	b = appendKey(b, "lastUpdateTime", false)
	b = appendTime(b, a.LastUpdateTime)
	b = appendKey(b, "resolvedTime", false)
	b = appendTime(b, a.ResolvedTime)
	b = appendKey(b, "machineId", false)
	b = appendNullString(b, a.MachineID)
	b = appendKey(b, "computerDnsName", false)
	b = appendNullString(b, a.ComputerDNSName)
	b = appendKey(b, "rbacGroupName", false)
	b = appendNullString(b, a.RBACGroupName)
	b = appendKey(b, "aadTenantId", false)
	b = appendString(b, a.AADTenantID)
	b = appendKey(b, "threatName", false)
	b = appendNullString(b, a.ThreatName)
	b = appendKey(b, "mitreTechniques", false)
	b = appendStrings(b, a.MitreTechniques)
	b = appendKey(b, "relatedUser", false)
	if a.RelatedUser == nil {
		b = append(b, "null"...)
	} else {
		b = appendKey(append(b, '{'), "userName", true)
		b = appendString(b, a.RelatedUser.UserName)
		b = appendKey(b, "domainName", false)
		b = appendString(b, a.RelatedUser.DomainName)
		b = append(b, '}')
	}
	b = appendKey(b, "loggedOnUsers", false)
	b = append(b, '[')
	for i, u := range a.LoggedOnUsers {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(append(b, '{'), "accountName", true)
		b = appendString(b, u.AccountName)
		b = appendKey(b, "domainName", false)
		b = appendString(b, u.DomainName)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendKey(b, "comments", false)
	b = append(b, '[')
	for i, c := range a.Comments {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(append(b, '{'), "comment", true)
		b = appendString(b, c.Comment)
		b = appendKey(b, "createdBy", false)
		b = appendString(b, c.CreatedBy)
		b = appendKey(b, "createdTime", false)
		b = appendTime(b, c.CreatedTime)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendKey(b, "evidence", false)
	b = append(b, '[')
	if expand {
		for i, e := range a.evidence() {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendJSON(b)
		}
	}
	b = append(b, ']')
	return append(b, '}')
}

func (e *Evidence) appendJSON(b []byte) []byte {
	b = appendKey(append(b, '{'), "entityType", true)
	b = appendString(b, e.EntityType)
	b = appendKey(b, "evidenceCreationTime", false)
	b = appendTime(b, e.EvidenceCreationTime)
	b = appendKey(b, "sha1", false)
	b = appendNullString(b, e.SHA1)
	b = appendKey(b, "sha256", false)
	b = appendNullString(b, e.SHA256)
	b = appendKey(b, "fileName", false)
	b = appendNullString(b, e.FileName)
	b = appendKey(b, "filePath", false)
	b = appendNullString(b, e.FilePath)
	b = appendKey(b, "processId", false)
	b = appendNullInt(b, e.ProcessID)
	b = appendKey(b, "processCommandLine", false)
	b = appendNullString(b, e.ProcessCommandLine)
	b = appendKey(b, "processCreationTime", false)
	b = appendTime(b, e.ProcessCreationTime)
	b = appendKey(b, "parentProcessId", false)
	b = appendNullInt(b, e.ParentProcessID)
	b = appendKey(b, "parentProcessCreationTime", false)
	b = appendTime(b, e.ParentProcessCreationTime)
	b = appendKey(b, "parentProcessFileName", false)
	b = appendNullString(b, e.ParentProcessFileName)
	b = appendKey(b, "parentProcessFilePath", false)
	b = appendNullString(b, e.ParentProcessFilePath)
	b = appendKey(b, "ipAddress", false)
	b = appendNullString(b, e.IPAddress)
	b = appendKey(b, "url", false)
	b = appendNullString(b, e.URL)
	b = appendKey(b, "registryKey", false)
	b = appendNullString(b, e.RegistryKey)
	b = appendKey(b, "registryHive", false)
	b = appendNullString(b, e.RegistryHive)
	b = appendKey(b, "registryValueType", false)
	b = appendNullString(b, e.RegistryValueType)
	b = appendKey(b, "registryValue", false)
	b = appendNullString(b, e.RegistryValue)
	b = appendKey(b, "accountName", false)
	b = appendNullString(b, e.AccountName)
	b = appendKey(b, "domainName", false)
	b = appendNullString(b, e.DomainName)
	b = appendKey(b, "userSid", false)
	b = appendNullString(b, e.UserSID)
	b = appendKey(b, "aadUserId", false)
	b = appendNullString(b, e.AADUserID)
	b = appendKey(b, "userPrincipalName", false)
	b = appendNullString(b, e.UserPrincipalName)
	b = appendKey(b, "detectionStatus", false)
	b = appendNullString(b, e.DetectionStatus)
	return append(b, '}')
}

func strVal(s string) value     { return value{s: s} }
func nullStrVal(s string) value { return value{null: s == "", s: s} }
func nullIntVal(n int64) value  { return value{null: n == 0, n: n} }
func timeVal(t time.Time) value { return value{null: t.IsZero(), n: t.UnixNano()} }
func boolVal(v bool) value {
	if v {
		return value{n: 1}
	}
	return value{}
}
func stringsVal(ss []string) value { return value{ss: ss} }

// alertSchema lists the properties $filter accepts on alerts (Microsoft's
// list plus machineId).
var alertSchema = schema[Alert]{entity: "Alert", fields: map[string]field[Alert]{
	"id":                {kind: kString, value: func(a *Alert) value { return strVal(a.ID) }},
	"incidentid":        {kind: kInt, value: func(a *Alert) value { return nullIntVal(a.IncidentID) }},
	"investigationid":   {kind: kInt, value: func(a *Alert) value { return nullIntVal(a.InvestigationID) }},
	"assignedto":        {kind: kString, value: func(a *Alert) value { return nullStrVal(a.AssignedTo) }},
	"detectionsource":   {kind: kString, value: func(a *Alert) value { return strVal(a.DetectionSource) }},
	"category":          {kind: kString, value: func(a *Alert) value { return strVal(a.Category) }},
	"machineid":         {kind: kString, value: func(a *Alert) value { return nullStrVal(a.MachineID) }},
	"alertcreationtime": {kind: kTime, value: func(a *Alert) value { return timeVal(a.AlertCreationTime) }},
	"lastupdatetime":    {kind: kTime, value: func(a *Alert) value { return timeVal(a.LastUpdateTime) }},
	"lasteventtime":     {kind: kTime, value: func(a *Alert) value { return timeVal(a.LastEventTime) }},
	"severity": {kind: kEnum, enum: []string{"UnSpecified", "Informational", "Low", "Medium", "High"},
		value: func(a *Alert) value { return strVal(string(a.Severity)) }},
	"status": {kind: kEnum, enum: []string{"Unknown", "New", "InProgress", "Resolved"},
		value: func(a *Alert) value { return strVal(string(a.Status)) }},
}}

// sortAlerts orders alerts newest first (then by id), the order pages use.
func sortAlerts(as []*Alert) {
	slices.SortStableFunc(as, func(x, y *Alert) int {
		if c := y.AlertCreationTime.Compare(x.AlertCreationTime); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) *apiError {
	q, err := parseQuery(r.URL.Query(), true)
	if err != nil {
		return toAPIError(err)
	}
	pred, err := compileFilter(q.filter, alertSchema)
	if err != nil {
		return toAPIError(err)
	}
	s.mu.RLock()
	all := s.alerts
	s.mu.RUnlock()

	top := q.top
	if top < 0 {
		top = maxPageSize
	}
	expand := q.expand == "evidence"
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, `{"@odata.context":`...)
	buf = appendString(buf, odataContext(r, "Alerts"))
	buf = append(buf, `,"value":[`...)
	skipped, n := 0, 0
	for _, a := range all {
		if n >= top {
			break
		}
		if !pred(a) {
			continue
		}
		if skipped < q.skip {
			skipped++
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = a.appendJSON(buf, expand)
		n++
		if len(buf) >= 48<<10 {
			if _, err := w.Write(buf); err != nil {
				return nil
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "]}"...)
	_, _ = w.Write(buf)
	return nil
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request, id string) *apiError {
	if len(r.URL.Query()) > 0 {
		if _, err := parseQuery(r.URL.Query(), true); err != nil {
			return toAPIError(err)
		}
	}
	s.mu.RLock()
	a := s.alertByID[id]
	s.mu.RUnlock()
	if a == nil {
		return errNotFound("Alert %s was not found", id)
	}
	buf := []byte(`{"@odata.context":`)
	buf = appendString(buf, odataContext(r, "Alerts/$entity"))
	buf = append(buf, ',')
	body := a.appendJSON(nil, true)
	buf = append(buf, body[1:]...) // merge the context into the object
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	return nil
}
