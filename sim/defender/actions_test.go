package defender

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type actionJSON struct {
	Context               string    `json:"@odata.context"`
	ID                    string    `json:"id"`
	Type                  string    `json:"type"`
	Scope                 *string   `json:"scope"`
	Requestor             string    `json:"requestor"`
	RequestorComment      string    `json:"requestorComment"`
	Status                string    `json:"status"`
	MachineID             string    `json:"machineId"`
	ComputerDNSName       string    `json:"computerDnsName"`
	CreationDateTimeUTC   time.Time `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC time.Time `json:"lastUpdateDateTimeUtc"`
}

func (f *fixture) post(t testing.TB, path, body string) response {
	t.Helper()
	return f.do(t, http.MethodPost, path, body, nil)
}

func TestIsolateLifecycle(t *testing.T) {
	f := newFixture(t, Options{})
	path := "/api/machines/" + KnownIPMachineID
	r := f.post(t, path+"/isolate", `{"Comment": "Isolate machine due to alert 1234", "IsolationType": "Selective"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("Isolate status = %d, want 201 (%s)", r.status, r.body)
	}
	var a actionJSON
	mustJSON(t, r.body, &a)
	scope := "Selective"
	want := actionJSON{Context: a.Context, ID: a.ID, Type: "Isolate", Scope: &scope, Requestor: DefaultAppID,
		RequestorComment: "Isolate machine due to alert 1234", Status: "Pending", MachineID: KnownIPMachineID,
		ComputerDNSName: KnownIPDNSName, CreationDateTimeUTC: testBase, LastUpdateDateTimeUTC: testBase}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("Isolate() mismatch (-want +got):\n%s", diff)
	}
	if len(a.ID) != 36 || !strings.HasSuffix(a.Context, "#MachineActions/$entity") {
		t.Errorf("Isolate() id %q context %q", a.ID, a.Context)
	}

	steps := []struct {
		advance  time.Duration
		status   string
		isolated bool
	}{
		{0, "Pending", false},
		{4 * time.Second, "Pending", false},
		{time.Second, "InProgress", false},
		{14 * time.Second, "InProgress", false},
		{time.Second, "Succeeded", true},
		{time.Hour, "Succeeded", true},
	}
	for _, st := range steps {
		f.clock.Advance(st.advance)
		var got actionJSON
		r := f.get(t, "/api/machineactions/"+a.ID)
		mustJSON(t, r.body, &got)
		m, _ := f.srv.Machine(KnownIPMachineID)
		if got.Status != st.status || m.Isolated != st.isolated {
			t.Errorf("at +%v: status %s isolated %v, want %s %v", f.clock.Now().Sub(testBase), got.Status, m.Isolated, st.status, st.isolated)
		}
	}

	// Release.
	r = f.post(t, path+"/unisolate", `{"Comment": "Unisolate machine since it was clean and validated"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("Unisolate status = %d (%s)", r.status, r.body)
	}
	var u actionJSON
	mustJSON(t, r.body, &u)
	if u.Type != "Unisolate" || u.Scope != nil || u.Status != "Pending" {
		t.Errorf("Unisolate() = %+v, want Pending Unisolate with null scope", u)
	}
	f.clock.Advance(20 * time.Second)
	if m, _ := f.srv.Machine(KnownIPMachineID); m.Isolated {
		t.Errorf("after unisolate succeeded, Isolated = true")
	}

	// A failed action leaves the state alone.
	f.srv.SetActionOutcome(ActionFailed)
	f.post(t, path+"/isolate", `{"Comment": "again"}`)
	f.clock.Advance(time.Minute)
	if m, _ := f.srv.Machine(KnownIPMachineID); m.Isolated {
		t.Errorf("after failed isolate, Isolated = true")
	}
	acts := f.srv.Actions()
	if len(acts) != 3 || acts[0].Status != ActionFailed || acts[0].Scope != IsolationFull {
		t.Errorf("Actions() = %+v, want 3 with the newest Failed Full", acts)
	}
}

func TestActiveRequestAlreadyExists(t *testing.T) {
	f := newFixture(t, Options{})
	path := "/api/machines/" + DCMachineID
	if r := f.post(t, path+"/isolate", `{"Comment":"first"}`); r.status != http.StatusCreated {
		t.Fatalf("first isolate = %d", r.status)
	}
	for _, tc := range []struct{ advance time.Duration }{{0}, {10 * time.Second}} {
		f.clock.Advance(tc.advance)
		for _, p := range []string{"/isolate", "/unisolate"} {
			r := f.post(t, path+p, `{"Comment":"second"}`)
			e := r.errorBody(t)
			if r.status != http.StatusBadRequest || e.Error.Code != CodeActiveRequestAlreadyExists || e.Error.Message != "Action is already in progress" {
				t.Errorf("POST %s while active = %d %+v, want 400 ActiveRequestAlreadyExists", p, r.status, e.Error)
			}
		}
	}
	f.clock.Advance(10 * time.Second) // +20s: Succeeded
	if r := f.post(t, path+"/unisolate", `{"Comment":"done"}`); r.status != http.StatusCreated {
		t.Errorf("unisolate after completion = %d, want 201", r.status)
	}
	// Another machine is not blocked.
	if r := f.post(t, "/api/machines/"+PayrollMachineID+"/isolate", `{"Comment":"other"}`); r.status != http.StatusCreated {
		t.Errorf("isolate other machine = %d, want 201", r.status)
	}
}

func TestConcurrentIsolateCreatesOneAction(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	const n = 100
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = f.post(t, "/api/machines/"+UniqueMachineID+"/isolate", `{"Comment":"storm"}`).status
		}()
	}
	wg.Wait()
	created, refused := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
			refused++
		}
	}
	if created != 1 || refused != n-1 {
		t.Errorf("100 concurrent isolates: %d created, %d refused; want 1, 99", created, refused)
	}
	if acts := f.srv.Actions(); len(acts) != 1 {
		t.Errorf("len(Actions()) = %d, want 1", len(acts))
	}
}

func TestIsolateBadRequests(t *testing.T) {
	f := newFixture(t, Options{})
	path := "/api/machines/" + KnownIPMachineID + "/isolate"
	tests := []struct {
		name, body, ctype string
		status            int
		code              string
	}{
		{"lowercase comment", `{"comment":"x"}`, "application/json", 400, CodeInvalidRequestBody},
		{"missing comment", `{"IsolationType":"Full"}`, "application/json", 400, CodeMissingRequiredParameter},
		{"empty comment", `{"Comment":"  "}`, "application/json", 400, CodeMissingRequiredParameter},
		{"bad isolation type", `{"Comment":"x","IsolationType":"Partial"}`, "application/json", 400, CodeInvalidRequestBody},
		{"lowercase isolation type value", `{"Comment":"x","IsolationType":"full"}`, "application/json", 400, CodeInvalidRequestBody},
		{"comment not string", `{"Comment":5}`, "application/json", 400, CodeInvalidRequestBody},
		{"not json", `Comment=x`, "application/json", 400, CodeInvalidRequestBody},
		{"array", `[]`, "application/json", 400, CodeInvalidRequestBody},
		{"wrong content type", `{"Comment":"x"}`, "text/plain", 400, CodeInvalidRequestBody},
		{"too large", `{"Comment":"` + strings.Repeat("a", maxBodyBytes) + `"}`, "application/json", 400, CodeInvalidRequestBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodPost, path, tt.body, map[string]string{"Content-Type": tt.ctype})
			if r.status != tt.status || r.errorBody(t).Error.Code != tt.code {
				t.Errorf("Isolate(%.60s) = %d %s, want %d %s", tt.body, r.status, r.body, tt.status, tt.code)
			}
		})
	}
	if r := f.post(t, "/api/machines/0123456789012345678901234567890123456789/isolate", `{"Comment":"x"}`); r.status != 404 || r.errorBody(t).Error.Code != CodeResourceNotFound {
		t.Errorf("Isolate(unknown) = %d %s, want 404 ResourceNotFound", r.status, r.body)
	}
	if r := f.get(t, "/api/machines/"+KnownIPMachineID+"/isolate"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET isolate = %d, want 405", r.status)
	}
	if n := len(f.srv.Actions()); n != 0 {
		t.Errorf("bad requests created %d actions", n)
	}
}

func TestListMachineActions(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}, Authorize: func(r *http.Request) (Principal, error) {
		if r.Header.Get("X-User") != "" {
			return Principal{TenantID: SeedTenantID, AppID: "public-client", UPN: r.Header.Get("X-User"),
				Scopes: []string{ScopeMachineIsolate, ScopeMachineRead}}, nil
		}
		return DefaultPrincipal, nil
	}})
	f.post(t, "/api/machines/"+DCMachineID+"/isolate", `{"Comment":"a"}`)
	f.clock.Advance(time.Minute)
	f.post(t, "/api/machines/"+PayrollMachineID+"/isolate", `{"Comment":"b"}`)
	f.clock.Advance(10 * time.Second)
	f.do(t, http.MethodPost, "/api/machines/"+UniqueMachineID+"/isolate", `{"Comment":"c"}`, map[string]string{"X-User": "alice@contoso.com"})
	f.clock.Advance(time.Minute) // now: DC and payroll done; unique done too
	f.post(t, "/api/machines/"+DCMachineID+"/unisolate", `{"Comment":"d"}`)

	all := f.srv.Actions()
	if len(all) != 4 || all[1].Requestor != "alice@contoso.com" {
		t.Fatalf("Actions() = %+v", all)
	}
	tests := []struct {
		filter string
		want   func(a MachineAction) bool
	}{
		{"", func(MachineAction) bool { return true }},
		{"machineId eq '" + DCMachineID + "'", func(a MachineAction) bool { return a.MachineID == DCMachineID }},
		{"type eq 'Isolate'", func(a MachineAction) bool { return a.Type == ActionIsolate }},
		{"type eq 'Unisolate' or status eq 'Pending'", func(a MachineAction) bool { return a.Type == ActionUnisolate || a.Status == ActionPending }},
		{"status eq 'Succeeded'", func(a MachineAction) bool { return a.Status == ActionSucceeded }},
		{"status ne 'Succeeded'", func(a MachineAction) bool { return a.Status != ActionSucceeded }},
		{"requestor eq 'alice@contoso.com'", func(a MachineAction) bool { return a.Requestor == "alice@contoso.com" }},
		{"requestor eq '" + DefaultAppID + "' and type eq 'Isolate'", func(a MachineAction) bool {
			return a.Requestor == DefaultAppID && a.Type == ActionIsolate
		}},
		{"creationDateTimeUtc ge " + testBase.Add(time.Minute).Format(time.RFC3339), func(a MachineAction) bool {
			return !a.CreationDateTimeUTC.Before(testBase.Add(time.Minute))
		}},
		{"creationDateTimeUtc lt " + testBase.Add(time.Minute).Format(time.RFC3339), func(a MachineAction) bool {
			return a.CreationDateTimeUTC.Before(testBase.Add(time.Minute))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			var want []string
			for _, a := range all {
				if tt.want(a) {
					want = append(want, a.ID)
				}
			}
			got, r := list[idOf](t, f, filterPath("/api/machineactions", "$filter", tt.filter))
			if r.status != 200 && r.status != 0 {
				t.Fatalf("ListMachineActions(%q) = %d %s", tt.filter, r.status, r.body)
			}
			if diff := cmp.Diff(want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListMachineActions(%q) mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
	got, _ := list[idOf](t, f, "/api/machineactions?$top=2&$skip=1")
	if diff := cmp.Diff([]string{all[1].ID, all[2].ID}, ids(got)); diff != "" {
		t.Errorf("ListMachineActions($top=2&$skip=1) mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"$filter=status%20eq%20'Done'", "$filter=scope%20eq%20'Full'", "$top=10001"} {
		if r := f.get(t, "/api/machineactions?"+bad); r.status != 400 {
			t.Errorf("ListMachineActions(%s) = %d, want 400", bad, r.status)
		}
	}
	if r := f.get(t, "/api/machineactions/"+newGUID()); r.status != 404 {
		t.Errorf("GetMachineAction(unknown) = %d, want 404", r.status)
	}
}
