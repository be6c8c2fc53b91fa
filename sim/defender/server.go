package defender

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// permission lists the roles (application) and scopes (delegated) of which
// any one allows an endpoint.
type permission struct {
	roles  []string
	scopes []string
}

var (
	permAlertsRead   = permission{[]string{RoleAlertReadAll, RoleAlertReadWriteAll}, []string{ScopeAlertRead, ScopeAlertReadWrite}}
	permMachinesRead = permission{[]string{RoleMachineReadAll, RoleMachineReadWriteAll}, []string{ScopeMachineRead, ScopeMachineReadWrite}}
	permIsolate      = permission{[]string{RoleMachineIsolate}, []string{ScopeMachineIsolate}}
)

// UnmatchedRoute is the Stats.Calls key of requests that match no route.
const UnmatchedRoute = "unmatched"

// route is a matched endpoint.
type route struct {
	key    string // "GET /api/alerts/{id}": the Stats key
	method string
	perm   permission
	serve  func(w http.ResponseWriter, r *http.Request, p Principal) *apiError
}

// match resolves r's path to a route. Unknown paths give nil.
func (s *Server) match(r *http.Request) *route {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 2 || !strings.EqualFold(segs[0], "api") {
		return nil
	}
	coll := strings.ToLower(segs[1])
	switch {
	case coll == "alerts" && len(segs) == 2:
		return &route{"GET /api/alerts", http.MethodGet, permAlertsRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listAlerts(w, r) }}
	case coll == "alerts" && len(segs) == 3 && segs[2] != "":
		return &route{"GET /api/alerts/{id}", http.MethodGet, permAlertsRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.getAlert(w, r, segs[2]) }}
	case coll == "machines" && len(segs) == 2:
		return &route{"GET /api/machines", http.MethodGet, permMachinesRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listMachines(w, r) }}
	case coll == "machines" && len(segs) == 3 && strings.HasPrefix(strings.ToLower(segs[2]), "findbyip("):
		return &route{"GET /api/machines/findbyip", http.MethodGet, permMachinesRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
				return s.findMachinesByIP(w, r, segs[2])
			}}
	case coll == "machines" && len(segs) == 3 && segs[2] != "":
		return &route{"GET /api/machines/{id}", http.MethodGet, permMachinesRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
				return s.getMachine(w, r, segs[2])
			}}
	case coll == "machines" && len(segs) == 4 && strings.EqualFold(segs[3], "isolate"):
		return &route{"POST /api/machines/{id}/isolate", http.MethodPost, permIsolate,
			func(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
				return s.postAction(w, r, p, segs[2], ActionIsolate)
			}}
	case coll == "machines" && len(segs) == 4 && strings.EqualFold(segs[3], "unisolate"):
		return &route{"POST /api/machines/{id}/unisolate", http.MethodPost, permIsolate,
			func(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
				return s.postAction(w, r, p, segs[2], ActionUnisolate)
			}}
	case coll == "machineactions" && len(segs) == 2:
		return &route{"GET /api/machineactions", http.MethodGet, permMachinesRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listActions(w, r) }}
	case coll == "machineactions" && len(segs) == 3 && segs[2] != "":
		return &route{"GET /api/machineactions/{id}", http.MethodGet, permMachinesRead,
			func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.getAction(w, r, segs[2]) }}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			writeError(w, &apiError{status: http.StatusInternalServerError, code: CodeInternalServerError, message: "internal error"})
		}
	}()
	rt := s.match(r)
	key := UnmatchedRoute
	if rt != nil {
		key = rt.key
	}

	p := DefaultPrincipal
	if s.opts.Authorize != nil {
		var err error
		if p, err = s.opts.Authorize(r); err != nil {
			s.stats.count(key, "", false)
			writeError(w, &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized,
				message: "Unauthorized (invalid or expired authorization header)"})
			return
		}
	}
	app := p.TenantID + "/" + p.AppID

	if ok, retry := s.limiter.allow(app, s.now()); !ok {
		s.stats.count(key, app, true)
		writeError(w, &apiError{status: http.StatusTooManyRequests, code: CodeTooManyRequests, retryAfter: retry,
			message: fmt.Sprintf("API calls quota exceeded! Please try again in %d seconds.", retrySeconds(retry))})
		return
	}
	s.stats.count(key, app, false)

	switch {
	case rt == nil:
		writeError(w, &apiError{status: http.StatusNotFound, code: CodeNotFound, message: "No endpoint matches " + sanitizePath(r.URL.Path)})
		return
	case r.Method != rt.method:
		w.Header().Set("Allow", rt.method)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
			message: fmt.Sprintf("The requested resource does not support http method '%s'", sanitizePath(r.Method))})
		return
	}
	if e := checkPermission(p, rt.perm); e != nil {
		writeError(w, e)
		return
	}
	if e := rt.serve(w, r, p); e != nil {
		writeError(w, e)
	}
}

// checkPermission answers 403 unless p holds one of perm's roles (or
// scopes, for a delegated principal). The message follows Defender's:
// it names the roles the API requires and the ones the token has.
func checkPermission(p Principal, perm permission) *apiError {
	if p.Delegated() {
		for _, sc := range p.Scopes {
			if slices.Contains(perm.scopes, sc) {
				return nil
			}
		}
		return &apiError{status: http.StatusForbidden, code: CodeForbidden, message: fmt.Sprintf(
			"Missing delegated scopes. API required scopes: %s, delegated scopes: %s.",
			strings.Join(perm.scopes, ","), strings.Join(p.Scopes, ","))}
	}
	for _, ro := range p.Roles {
		if slices.Contains(perm.roles, ro) {
			return nil
		}
	}
	return &apiError{status: http.StatusForbidden, code: CodeForbidden, message: fmt.Sprintf(
		"Missing application roles. API required roles: %s, application roles: %s.",
		strings.Join(perm.roles, ","), strings.Join(p.Roles, ","))}
}

// odataContext returns the @odata.context URL for entity on r's host.
func odataContext(r *http.Request, entity string) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/api/$metadata#" + entity
}

// sanitizePath bounds and cleans a client-supplied string for messages.
func sanitizePath(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
