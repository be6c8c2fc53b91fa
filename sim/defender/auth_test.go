package defender

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// principalFromHeader lets a test pick the caller: X-Roles (application) or
// X-Scopes (delegated), comma-separated; X-App sets the app id; no
// Authorization header means 401.
func principalFromHeader(r *http.Request) (Principal, error) {
	if r.Header.Get("Authorization") == "" {
		return Principal{}, errNoToken
	}
	p := Principal{TenantID: SeedTenantID, AppID: r.Header.Get("X-App"), UPN: "user@contoso.com"}
	if p.AppID == "" {
		p.AppID = "app-1"
	}
	if v := r.Header.Get("X-Roles"); v != "" {
		p.Roles = strings.Split(v, ",")
	}
	if v := r.Header.Get("X-Scopes"); v != "" {
		p.Scopes = strings.Split(v, ",")
	}
	return p, nil
}

func TestAuthorization(t *testing.T) {
	f := newFixture(t, Options{Authorize: principalFromHeader, RateLimits: &RateLimits{}})
	isolateBody := `{"Comment":"x"}`
	// An action to cancel and ask a package of (an isolation: 400, allowed).
	r := f.do(t, "POST", "/api/machines/"+UniqueMachineID+"/isolate", isolateBody, map[string]string{"Authorization": "Bearer x", "X-Roles": RoleMachineIsolate})
	var act actionJSON
	mustJSON(t, r.body, &act)
	endpoints := []struct {
		method, path, body  string
		needRole, needScope string // the first required; the message must name it
	}{
		{"GET", "/api/alerts", "", RoleAlertReadAll, ScopeAlertRead},
		{"GET", "/api/alerts/" + SampleAlertID, "", RoleAlertReadAll, ScopeAlertRead},
		{"GET", "/api/machines", "", RoleMachineReadAll, ScopeMachineRead},
		{"GET", "/api/machines/" + DCMachineID, "", RoleMachineReadAll, ScopeMachineRead},
		{"GET", "/api/machines/findbyip(ip='10.1.2.3',timestamp=2025-03-01T11:00:00Z)", "", RoleMachineReadAll, ScopeMachineRead},
		{"GET", "/api/machineactions", "", RoleMachineReadAll, ScopeMachineRead},
		{"POST", "/api/machines/" + DCMachineID + "/isolate", isolateBody, RoleMachineIsolate, ScopeMachineIsolate},
		{"POST", "/api/machines/" + DCMachineID + "/unisolate", isolateBody, RoleMachineIsolate, ScopeMachineIsolate},
		{"POST", "/api/machines/" + DCMachineID + "/runAntiVirusScan", `{"Comment":"x","ScanType":"Quick"}`, RoleMachineScan, ScopeMachineScan},
		{"POST", "/api/machines/" + DCMachineID + "/restrictCodeExecution", isolateBody, RoleMachineRestrictExecution, ScopeMachineRestrictExecution},
		{"POST", "/api/machines/" + DCMachineID + "/unrestrictCodeExecution", isolateBody, RoleMachineRestrictExecution, ScopeMachineRestrictExecution},
		{"POST", "/api/machines/" + DCMachineID + "/collectInvestigationPackage", isolateBody, RoleMachineCollectForensics, ScopeMachineCollectForensics},
		{"POST", "/api/machines/" + DCMachineID + "/StopAndQuarantineFile", `{"Comment":"x","Sha1":"` + sha1Doc + `"}`, RoleMachineStopAndQuarantine, ScopeMachineStopAndQuarantine},
		{"POST", "/api/machineactions/" + act.ID + "/cancel", isolateBody, RoleMachineCollectForensics, ScopeMachineCollectForensics},
		{"GET", "/api/machineactions/" + act.ID + "/GetPackageUri", "", RoleMachineReadAll, ScopeMachineCollectForensics},
	}
	for _, ep := range endpoints {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			// 401 without a token.
			r := f.do(t, ep.method, ep.path, ep.body, nil)
			if r.status != http.StatusUnauthorized || r.errorBody(t).Error.Code != CodeUnauthorized {
				t.Errorf("no token: %d %s, want 401 Unauthorized", r.status, r.body)
			}
			// 403 with an unrelated role, naming the required one.
			r = f.do(t, ep.method, ep.path, ep.body, map[string]string{"Authorization": "Bearer x", "X-Roles": "Ti.ReadWrite"})
			e := r.errorBody(t)
			if r.status != http.StatusForbidden || e.Error.Code != CodeForbidden ||
				!strings.Contains(e.Error.Message, "Missing application roles") || !strings.Contains(e.Error.Message, ep.needRole) ||
				!strings.Contains(e.Error.Message, "Ti.ReadWrite") || len(e.Error.Target) != 36 {
				t.Errorf("wrong role: %d %+v, want 403 naming %s", r.status, e.Error, ep.needRole)
			}
			// 403 delegated with an unrelated scope.
			r = f.do(t, ep.method, ep.path, ep.body, map[string]string{"Authorization": "Bearer x", "X-Scopes": "User.Read"})
			e = r.errorBody(t)
			if r.status != http.StatusForbidden || !strings.Contains(e.Error.Message, "Missing delegated scopes") || !strings.Contains(e.Error.Message, ep.needScope) {
				t.Errorf("wrong scope: %d %+v, want 403 naming %s", r.status, e.Error, ep.needScope)
			}
			// Application roles do not count for a delegated token.
			r = f.do(t, ep.method, ep.path, ep.body, map[string]string{"Authorization": "Bearer x", "X-Scopes": "User.Read", "X-Roles": ep.needRole})
			if r.status != http.StatusForbidden {
				t.Errorf("delegated with only a role: %d, want 403", r.status)
			}
			// Allowed with the role, and with the scope.
			for _, h := range []map[string]string{{"X-Roles": "Ti.ReadWrite," + ep.needRole}, {"X-Scopes": ep.needScope}} {
				h["Authorization"] = "Bearer x"
				r = f.do(t, ep.method, ep.path, ep.body, h)
				if r.status >= 400 && r.status != http.StatusBadRequest {
					t.Errorf("with %v: %d %s, want success", h, r.status, r.body)
				}
			}
		})
	}
	// ReadWrite roles satisfy reads too.
	r = f.do(t, "GET", "/api/alerts?$top=1", "", map[string]string{"Authorization": "Bearer x", "X-Roles": RoleAlertReadWriteAll})
	if r.status != http.StatusOK {
		t.Errorf("Alert.ReadWrite.All list = %d, want 200", r.status)
	}
	// Delegated requestor is the UPN.
	r = f.do(t, "POST", "/api/machines/"+PayrollMachineID+"/isolate", isolateBody, map[string]string{"Authorization": "Bearer x", "X-Scopes": ScopeMachineIsolate})
	var a actionJSON
	mustJSON(t, r.body, &a)
	if a.Requestor != "user@contoso.com" {
		t.Errorf("delegated isolate requestor = %q, want the UPN", a.Requestor)
	}
	if st := f.srv.Stats(); st.Unauthorized != len(endpoints) {
		t.Errorf("Stats().Unauthorized = %d, want %d", st.Unauthorized, len(endpoints))
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, Options{Authorize: principalFromHeader})
	hdr := func(app string) map[string]string {
		return map[string]string{"Authorization": "Bearer x", "X-App": app, "X-Roles": RoleMachineReadAll}
	}

	// Defaults: 100 a minute.
	for i := range 100 {
		if r := f.do(t, "GET", "/api/machines/"+DCMachineID, "", hdr("a")); r.status != 200 {
			t.Fatalf("call %d = %d, want 200", i, r.status)
		}
		if i%10 == 9 {
			f.clock.Advance(time.Second) // calls at 0..9 s
		}
	}
	r := f.do(t, "GET", "/api/machines/"+DCMachineID, "", hdr("a"))
	if r.status != http.StatusTooManyRequests || r.errorBody(t).Error.Code != CodeTooManyRequests {
		t.Fatalf("call 101 = %d %s, want 429 TooManyRequests", r.status, r.body)
	}
	// Now is +10 s; the oldest call (at 0 s) leaves the window at 60 s.
	if got := r.header.Get("Retry-After"); got != "50" {
		t.Errorf("Retry-After = %q, want 50", got)
	}
	// Another app is not limited.
	if r := f.do(t, "GET", "/api/machines/"+DCMachineID, "", hdr("b")); r.status != 200 {
		t.Errorf("other app = %d, want 200", r.status)
	}
	f.clock.Advance(50 * time.Second)
	if r := f.do(t, "GET", "/api/machines/"+DCMachineID, "", hdr("a")); r.status != 200 {
		t.Errorf("after Retry-After = %d, want 200", r.status)
	}
	st := f.srv.Stats()
	if st.Throttled != 1 || st.Calls["GET /api/machines/{id}"] != 103 || st.CallsByApp[SeedTenantID+"/a"] != 102 {
		t.Errorf("Stats() = %+v", st)
	}

	// Hourly limit, and a configurable one.
	f.srv.SetRateLimits(RateLimits{PerMinute: 0, PerHour: 3})
	for i := range 3 {
		if r := f.do(t, "GET", "/api/alerts?$top=1", "", hdr("c")); r.status != 403 {
			t.Fatalf("call %d = %d, want 403 (counted, no alert role)", i, r.status)
		}
		f.clock.Advance(10 * time.Minute)
	}
	r = f.do(t, "GET", "/api/alerts?$top=1", "", hdr("c"))
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != 429 || ra != 30*60 {
		t.Errorf("hourly: %d Retry-After %q, want 429 1800", r.status, r.header.Get("Retry-After"))
	}
	f.srv.SetRateLimits(RateLimits{})
	for range 5 {
		if r := f.do(t, "GET", "/api/machines/"+DCMachineID, "", hdr("a")); r.status != 200 {
			t.Fatalf("limits off: %d", r.status)
		}
	}
}

func TestRoutingAndReset(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/nothing", 404},
		{"GET", "/other/alerts", 404},
		{"GET", "/api", 404},
		{"DELETE", "/api/alerts", 405},
		{"POST", "/api/machines", 405},
		{"GET", "/api/alerts/", 200},
		{"GET", "/Api/ALERTS?$top=1", 200},
		{"GET", "/api/MachineActions", 200},
	}
	for _, tt := range tests {
		if r := f.do(t, tt.method, tt.path, "", nil); r.status != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, r.status, tt.status)
		}
	}
	if st := f.srv.Stats(); st.Calls[UnmatchedRoute] != 3 || st.Calls["GET /api/alerts"] != 3 {
		t.Errorf("Stats().Calls = %v", st.Calls)
	}

	f.post(t, "/api/machines/"+DCMachineID+"/isolate", `{"Comment":"x"}`)
	f.srv.AddMachine(Machine{ID: "0123456789abcdef0123456789abcdef01234567", ComputerDNSName: "new.contoso.local"})
	f.srv.SetActionTimings(ActionTimings{})
	f.srv.Reset()
	if n := len(f.srv.Actions()); n != 0 {
		t.Errorf("after Reset, %d actions", n)
	}
	if _, ok := f.srv.Machine("0123456789abcdef0123456789abcdef01234567"); ok {
		t.Errorf("after Reset, added machine still present")
	}
	if st := f.srv.Stats(); st.Total() != 0 {
		t.Errorf("after Reset, Stats().Total() = %d", st.Total())
	}
}

func TestAddMachineReplaceAndTimings(t *testing.T) {
	f := newFixture(t, Options{ActionTimings: &ActionTimings{InProgressAfter: 0, CompletedAfter: time.Second}})
	m, _ := f.srv.Machine(DCMachineID)
	m.MachineTags = []string{"replaced"}
	m.HealthStatus = "Inactive"
	f.srv.AddMachine(m)
	got, _ := list[struct {
		ID   string   `json:"id"`
		Tags []string `json:"machineTags"`
	}](t, f, filterPath("/api/machines", "$filter", "machineTags/any(x: x eq 'replaced')"))
	if len(got) != 1 || got[0].ID != DCMachineID {
		t.Errorf("replaced machine lookup = %+v", got)
	}
	if n := len(f.srv.Machines()); n != 61 {
		t.Errorf("replacing added a machine: %d", n)
	}
	r := f.post(t, "/api/machines/"+DCMachineID+"/isolate", `{"Comment":"x"}`)
	var a actionJSON
	mustJSON(t, r.body, &a)
	if a.Status != "InProgress" {
		t.Errorf("with InProgressAfter 0, status = %s, want InProgress", a.Status)
	}
	f.clock.Advance(time.Second)
	if m, _ := f.srv.Machine(DCMachineID); !m.Isolated {
		t.Errorf("after 1 s, Isolated = false")
	}
	if !f.srv.RemoveMachine(DCMachineID) || f.get(t, "/api/machines/"+DCMachineID).status != 404 {
		t.Errorf("RemoveMachine did not remove")
	}
}

// TestResponsePermissionAlternatives checks the permission tables of the
// response action APIs where they list alternatives or differ between
// application and delegated callers.
func TestResponsePermissionAlternatives(t *testing.T) {
	f := newFixture(t, Options{Authorize: principalFromHeader, RateLimits: &RateLimits{}})
	hdr := func(kind, perms string) map[string]string {
		return map[string]string{"Authorization": "Bearer x", kind: perms}
	}
	newAction := func() string {
		t.Helper()
		r := f.do(t, "POST", "/api/machines/"+KnownIPMachineID+"/runAntiVirusScan", `{"Comment":"s","ScanType":"Quick"}`, hdr("X-Roles", RoleMachineScan))
		var a actionJSON
		mustJSON(t, r.body, &a)
		if r.status != http.StatusCreated {
			t.Fatalf("scan = %d %s", r.status, r.body)
		}
		return a.ID
	}
	// Cancel: any one action permission, application or delegated.
	for _, perm := range permCancel.roles {
		for _, kind := range []string{"X-Roles", "X-Scopes"} {
			id := newAction()
			if r := f.do(t, "POST", "/api/machineactions/"+id+"/cancel", `{"Comment":"c"}`, hdr(kind, perm)); r.status != http.StatusOK {
				t.Errorf("cancel with %s %s = %d %s, want 200", kind, perm, r.status, r.body)
			}
		}
	}
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     int
		wantNamed                string // in the 403 message
	}{
		{"quarantine with Machine.Read.All (documented alternative)", "POST", "/api/machines/" + DCMachineID + "/StopAndQuarantineFile",
			`{"Comment":"q","Sha1":"` + sha1Doc + `"}`, hdr("X-Roles", RoleMachineReadAll), http.StatusCreated, ""},
		{"quarantine delegated with Machine.Read", "POST", "/api/machines/" + DCMachineID + "/StopAndQuarantineFile",
			`{"Comment":"q","Sha1":"` + sha1Doc + `"}`, hdr("X-Scopes", ScopeMachineRead), http.StatusForbidden, ScopeMachineStopAndQuarantine},
		{"package URI app with Machine.CollectForensics only", "GET", "/api/machineactions/" + newGUID() + "/GetPackageUri", "",
			hdr("X-Roles", RoleMachineCollectForensics), http.StatusForbidden, RoleMachineReadAll},
		{"package URI app with Machine.ReadWrite.All", "GET", "/api/machineactions/" + newGUID() + "/GetPackageUri", "",
			hdr("X-Roles", RoleMachineReadWriteAll), http.StatusNotFound, ""},
		{"package URI delegated with Machine.Read", "GET", "/api/machineactions/" + newGUID() + "/GetPackageUri", "",
			hdr("X-Scopes", ScopeMachineRead), http.StatusForbidden, ScopeMachineCollectForensics},
		{"scan with Machine.Isolate", "POST", "/api/machines/" + DCMachineID + "/runAntiVirusScan", `{"Comment":"s","ScanType":"Full"}`,
			hdr("X-Roles", RoleMachineIsolate), http.StatusForbidden, RoleMachineScan},
		{"restrict with Machine.ReadWrite.All", "POST", "/api/machines/" + DCMachineID + "/restrictCodeExecution", `{"Comment":"r"}`,
			hdr("X-Roles", RoleMachineReadWriteAll), http.StatusForbidden, RoleMachineRestrictExecution},
		{"cancel with Machine.ReadWrite.All", "POST", "/api/machineactions/" + newGUID() + "/cancel", `{"Comment":"c"}`,
			hdr("X-Roles", RoleMachineReadWriteAll), http.StatusForbidden, RoleMachineLiveResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, tt.method, tt.path, tt.body, tt.hdr)
			if r.status != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.want)
			}
			if tt.wantNamed != "" {
				if e := r.errorBody(t); e.Error.Code != CodeForbidden || !strings.Contains(e.Error.Message, tt.wantNamed) {
					t.Errorf("403 %+v, want it to name %s", e.Error, tt.wantNamed)
				}
			}
		})
	}
}
