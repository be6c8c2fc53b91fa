package alerts

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
)

// DefaultTop is the page size when the request names none.
const DefaultTop = 100

// Request is an alerts request as callers send it (query string or JSON).
type Request struct {
	Severity     decode.StringList `json:"severity,omitempty"`
	Status       decode.StringList `json:"status,omitempty"`
	Since        string            `json:"since,omitempty"`
	UpdatedSince string            `json:"updatedSince,omitempty"`
	MachineID    string            `json:"machineId,omitempty"`
	Top          decode.Int        `json:"top"`
	Skip         decode.Int        `json:"skip"`
	Evidence     decode.Bool       `json:"evidence"`
}

// QueryParameters are the query-string parameters an alerts GET accepts.
var QueryParameters = []string{"severity", "status", "since", "updatedSince", "machineId", "top", "skip", "evidence"}

// ParseQuery reads a Request from a query string. Lists are comma-separated
// or repeated; parameter names are matched case-insensitively; an unknown
// parameter is an error (except Azure's function key, `code`).
func ParseQuery(q url.Values) (Request, error) {
	var r Request
	for name, values := range q {
		canon := ""
		for _, p := range QueryParameters {
			if strings.EqualFold(p, name) {
				canon = p
			}
		}
		last := ""
		if len(values) > 0 {
			last = values[len(values)-1]
		}
		switch canon {
		case "severity":
			r.Severity = append(r.Severity, decode.SplitList(values)...)
		case "status":
			r.Status = append(r.Status, decode.SplitList(values)...)
		case "since":
			r.Since = last
		case "updatedSince":
			r.UpdatedSince = last
		case "machineId":
			r.MachineID = last
		case "top", "skip":
			n, err := strconv.Atoi(strings.TrimSpace(last))
			if err != nil {
				return r, envelope.Errorf(envelope.InvalidRequest, "%s: %q is not a whole number", canon, last)
			}
			if canon == "top" {
				r.Top = decode.Int{Value: n, Set: true}
			} else {
				r.Skip = decode.Int{Value: n, Set: true}
			}
		case "evidence":
			b, err := decode.ParseBool(last)
			if err != nil {
				return r, envelope.Errorf(envelope.InvalidRequest, "evidence: %q: %v", last, err)
			}
			r.Evidence = decode.Bool{Value: b, Set: true}
		default:
			if name == "code" { // Azure Functions function key
				continue
			}
			return r, envelope.Errorf(envelope.InvalidRequest, "unknown parameter %q; known: %s", name, strings.Join(QueryParameters, ", "))
		}
	}
	return r, nil
}

var severities = []atp.Severity{atp.SeverityInformational, atp.SeverityLow, atp.SeverityMedium, atp.SeverityHigh}
var statuses = []atp.AlertStatus{atp.AlertStatusNew, atp.AlertStatusInProgress, atp.AlertStatusResolved}

// Options validates r and turns it into the Defender query. now anchors
// relative times. Every problem is an invalid_request error naming the field.
func (r Request) Options(now time.Time) (*atp.ListAlertsOptions, error) {
	o := &atp.ListAlertsOptions{Top: DefaultTop, ExpandEvidence: r.Evidence.Value}
	for _, s := range r.Severity {
		i := slices.IndexFunc(severities, func(v atp.Severity) bool { return strings.EqualFold(string(v), s) })
		if i < 0 {
			return nil, envelope.Errorf(envelope.InvalidRequest, "severity: unknown value %q; use Informational, Low, Medium or High", s)
		}
		if !slices.Contains(o.Severities, severities[i]) {
			o.Severities = append(o.Severities, severities[i])
		}
	}
	for _, s := range r.Status {
		i := slices.IndexFunc(statuses, func(v atp.AlertStatus) bool { return strings.EqualFold(string(v), s) })
		if i < 0 {
			return nil, envelope.Errorf(envelope.InvalidRequest, "status: unknown value %q; use New, InProgress or Resolved", s)
		}
		if !slices.Contains(o.Statuses, statuses[i]) {
			o.Statuses = append(o.Statuses, statuses[i])
		}
	}
	var err error
	if r.Since != "" {
		if o.CreatedFrom, err = decode.Since("since", r.Since, now); err != nil {
			return nil, err
		}
	}
	if r.UpdatedSince != "" {
		if o.UpdatedFrom, err = decode.Since("updatedSince", r.UpdatedSince, now); err != nil {
			return nil, err
		}
	}
	if r.MachineID != "" {
		if !atp.ValidMachineID(r.MachineID) {
			return nil, envelope.Errorf(envelope.InvalidRequest, "machineId: want the 40 hexadecimal characters of a Defender device ID")
		}
		o.MachineID = strings.ToLower(r.MachineID)
	}
	if r.Top.Set {
		if r.Top.Value < 1 || r.Top.Value > atp.MaxTop {
			return nil, envelope.Errorf(envelope.InvalidRequest, "top: %d is out of range; use 1 to %d", r.Top.Value, atp.MaxTop)
		}
		o.Top = r.Top.Value
	}
	if r.Skip.Set {
		if r.Skip.Value < 0 {
			return nil, envelope.Errorf(envelope.InvalidRequest, "skip: %d is negative", r.Skip.Value)
		}
		o.Skip = r.Skip.Value
	}
	return o, nil
}
