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

// The permission tables of Microsoft's API reference, one per endpoint.
var (
	permAlertsRead   = permission{[]string{RoleAlertReadAll, RoleAlertReadWriteAll}, []string{ScopeAlertRead, ScopeAlertReadWrite}}
	permMachinesRead = permission{[]string{RoleMachineReadAll, RoleMachineReadWriteAll}, []string{ScopeMachineRead, ScopeMachineReadWrite}}
	permIsolate      = permission{[]string{RoleMachineIsolate}, []string{ScopeMachineIsolate}}
	permScan         = permission{[]string{RoleMachineScan}, []string{ScopeMachineScan}}
	permRestrict     = permission{[]string{RoleMachineRestrictExecution}, []string{ScopeMachineRestrictExecution}}
	permCollect      = permission{[]string{RoleMachineCollectForensics}, []string{ScopeMachineCollectForensics}}
	// "Stop and quarantine file API" lists the two machine read roles as
	// alternatives too (application permissions only).
	permQuarantine = permission{[]string{RoleMachineStopAndQuarantine, RoleMachineReadAll, RoleMachineReadWriteAll},
		[]string{ScopeMachineStopAndQuarantine}}
	// "Get package SAS URI API": the machine read roles for an application,
	// Machine.CollectForensics for a user.
	permPackageURI = permission{[]string{RoleMachineReadAll, RoleMachineReadWriteAll}, []string{ScopeMachineCollectForensics}}
	// "Cancel machine action API": any one of the action permissions.
	permCancel = permission{
		[]string{RoleMachineCollectForensics, RoleMachineIsolate, RoleMachineRestrictExecution, RoleMachineScan,
			RoleMachineOffboard, RoleMachineStopAndQuarantine, RoleMachineLiveResponse},
		[]string{ScopeMachineCollectForensics, ScopeMachineIsolate, ScopeMachineRestrictExecution, ScopeMachineScan,
			ScopeMachineOffboard, ScopeMachineStopAndQuarantine, ScopeMachineLiveResponse}}
)

// UnmatchedRoute is the Stats.Calls key of requests that match no route.
const UnmatchedRoute = "unmatched"

// route is a matched endpoint.
type route struct {
	key    string // "GET /api/alerts/{id}": the Stats key
	method string
	perm   permission
	serve  func(w http.ResponseWriter, r *http.Request, p Principal) *apiError
	extra  *limiter // a limit of this endpoint's own, on top of the server's
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
		return &route{key: "GET /api/alerts", method: http.MethodGet, perm: permAlertsRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listAlerts(w, r) }}
	case coll == "alerts" && len(segs) == 3 && segs[2] != "" && r.Method == http.MethodPatch:
		return &route{key: "PATCH /api/alerts/{id}", method: http.MethodPatch, perm: permAlertsWrite,
			serve: func(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
				return s.updateAlert(w, r, p, segs[2])
			}}
	case coll == "alerts" && len(segs) == 3 && segs[2] != "":
		return &route{key: "GET /api/alerts/{id}", method: http.MethodGet, perm: permAlertsRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.getAlert(w, r, segs[2]) }}
	case coll == "indicators" && len(segs) == 2 && r.Method == http.MethodPost:
		return &route{key: "POST /api/indicators", method: http.MethodPost, perm: permIndicators,
			serve: func(w http.ResponseWriter, r *http.Request, p Principal) *apiError { return s.submitIndicator(w, r, p) }}
	case coll == "indicators" && len(segs) == 2:
		return &route{key: "GET /api/indicators", method: http.MethodGet, perm: permIndicators,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listIndicators(w) }}
	case coll == "indicators" && len(segs) == 3 && strings.EqualFold(segs[2], "import"):
		return &route{key: "POST /api/indicators/import", method: http.MethodPost, perm: permIndicators,
			serve: func(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
				return s.importIndicators(w, r, p)
			}}
	case coll == "indicators" && len(segs) == 3 && segs[2] != "":
		return &route{key: "DELETE /api/indicators/{id}", method: http.MethodDelete, perm: permIndicators,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
				return s.deleteIndicator(w, segs[2])
			}}
	case coll == "machines" && len(segs) == 2:
		return &route{key: "GET /api/machines", method: http.MethodGet, perm: permMachinesRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listMachines(w, r) }}
	case coll == "machines" && len(segs) == 3 && strings.HasPrefix(strings.ToLower(segs[2]), "findbyip("):
		return &route{key: "GET /api/machines/findbyip", method: http.MethodGet, perm: permMachinesRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
				return s.findMachinesByIP(w, r, segs[2])
			}}
	case coll == "machines" && len(segs) == 3 && segs[2] != "":
		return &route{key: "GET /api/machines/{id}", method: http.MethodGet, perm: permMachinesRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
				return s.getMachine(w, r, segs[2])
			}}
	case coll == "machines" && len(segs) == 4 && actionSpecs[strings.ToLower(segs[3])] != nil:
		sp := actionSpecs[strings.ToLower(segs[3])]
		return &route{key: "POST /api/machines/{id}/" + sp.verb, method: http.MethodPost, perm: sp.perm,
			serve: func(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
				return s.postAction(w, r, p, segs[2], sp)
			}}
	case coll == "machineactions" && len(segs) == 2:
		return &route{key: "GET /api/machineactions", method: http.MethodGet, perm: permMachinesRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.listActions(w, r) }}
	case coll == "machineactions" && len(segs) == 3 && segs[2] != "":
		return &route{key: "GET /api/machineactions/{id}", method: http.MethodGet, perm: permMachinesRead,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError { return s.getAction(w, r, segs[2]) }}
	case coll == "machineactions" && len(segs) == 4 && strings.EqualFold(segs[3], "cancel"):
		return &route{key: "POST /api/machineactions/{id}/cancel", method: http.MethodPost, perm: permCancel,
			serve: func(w http.ResponseWriter, r *http.Request, p Principal) *apiError {
				return s.cancelAction(w, r, p, segs[2])
			}}
	case coll == "machineactions" && len(segs) == 4 && strings.EqualFold(segs[3], "GetPackageUri"):
		return &route{key: "GET /api/machineactions/{id}/GetPackageUri", method: http.MethodGet, perm: permPackageURI,
			extra: &s.pkgLimiter,
			serve: func(w http.ResponseWriter, r *http.Request, _ Principal) *apiError {
				return s.getPackageURI(w, r, segs[2])
			}}
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
	if isPackagePath(r.URL.Path) {
		s.servePackage(w, r)
		return
	}
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

	now := s.now()
	ok, retry := s.limiter.allow(app, now)
	if ok && rt != nil && rt.extra != nil {
		ok, retry = rt.extra.allow(app, now)
	}
	if !ok {
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
