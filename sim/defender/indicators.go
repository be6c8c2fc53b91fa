package defender

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// permIndicators is the permission table of the indicator endpoints.
var permIndicators = permission{[]string{RoleTiReadWrite, RoleTiReadWriteAll}, []string{ScopeTiReadWrite}}

// Indicator is a stored indicator, as Defender answers it.
type Indicator struct {
	ID                 string     `json:"id"`
	IndicatorValue     string     `json:"indicatorValue"`
	IndicatorType      string     `json:"indicatorType"`
	Action             string     `json:"action"`
	Title              string     `json:"title"`
	Description        string     `json:"description"`
	Severity           string     `json:"severity,omitempty"`
	ExpirationTime     *time.Time `json:"expirationTime"`
	RecommendedActions string     `json:"recommendedActions,omitempty"`
	RBACGroupNames     []string   `json:"rbacGroupNames"`
	CreatedBy          string     `json:"createdBy"`
	CreationTimeUTC    time.Time  `json:"creationTimeDateTimeUtc"`
	LastUpdateTime     time.Time  `json:"lastUpdateTime"`
}

// indicatorStore holds the indicators, keyed by type and lowercase value.
type indicatorStore struct {
	mu     sync.Mutex
	next   int
	byID   map[string]*Indicator
	byItem map[string]*Indicator
}

var (
	indicatorTypes   = []string{"FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint", "IpAddress", "DomainName", "Url"}
	indicatorActions = []string{"Alert", "Warn", "Block", "Audit", "BlockAndRemediate", "AlertAndBlock", "Allowed"}
)

// Indicators returns the stored indicators, by ID.
func (s *Server) Indicators() []Indicator {
	st := &s.indicators
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]Indicator, 0, len(st.byID))
	for _, in := range st.byID {
		out = append(out, *in)
	}
	slices.SortFunc(out, func(a, b Indicator) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// checkIndicator validates a submission as "Submit or Update Indicator"
// documents it: a known type and action, a title and a description, a
// value of the type's shape.
func checkIndicator(in *Indicator) *apiError {
	switch {
	case !slices.Contains(indicatorTypes, in.IndicatorType):
		return errBadRequest(CodeInvalidRequestBody, "Invalid indicatorType '%s'", in.IndicatorType)
	case !slices.Contains(indicatorActions, in.Action):
		return errBadRequest(CodeInvalidRequestBody, "Invalid action '%s'", in.Action)
	case strings.TrimSpace(in.Title) == "" || strings.TrimSpace(in.Description) == "":
		return errBadRequest(CodeMissingRequiredParameter, "title and description are required")
	case in.IndicatorValue == "":
		return errBadRequest(CodeMissingRequiredParameter, "indicatorValue is required")
	}
	n := map[string]int{"FileSha1": 40, "CertificateThumbprint": 40, "FileSha256": 64, "FileMd5": 32}[in.IndicatorType]
	if n > 0 && !isHex(in.IndicatorValue, n) {
		return errBadRequest(CodeInvalidHashValue, "indicatorValue is not a valid %s", in.IndicatorType)
	}
	return nil
}

// upsertLocked stores in (a submission), updating the indicator of the
// same type and value when there is one.
func (s *Server) upsertLocked(in Indicator, p Principal, now time.Time) *Indicator {
	st := &s.indicators
	if st.byID == nil {
		st.byID, st.byItem = map[string]*Indicator{}, map[string]*Indicator{}
	}
	key := in.IndicatorType + "\x00" + strings.ToLower(in.IndicatorValue)
	if old := st.byItem[key]; old != nil {
		in.ID, in.CreatedBy, in.CreationTimeUTC = old.ID, old.CreatedBy, old.CreationTimeUTC
	} else {
		st.next++
		in.ID, in.CreatedBy, in.CreationTimeUTC = strconv.Itoa(st.next), requestorOf(p), now
	}
	in.LastUpdateTime = now
	if in.RBACGroupNames == nil {
		in.RBACGroupNames = []string{}
	}
	c := in
	st.byID[c.ID], st.byItem[key] = &c, &c
	return &c
}

func readIndicatorJSON(r *http.Request, v any) *apiError {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil || len(body) > maxBodyBytes {
		return errBadRequest(CodeInvalidRequestBody, "Request body is incorrect")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errBadRequest(CodeInvalidRequestBody, "Request body is incorrect")
	}
	return nil
}

// submitIndicator answers POST /api/indicators.
func (s *Server) submitIndicator(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	var in Indicator
	if e := readIndicatorJSON(r, &in); e != nil {
		return e
	}
	if e := checkIndicator(&in); e != nil {
		return e
	}
	st := &s.indicators
	st.mu.Lock()
	out := s.upsertLocked(in, p, s.now())
	st.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// importIndicators answers POST /api/indicators/import: up to 500
// indicators, one result each (a failed one says why).
func (s *Server) importIndicators(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
	var req struct {
		Indicators []Indicator `json:"Indicators"`
	}
	if e := readIndicatorJSON(r, &req); e != nil {
		return e
	}
	if len(req.Indicators) == 0 || len(req.Indicators) > 500 {
		return errBadRequest(CodeInvalidRequestBody, "Indicators: 1 to 500 indicators per request")
	}
	type result struct {
		ID            *string `json:"id"`
		Indicator     string  `json:"indicator"`
		IsFailed      bool    `json:"isFailed"`
		FailureReason *string `json:"failureReason"`
	}
	st := &s.indicators
	st.mu.Lock()
	now := s.now()
	out := make([]result, len(req.Indicators))
	for i := range req.Indicators {
		in := req.Indicators[i]
		out[i].Indicator = in.IndicatorValue
		if e := checkIndicator(&in); e != nil {
			reason := e.message
			out[i].IsFailed, out[i].FailureReason = true, &reason
			continue
		}
		id := s.upsertLocked(in, p, now).ID
		out[i].ID = &id
	}
	st.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// deleteIndicator answers DELETE /api/indicators/{id}: 204, or 404.
func (s *Server) deleteIndicator(w http.ResponseWriter, id string) *apiError {
	st := &s.indicators
	st.mu.Lock()
	defer st.mu.Unlock()
	in := st.byID[id]
	if in == nil {
		return errNotFound("Indicator %s was not found", sanitizePath(id))
	}
	delete(st.byID, id)
	delete(st.byItem, in.IndicatorType+"\x00"+strings.ToLower(in.IndicatorValue))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listIndicators answers GET /api/indicators (no paging: the simulator
// holds few).
func (s *Server) listIndicators(w http.ResponseWriter) *apiError {
	writeJSON(w, http.StatusOK, map[string]any{"value": s.Indicators()})
	return nil
}
