package defender

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fullActionJSON is a machine action as the tests of the response actions
// read it.
type fullActionJSON struct {
	ID                      string           `json:"id"`
	Type                    string           `json:"type"`
	Scope                   *string          `json:"scope"`
	Requestor               string           `json:"requestor"`
	RequestorComment        string           `json:"requestorComment"`
	Status                  string           `json:"status"`
	MachineID               string           `json:"machineId"`
	CreationDateTimeUTC     time.Time        `json:"creationDateTimeUtc"`
	LastUpdateDateTimeUTC   time.Time        `json:"lastUpdateDateTimeUtc"`
	CancellationRequestor   *string          `json:"cancellationRequestor"`
	CancellationComment     *string          `json:"cancellationComment"`
	CancellationDateTimeUTC *time.Time       `json:"cancellationDateTimeUtc"`
	RelatedFileInfo         *RelatedFileInfo `json:"relatedFileInfo"`
}

func ptr[T any](v T) *T { return &v }

const sha1Doc = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9" // Microsoft's example

// responseEndpoints are the new action endpoints with a valid body each.
var responseEndpoints = []struct {
	verb, body string
	typ        ActionType
	scope      *string
	file       *RelatedFileInfo
}{
	{"runAntiVirusScan", `{"Comment":"scan","ScanType":"Full"}`, ActionRunAntiVirusScan, ptr("Full"), nil},
	{"restrictCodeExecution", `{"Comment":"restrict"}`, ActionRestrictCodeExecution, nil, nil},
	{"unrestrictCodeExecution", `{"Comment":"unrestrict"}`, ActionUnrestrictCodeExecution, nil, nil},
	{"collectInvestigationPackage", `{"Comment":"collect"}`, ActionCollectInvestigationPackage, nil, nil},
	{"StopAndQuarantineFile", `{"Comment":"quarantine","Sha1":"` + strings.ToUpper(sha1Doc) + `"}`, ActionStopAndQuarantineFile, nil,
		&RelatedFileInfo{FileIdentifier: sha1Doc, FileIdentifierType: "Sha1"}},
}

func TestResponseActionLifecycle(t *testing.T) {
	for _, ep := range responseEndpoints {
		t.Run(ep.verb, func(t *testing.T) {
			f := newFixture(t, Options{})
			r := f.post(t, "/api/machines/"+KnownIPMachineID+"/"+ep.verb, ep.body)
			if r.status != http.StatusCreated {
				t.Fatalf("POST %s = %d %s, want 201", ep.verb, r.status, r.body)
			}
			var a fullActionJSON
			mustJSON(t, r.body, &a)
			want := fullActionJSON{ID: a.ID, Type: string(ep.typ), Scope: ep.scope, Requestor: DefaultAppID,
				RequestorComment: strings.SplitN(ep.body, `"`, 5)[3], Status: "Pending", MachineID: KnownIPMachineID,
				CreationDateTimeUTC: testBase, LastUpdateDateTimeUTC: testBase, RelatedFileInfo: ep.file}
			if diff := cmp.Diff(want, a); diff != "" {
				t.Errorf("POST %s mismatch (-want +got):\n%s", ep.verb, diff)
			}
			for _, st := range []struct {
				advance time.Duration
				status  string
			}{{4 * time.Second, "Pending"}, {time.Second, "InProgress"}, {14 * time.Second, "InProgress"}, {time.Second, "Succeeded"}, {time.Hour, "Succeeded"}} {
				f.clock.Advance(st.advance)
				var got fullActionJSON
				mustJSON(t, f.get(t, "/api/machineactions/"+a.ID).body, &got)
				if got.Status != st.status {
					t.Errorf("at +%v: status %s, want %s", f.clock.Now().Sub(testBase), got.Status, st.status)
				}
			}
			if st := f.srv.Stats(); st.Calls["POST /api/machines/{id}/"+ep.verb] != 1 {
				t.Errorf("Stats().Calls = %v, want one POST /api/machines/{id}/%s", st.Calls, ep.verb)
			}
		})
	}
}

func TestCodeRestrictionState(t *testing.T) {
	f := newFixture(t, Options{})
	path := "/api/machines/" + UniqueMachineID
	f.post(t, path+"/restrictCodeExecution", `{"Comment":"r"}`)
	if m, _ := f.srv.Machine(UniqueMachineID); m.CodeRestricted {
		t.Errorf("CodeRestricted before the action completed")
	}
	f.clock.Advance(20 * time.Second)
	if m, _ := f.srv.Machine(UniqueMachineID); !m.CodeRestricted || m.Isolated {
		t.Errorf("after restriction: CodeRestricted %v Isolated %v, want true false", m.CodeRestricted, m.Isolated)
	}
	f.post(t, path+"/unrestrictCodeExecution", `{"Comment":"u"}`)
	f.clock.Advance(20 * time.Second)
	if m, _ := f.srv.Machine(UniqueMachineID); m.CodeRestricted {
		t.Errorf("after unrestriction: CodeRestricted true")
	}
}

func TestActiveRequestAlreadyExistsPerType(t *testing.T) {
	f := newFixture(t, Options{})
	path := "/api/machines/" + DCMachineID
	// One of every type at once on one device: each type has its slot.
	for _, ep := range responseEndpoints {
		if r := f.post(t, path+"/"+ep.verb, ep.body); r.status != http.StatusCreated {
			t.Errorf("first %s = %d %s, want 201", ep.verb, r.status, r.body)
		}
	}
	if r := f.post(t, path+"/isolate", `{"Comment":"i"}`); r.status != http.StatusCreated {
		t.Errorf("isolate beside the others = %d, want 201", r.status)
	}
	// A second of each type is refused while the first is Pending, then
	// InProgress. Isolate and Unisolate share a slot.
	for _, advance := range []time.Duration{0, 10 * time.Second} {
		f.clock.Advance(advance)
		for _, ep := range append(responseEndpoints, responseEndpoints[0]) {
			r := f.post(t, path+"/"+ep.verb, ep.body)
			e := r.errorBody(t)
			if r.status != http.StatusBadRequest || e.Error.Code != CodeActiveRequestAlreadyExists || e.Error.Message != "Action is already in progress" {
				t.Errorf("second %s at +%v = %d %+v, want 400 ActiveRequestAlreadyExists", ep.verb, f.clock.Now().Sub(testBase), r.status, e.Error)
			}
		}
		if r := f.post(t, path+"/unisolate", `{"Comment":"u"}`); r.status != http.StatusBadRequest {
			t.Errorf("unisolate while isolating = %d, want 400", r.status)
		}
	}
	// Another device is not blocked.
	if r := f.post(t, "/api/machines/"+PayrollMachineID+"/runAntiVirusScan", `{"Comment":"s","ScanType":"Quick"}`); r.status != http.StatusCreated {
		t.Errorf("scan on another device = %d, want 201", r.status)
	}
	// Once completed, each type may run again.
	f.clock.Advance(10 * time.Second)
	for _, ep := range responseEndpoints {
		if r := f.post(t, path+"/"+ep.verb, ep.body); r.status != http.StatusCreated {
			t.Errorf("%s after completion = %d %s, want 201", ep.verb, r.status, r.body)
		}
	}
}

func TestConcurrentResponseActionsCreateOneEach(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := map[string]int{}
	for _, ep := range responseEndpoints {
		for range n {
			wg.Go(func() {
				r := f.post(t, "/api/machines/"+UniqueMachineID+"/"+ep.verb, ep.body)
				mu.Lock()
				defer mu.Unlock()
				if r.status == http.StatusCreated {
					created[ep.verb]++
				} else if r.status != http.StatusBadRequest {
					t.Errorf("%s = %d %s", ep.verb, r.status, r.body)
				}
			})
		}
	}
	wg.Wait()
	for _, ep := range responseEndpoints {
		if created[ep.verb] != 1 {
			t.Errorf("%d concurrent %s: %d created, want 1", n, ep.verb, created[ep.verb])
		}
	}
	if got := len(f.srv.Actions()); got != len(responseEndpoints) {
		t.Errorf("len(Actions()) = %d, want %d", got, len(responseEndpoints))
	}
}

func TestResponseActionBadRequests(t *testing.T) {
	f := newFixture(t, Options{})
	m := "/api/machines/" + KnownIPMachineID
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"scan without type", m + "/runAntiVirusScan", `{"Comment":"x"}`, 400, CodeMissingRequiredParameter},
		{"scan lowercase type value", m + "/runAntiVirusScan", `{"Comment":"x","ScanType":"quick"}`, 400, CodeInvalidRequestBody},
		{"scan unknown type", m + "/runAntiVirusScan", `{"Comment":"x","ScanType":"Custom"}`, 400, CodeInvalidRequestBody},
		{"scan lowercase type name", m + "/runAntiVirusScan", `{"Comment":"x","scanType":"Quick"}`, 400, CodeInvalidRequestBody},
		{"scan type not string", m + "/runAntiVirusScan", `{"Comment":"x","ScanType":1}`, 400, CodeInvalidRequestBody},
		{"scan with isolation type", m + "/runAntiVirusScan", `{"Comment":"x","ScanType":"Quick","IsolationType":"Full"}`, 400, CodeInvalidRequestBody},
		{"scan without comment", m + "/runAntiVirusScan", `{"ScanType":"Quick"}`, 400, CodeMissingRequiredParameter},
		{"restrict without comment", m + "/restrictCodeExecution", `{}`, 400, CodeMissingRequiredParameter},
		{"restrict with sha1", m + "/restrictCodeExecution", `{"Comment":"x","Sha1":"` + sha1Doc + `"}`, 400, CodeInvalidRequestBody},
		{"collect not json", m + "/collectInvestigationPackage", `Comment=x`, 400, CodeInvalidRequestBody},
		{"quarantine without sha1", m + "/StopAndQuarantineFile", `{"Comment":"x"}`, 400, CodeMissingRequiredParameter},
		{"quarantine short sha1", m + "/StopAndQuarantineFile", `{"Comment":"x","Sha1":"` + sha1Doc[:39] + `"}`, 400, CodeInvalidHashValue},
		{"quarantine sha256", m + "/StopAndQuarantineFile", `{"Comment":"x","Sha1":"` + strings.Repeat("ab", 32) + `"}`, 400, CodeInvalidHashValue},
		{"quarantine non-hex sha1", m + "/StopAndQuarantineFile", `{"Comment":"x","Sha1":"` + sha1Doc[:39] + `g"}`, 400, CodeInvalidHashValue},
		{"quarantine lowercase sha1 name", m + "/StopAndQuarantineFile", `{"Comment":"x","sha1":"` + sha1Doc + `"}`, 400, CodeInvalidRequestBody},
		{"unknown machine", "/api/machines/0123456789012345678901234567890123456789/runAntiVirusScan", `{"Comment":"x","ScanType":"Quick"}`, 404, CodeResourceNotFound},
		{"cancel unknown action", "/api/machineactions/" + newGUID() + "/cancel", `{"Comment":"x"}`, 404, CodeResourceNotFound},
		{"cancel not json", "/api/machineactions/" + newGUID() + "/cancel", `[]`, 400, CodeInvalidRequestBody},
		{"cancel unknown parameter", "/api/machineactions/" + newGUID() + "/cancel", `{"comment":"x"}`, 400, CodeInvalidRequestBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.post(t, tt.path, tt.body)
			if r.status != tt.status || r.errorBody(t).Error.Code != tt.code {
				t.Errorf("POST %s (%.60s) = %d %s, want %d %s", tt.path, tt.body, r.status, r.body, tt.status, tt.code)
			}
		})
	}
	for _, p := range []string{m + "/runAntiVirusScan", m + "/StopAndQuarantineFile", "/api/machineactions/" + newGUID() + "/cancel"} {
		if r := f.get(t, p); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Errorf("GET %s = %d (Allow %q), want 405 POST", p, r.status, r.header.Get("Allow"))
		}
	}
	if r := f.post(t, "/api/machineactions/"+newGUID()+"/GetPackageUri", `{}`); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST GetPackageUri = %d, want 405", r.status)
	}
	if n := len(f.srv.Actions()); n != 0 {
		t.Errorf("bad requests created %d actions", n)
	}
}

func TestCancelMachineAction(t *testing.T) {
	f := newFixture(t, Options{Authorize: principalFromHeader, RateLimits: &RateLimits{}})
	app := map[string]string{"Authorization": "Bearer x", "X-Roles": RoleMachineIsolate + "," + RoleMachineCollectForensics + "," + RoleMachineReadAll}
	user := map[string]string{"Authorization": "Bearer x", "X-Scopes": ScopeMachineIsolate + "," + ScopeMachineRead}
	create := func(path, body string) fullActionJSON {
		t.Helper()
		r := f.do(t, http.MethodPost, path, body, app)
		if r.status != http.StatusCreated {
			t.Fatalf("POST %s = %d %s", path, r.status, r.body)
		}
		var a fullActionJSON
		mustJSON(t, r.body, &a)
		return a
	}
	iso := create("/api/machines/"+DCMachineID+"/isolate", `{"Comment":"isolate"}`)

	// Pending: cancelled at once, by the delegated user, with Microsoft's
	// documented request body.
	f.clock.Advance(2 * time.Second)
	r := f.do(t, http.MethodPost, "/api/machineactions/"+iso.ID+"/cancel", `{
    "Comment": "Machine action was canceled by automation"
}`, user)
	if r.status != http.StatusOK {
		t.Fatalf("cancel = %d %s, want 200", r.status, r.body)
	}
	var c fullActionJSON
	mustJSON(t, r.body, &c)
	now := testBase.Add(2 * time.Second)
	want := iso
	want.Status, want.LastUpdateDateTimeUTC = "Cancelled", now
	want.CancellationRequestor, want.CancellationComment, want.CancellationDateTimeUTC = ptr("user@contoso.com"), ptr("Machine action was canceled by automation"), &now
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("CancelMachineAction() mismatch (-want +got):\n%s", diff)
	}
	f.clock.Advance(time.Hour)
	var later fullActionJSON
	mustJSON(t, f.do(t, http.MethodGet, "/api/machineactions/"+iso.ID, "", app).body, &later)
	if later.Status != "Cancelled" || !later.LastUpdateDateTimeUTC.Equal(now) {
		t.Errorf("an hour after cancelling: %s updated %v, want Cancelled at %v", later.Status, later.LastUpdateDateTimeUTC, now)
	}
	if m, _ := f.srv.Machine(DCMachineID); m.Isolated {
		t.Errorf("a cancelled isolation isolated the device")
	}

	// Cancelling an ended action (cancelled, succeeded) is 400; the slot is
	// free again after a cancellation.
	r = f.do(t, http.MethodPost, "/api/machineactions/"+iso.ID+"/cancel", `{"Comment":"again"}`, app)
	if e := r.errorBody(t); r.status != http.StatusBadRequest || e.Error.Code != CodeBadRequest || !strings.Contains(e.Error.Message, "Cancelled") {
		t.Errorf("cancel a cancelled action = %d %+v, want 400 BadRequest naming the final state", r.status, e.Error)
	}
	iso2 := create("/api/machines/"+DCMachineID+"/isolate", `{"Comment":"isolate again"}`)
	f.clock.Advance(20 * time.Second)
	r = f.do(t, http.MethodPost, "/api/machineactions/"+iso2.ID+"/cancel", `{"Comment":"too late"}`, app)
	if e := r.errorBody(t); r.status != http.StatusBadRequest || !strings.Contains(e.Error.Message, "Succeeded") {
		t.Errorf("cancel a succeeded action = %d %+v, want 400", r.status, e.Error)
	}

	// InProgress: cancelled too; Comment is optional (null when absent);
	// an application is the requestor by its ID.
	col := create("/api/machines/"+DCMachineID+"/collectInvestigationPackage", `{"Comment":"collect"}`)
	f.clock.Advance(10 * time.Second)
	r = f.do(t, http.MethodPost, "/api/machineactions/"+strings.ToUpper(col.ID)+"/cancel", `{}`, app)
	mustJSON(t, r.body, &c)
	if r.status != http.StatusOK || c.Status != "Cancelled" || c.CancellationComment != nil || c.CancellationRequestor == nil || *c.CancellationRequestor != "app-1" {
		t.Errorf("cancel in progress without comment = %d %+v, want 200 Cancelled by app-1 with a null comment", r.status, c)
	}
	if r := f.do(t, http.MethodGet, "/api/machineactions/"+col.ID+"/GetPackageUri", "", app); r.status != http.StatusNotFound {
		t.Errorf("GetPackageUri of a cancelled collection = %d, want 404", r.status)
	}
	if st := f.srv.Stats(); st.Calls["POST /api/machineactions/{id}/cancel"] != 4 {
		t.Errorf("Stats().Calls = %v, want 4 cancels", st.Calls)
	}
}

func TestFailControls(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	post := func(machine, verb, body string) string {
		t.Helper()
		r := f.post(t, "/api/machines/"+machine+"/"+verb, body)
		var a fullActionJSON
		mustJSON(t, r.body, &a)
		if r.status != http.StatusCreated {
			t.Fatalf("POST %s = %d %s", verb, r.status, r.body)
		}
		return a.ID
	}
	status := func(id string) ActionStatus {
		for _, a := range f.srv.Actions() {
			if a.ID == id {
				return a.Status
			}
		}
		return ""
	}
	f.srv.FailNextAction(PayrollMachineID, ActionRunAntiVirusScan)
	f.srv.FailNextAction("", ActionCollectInvestigationPackage)
	otherMachine := post(DCMachineID, "runAntiVirusScan", `{"Comment":"s","ScanType":"Quick"}`)
	otherType := post(PayrollMachineID, "isolate", `{"Comment":"i"}`)
	failedScan := post(PayrollMachineID, "runAntiVirusScan", `{"Comment":"s","ScanType":"Quick"}`)
	failedCollect := post(UniqueMachineID, "collectInvestigationPackage", `{"Comment":"c"}`)
	active := post(KnownIPMachineID, "restrictCodeExecution", `{"Comment":"r"}`)
	if !f.srv.FailAction(strings.ToUpper(active)) || f.srv.FailAction(newGUID()) {
		t.Errorf("FailAction(active) false or FailAction(unknown) true")
	}
	f.clock.Advance(10 * time.Second)
	if st := status(failedScan); st != ActionInProgress {
		t.Errorf("a failing action at +10 s is %s, want InProgress (it fails at completion)", st)
	}
	f.clock.Advance(10 * time.Second)
	want := map[string]ActionStatus{otherMachine: ActionSucceeded, otherType: ActionSucceeded, failedScan: ActionFailed,
		failedCollect: ActionFailed, active: ActionFailed}
	for id, st := range want {
		if got := status(id); got != st {
			t.Errorf("action %s is %s, want %s", id, got, st)
		}
	}
	if f.srv.FailAction(otherMachine) {
		t.Errorf("FailAction(succeeded) = true, want false")
	}
	if m, _ := f.srv.Machine(KnownIPMachineID); m.CodeRestricted {
		t.Errorf("a failed restriction restricted the device")
	}
	if r := f.get(t, "/api/machineactions/"+failedCollect+"/GetPackageUri"); r.status != http.StatusNotFound {
		t.Errorf("GetPackageUri of a failed collection = %d, want 404", r.status)
	}
	// Rules are used once; "" matches anything; Reset forgets them.
	if id := post(PayrollMachineID, "runAntiVirusScan", `{"Comment":"s","ScanType":"Quick"}`); func() bool {
		f.clock.Advance(20 * time.Second)
		return status(id) != ActionSucceeded
	}() {
		t.Errorf("a used FailNextAction rule failed a second action")
	}
	f.srv.FailNextAction("", "")
	if id := post(DCMachineID, "unisolate", `{"Comment":"u"}`); func() bool {
		f.clock.Advance(20 * time.Second)
		return status(id) != ActionFailed
	}() {
		t.Errorf(`FailNextAction("", "") did not fail the next action`)
	}
	f.srv.FailNextAction("", "")
	f.srv.Reset()
	if id := post(DCMachineID, "isolate", `{"Comment":"i"}`); func() bool {
		f.clock.Advance(20 * time.Second)
		return status(id) != ActionSucceeded
	}() {
		t.Errorf("FailNextAction survived Reset")
	}
}

func TestPackageURI(t *testing.T) {
	f := newTLSFixture(t, Options{Authorize: principalFromHeader, RateLimits: &RateLimits{}})
	app := map[string]string{"Authorization": "Bearer x", "X-Roles": RoleMachineCollectForensics + "," + RoleMachineReadAll + "," + RoleMachineIsolate}
	r := f.do(t, http.MethodPost, "/api/machines/"+KnownIPMachineID+"/collectInvestigationPackage", `{"Comment":"Collect forensics due to alert 1234"}`, app)
	var col fullActionJSON
	mustJSON(t, r.body, &col)
	uriPath := "/api/machineactions/" + col.ID + "/GetPackageUri"

	// Not complete yet: 404, as documented.
	for _, advance := range []time.Duration{0, 10 * time.Second} {
		f.clock.Advance(advance)
		if r := f.do(t, http.MethodGet, uriPath, "", app); r.status != http.StatusNotFound || r.errorBody(t).Error.Code != CodeResourceNotFound {
			t.Errorf("GetPackageUri while collecting = %d %s, want 404", r.status, r.body)
		}
	}
	f.clock.Advance(10 * time.Second) // +20 s: Succeeded
	getLink := func() string {
		t.Helper()
		r := f.do(t, http.MethodGet, strings.Replace(uriPath, "GetPackageUri", "getPackageUri", 1), "", app)
		var v struct {
			Context string `json:"@odata.context"`
			Value   string `json:"value"`
		}
		mustJSON(t, r.body, &v)
		if r.status != http.StatusOK || !strings.HasSuffix(v.Context, "/api/$metadata#Edm.String") {
			t.Fatalf("GetPackageUri = %d %s, want 200 with an Edm.String", r.status, r.body)
		}
		return v.Value
	}
	link := getLink()
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "https" || u.Host != strings.TrimPrefix(f.http.URL, "https://") || u.Path != "/packages/"+col.ID {
		t.Fatalf("package link = %q, want https://<the server>/packages/%s?...", link, col.ID)
	}
	se, err := time.Parse(time.RFC3339, u.Query().Get("se"))
	if err != nil || !se.Equal(f.clock.Now().Add(PackageURILifetime)) || len(u.Query().Get("sig")) < 40 {
		t.Errorf("package link query se=%q sig=%q, want an expiry %v on and a signature", u.Query().Get("se"), u.Query().Get("sig"), PackageURILifetime)
	}

	// Download needs no bearer token (principalFromHeader would refuse one
	// without Authorization) and answers a zip file.
	r = f.do(t, http.MethodGet, link, "", nil)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("download = %d %q %.200s, want 200 application/zip", r.status, r.header.Get("Content-Type"), r.body)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil || len(zr.File) == 0 {
		t.Fatalf("download is not a zip file: %v", err)
	}
	rc, _ := zr.File[0].Open()
	summary, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(summary), KnownIPMachineID) || !strings.Contains(string(summary), col.ID) {
		t.Errorf("package summary = %q, want the machine and action IDs", summary)
	}

	// Tampered links are refused; so is a link after its expiry.
	q := u.Query()
	for name, bad := range map[string]string{
		"other id":     strings.Replace(link, col.ID, newGUID(), 1),
		"no signature": strings.Replace(link, "sig="+url.QueryEscape(q.Get("sig")), "", 1),
		"later expiry": strings.Replace(link, url.QueryEscape(q.Get("se")), url.QueryEscape(se.Add(time.Hour).Format(time.RFC3339)), 1),
		"bad sig":      strings.Replace(link, "sig=", "sig=x", 1),
	} {
		if r := f.do(t, http.MethodGet, bad, "", nil); r.status != http.StatusForbidden {
			t.Errorf("download with %s = %d, want 403", name, r.status)
		}
	}
	if r := f.do(t, http.MethodPost, link, `{}`, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST to a package link = %d, want 405", r.status)
	}
	f.clock.Advance(PackageURILifetime - time.Second)
	if r := f.do(t, http.MethodGet, link, "", nil); r.status != http.StatusOK {
		t.Errorf("download just before expiry = %d, want 200", r.status)
	}
	f.clock.Advance(time.Second)
	if r := f.do(t, http.MethodGet, link, "", nil); r.status != http.StatusForbidden || !strings.Contains(r.errorBody(t).Error.Message, "expired") {
		t.Errorf("download at expiry = %d %s, want 403 expired", r.status, r.body)
	}
	if r := f.do(t, http.MethodGet, getLink(), "", nil); r.status != http.StatusOK {
		t.Errorf("download of a new link = %d, want 200", r.status)
	}
	if st := f.srv.Stats(); st.PackageDownloads != 3 || st.Unauthorized != 0 || st.Calls["GET /api/machineactions/{id}/GetPackageUri"] != 4 {
		t.Errorf("Stats() = %+v, want 3 downloads, 4 GetPackageUri calls and no 401", st)
	}

	// Another action type has no package: 400; an unknown action 404.
	r = f.do(t, http.MethodPost, "/api/machines/"+KnownIPMachineID+"/isolate", `{"Comment":"i"}`, app)
	var iso fullActionJSON
	mustJSON(t, r.body, &iso)
	f.clock.Advance(time.Minute)
	if r := f.do(t, http.MethodGet, "/api/machineactions/"+iso.ID+"/GetPackageUri", "", app); r.status != http.StatusBadRequest || r.errorBody(t).Error.Code != CodeInvalidInput {
		t.Errorf("GetPackageUri of an isolation = %d %s, want 400 InvalidInput", r.status, r.body)
	}
	if r := f.do(t, http.MethodGet, "/api/machineactions/"+newGUID()+"/GetPackageUri", "", app); r.status != http.StatusNotFound {
		t.Errorf("GetPackageUri of an unknown action = %d, want 404", r.status)
	}
	// After Reset, the action and its package are gone.
	link = getLink()
	f.srv.Reset()
	if r := f.do(t, http.MethodGet, link, "", nil); r.status != http.StatusNotFound {
		t.Errorf("download after Reset = %d, want 404", r.status)
	}
}

func TestPackageBaseURL(t *testing.T) {
	f := newFixture(t, Options{PackageBaseURL: "https://userrequests.sim.test/"})
	pkg := httptest.NewTLSServer(f.srv.PackageHandler())
	defer pkg.Close()
	r := f.post(t, "/api/machines/"+DCMachineID+"/collectInvestigationPackage", `{"Comment":"c"}`)
	var col fullActionJSON
	mustJSON(t, r.body, &col)
	f.clock.Advance(time.Minute)
	var v struct{ Value string }
	mustJSON(t, f.get(t, "/api/machineactions/"+col.ID+"/GetPackageUri").body, &v)
	if !strings.HasPrefix(v.Value, "https://userrequests.sim.test/packages/"+col.ID+"?") {
		t.Fatalf("package link = %q, want it on PackageBaseURL", v.Value)
	}
	res, err := pkg.Client().Get(pkg.URL + strings.TrimPrefix(v.Value, "https://userrequests.sim.test"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("PackageHandler download = %d, want 200", res.StatusCode)
	}
}

func TestPackageURIRateLimit(t *testing.T) {
	f := newFixture(t, Options{})
	r := f.post(t, "/api/machines/"+DCMachineID+"/collectInvestigationPackage", `{"Comment":"c"}`)
	var col fullActionJSON
	mustJSON(t, r.body, &col)
	f.clock.Advance(time.Minute)
	path := "/api/machineactions/" + col.ID + "/GetPackageUri"
	for i := range 2 {
		if r := f.get(t, path); r.status != http.StatusOK {
			t.Fatalf("GetPackageUri %d = %d, want 200", i, r.status)
		}
	}
	r = f.get(t, path)
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != http.StatusTooManyRequests || ra != 60 {
		t.Errorf("third GetPackageUri in a minute = %d (Retry-After %q), want 429 after 60 s (2 a minute)", r.status, r.header.Get("Retry-After"))
	}
	// Other endpoints are not limited by it.
	if r := f.get(t, "/api/machineactions/"+col.ID); r.status != http.StatusOK {
		t.Errorf("GetMachineAction beside a throttled GetPackageUri = %d, want 200", r.status)
	}
	f.clock.Advance(time.Minute)
	if r := f.get(t, path); r.status != http.StatusOK {
		t.Errorf("GetPackageUri a minute later = %d, want 200", r.status)
	}
	// The hourly limit: 120.
	f.srv.SetRateLimits(RateLimits{PackageURIPerHour: 3})
	for range 3 {
		f.get(t, path)
		f.clock.Advance(time.Minute)
	}
	if r := f.get(t, path); r.status != http.StatusTooManyRequests {
		t.Errorf("GetPackageUri over the hourly limit = %d, want 429", r.status)
	}
	if st := f.srv.Stats(); st.Throttled != 2 {
		t.Errorf("Stats().Throttled = %d, want 2", st.Throttled)
	}
}

func TestResponseActionsCountAgainstRateLimit(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{PerMinute: 3}})
	f.post(t, "/api/machines/"+DCMachineID+"/runAntiVirusScan", `{"Comment":"s","ScanType":"Quick"}`)
	f.post(t, "/api/machines/"+DCMachineID+"/StopAndQuarantineFile", `{"Comment":"q","Sha1":"`+sha1Doc+`"}`)
	f.post(t, "/api/machineactions/"+newGUID()+"/cancel", `{"Comment":"c"}`)
	if r := f.post(t, "/api/machines/"+DCMachineID+"/restrictCodeExecution", `{"Comment":"r"}`); r.status != http.StatusTooManyRequests {
		t.Errorf("fourth action call in a minute with a limit of 3 = %d, want 429", r.status)
	}
}
