package defender

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// permAlertsWrite is "Update alert"'s permission table.
var permAlertsWrite = permission{[]string{RoleAlertReadWriteAll}, []string{ScopeAlertReadWrite}}

// Alert classifications and the determinations each allows, as "Update
// alert" documents them.
var alertDeterminations = map[string][]string{
	"TruePositive":                  {"MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware", "Phishing", "UnwantedSoftware", "Other"},
	"InformationalExpectedActivity": {"SecurityTesting", "LineOfBusinessApplication", "ConfirmedActivity", "Other"},
	"FalsePositive":                 {"NotMalicious", "InsufficientData", "Other"},
}

// updateAlert answers PATCH /api/alerts/{id}: status, assignedTo,
// classification and determination are set when given, comment is added
// to the alert's comments (by the caller, now). Property names are matched
// without regard to case (Defender's reference writes them both ways);
// an unknown one, an unknown value, or a determination the classification
// does not allow is 400 InvalidRequestBody naming the allowed values. A
// determination without a classification is checked against the alert's
// own.
func (s *Server) updateAlert(w http.ResponseWriter, r *http.Request, p Principal, id string) *apiError {
	var allowed []string
	for _, k := range []string{"status", "assignedTo", "classification", "determination", "comment"} {
		allowed = append(allowed, k, strings.ToUpper(k[:1])+k[1:])
	}
	raw, aerr := readActionBody(r, false, allowed...)
	if aerr != nil {
		return aerr
	}
	params := map[string]string{}
	for k, v := range raw {
		params[strings.ToLower(k)] = v
	}
	if st, ok := params["status"]; ok && !slices.Contains([]string{"New", "InProgress", "Resolved"}, st) {
		return errBadRequest(CodeInvalidRequestBody, "Invalid status '%s'; allowed: New, InProgress, Resolved", st)
	}
	if c, ok := params["classification"]; ok && alertDeterminations[c] == nil {
		return errBadRequest(CodeInvalidRequestBody, "Invalid classification '%s'; allowed: TruePositive, InformationalExpectedActivity, FalsePositive", c)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.alertByID[id]
	if old == nil {
		return errNotFound("Alert %s was not found", id)
	}
	// Alerts are replaced, never changed in place: readers hold pointers
	// to them without the lock.
	c := *old
	c.Comments = slices.Clone(old.Comments)
	a := &c
	class, ok := params["classification"]
	if !ok {
		class = a.Classification
	}
	if d, ok := params["determination"]; ok {
		if class == "" {
			return errBadRequest(CodeInvalidRequestBody, "Determination '%s' requires a classification", d)
		}
		if !slices.Contains(alertDeterminations[class], d) {
			return errBadRequest(CodeInvalidRequestBody, "Invalid determination '%s' for classification %s; allowed: %s",
				d, class, strings.Join(alertDeterminations[class], ", "))
		}
	}
	now := s.now()
	if st, ok := params["status"]; ok {
		a.Status = AlertStatus(st)
		if a.Status == "Resolved" {
			a.ResolvedTime = now
		}
	}
	if v, ok := params["assignedto"]; ok {
		a.AssignedTo = v
	}
	if v, ok := params["classification"]; ok {
		a.Classification = v
	}
	if v, ok := params["determination"]; ok {
		a.Determination = v
	}
	if c := strings.TrimSpace(params["comment"]); c != "" {
		a.Comments = append(a.Comments, AlertComment{Comment: c, CreatedBy: requestorOf(p), CreatedTime: now})
	}
	a.LastUpdateTime = now
	next := slices.Clone(s.alerts)
	for i, x := range next {
		if x == old {
			next[i] = a
		}
	}
	s.alerts, s.alertByID[id] = next, a
	buf := []byte(`{"@odata.context":`)
	buf = appendString(buf, odataContext(r, "Alerts/$entity"))
	buf = append(buf, ',')
	body := a.appendJSON(nil, false)
	buf = append(buf, body[1:]...)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	return nil
}
