package atp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The testdata files are Microsoft's documented examples: machineactions.json
// is "List MachineActions API" example 1 (note that it spells the update
// time lastUpdateTimeUtc where the MachineAction resource page and every
// other example say lastUpdateDateTimeUtc), packageuri.json is the "Get
// package SAS URI API" response example. The request bodies below are the
// documented request examples of each API.

// documentedAction returns the machine action of type typ from the List
// MachineActions example, as Defender's raw JSON.
func documentedAction(t *testing.T, typ ActionType) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "machineactions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	for _, raw := range page.Value {
		var a struct {
			Type ActionType `json:"type"`
		}
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		if a.Type == typ {
			return string(raw)
		}
	}
	t.Fatalf("no documented %s action", typ)
	return ""
}

// sameJSON reports the difference between two JSON texts by meaning.
func sameJSON(t *testing.T, want, got string) string {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		return "body is not JSON: " + got
	}
	return cmp.Diff(w, g)
}

func TestResponseActions(t *testing.T) {
	const sha1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
	ctx := context.Background()
	tests := []struct {
		name     string
		call     func(c *Client) (*MachineAction, error)
		answer   ActionType // type of the documented action answered
		retype   ActionType // if set, the answer's type is changed to this (restrictions have no documented answer)
		wantPath string
		wantBody string // the documented request body
	}{
		{name: "run antivirus scan (documented)", answer: ActionRunAntiVirusScan,
			call: func(c *Client) (*MachineAction, error) {
				return c.RunAntiVirusScan(ctx, machineID1, ScanRequest{Comment: "Check machine for viruses due to alert 3212", ScanType: ScanFull})
			},
			wantPath: "/api/machines/" + machineID1 + "/runAntiVirusScan",
			wantBody: `{"Comment": "Check machine for viruses due to alert 3212", "ScanType": "Full"}`},
		{name: "run antivirus scan defaults to quick", answer: ActionRunAntiVirusScan,
			call: func(c *Client) (*MachineAction, error) {
				return c.RunAntiVirusScan(ctx, machineID1, ScanRequest{Comment: "INC1"})
			},
			wantPath: "/api/machines/" + machineID1 + "/runAntiVirusScan",
			wantBody: `{"Comment": "INC1", "ScanType": "Quick"}`},
		{name: "restrict code execution (documented)", answer: ActionCollectInvestigationPackage, retype: ActionRestrictCodeExecution,
			call: func(c *Client) (*MachineAction, error) {
				return c.RestrictCodeExecution(ctx, machineID1, "Restrict code execution due to alert 1234")
			},
			wantPath: "/api/machines/" + machineID1 + "/restrictCodeExecution",
			wantBody: `{"Comment": "Restrict code execution due to alert 1234"}`},
		{name: "unrestrict code execution (documented)", answer: ActionCollectInvestigationPackage, retype: ActionUnrestrictCodeExecution,
			call: func(c *Client) (*MachineAction, error) {
				return c.UnrestrictCodeExecution(ctx, machineID1, "Unrestrict code execution since machine was cleaned and validated")
			},
			wantPath: "/api/machines/" + machineID1 + "/unrestrictCodeExecution",
			wantBody: `{"Comment": "Unrestrict code execution since machine was cleaned and validated"}`},
		{name: "collect investigation package (documented)", answer: ActionCollectInvestigationPackage,
			call: func(c *Client) (*MachineAction, error) {
				return c.CollectInvestigationPackage(ctx, machineID2, "Collect forensics due to alert 1234")
			},
			wantPath: "/api/machines/" + machineID2 + "/collectInvestigationPackage",
			wantBody: `{"Comment": "Collect forensics due to alert 1234"}`},
		{name: "stop and quarantine file (documented)", answer: ActionStopAndQuarantineFile,
			call: func(c *Client) (*MachineAction, error) {
				return c.StopAndQuarantineFile(ctx, machineID1, QuarantineRequest{
					Comment: "Stop and quarantine file on machine due to alert 441688558380765161_2136280442", Sha1: sha1})
			},
			wantPath: "/api/machines/" + machineID1 + "/StopAndQuarantineFile",
			wantBody: `{"Comment": "Stop and quarantine file on machine due to alert 441688558380765161_2136280442", "Sha1": "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer := documentedAction(t, tt.answer)
			if tt.retype != "" {
				answer = strings.Replace(answer, string(tt.answer), string(tt.retype), 1)
			}
			rec := &recorder{status: http.StatusCreated, body: answer}
			c, _ := newTestClient(t, rec, nil, nil)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call = %v, want success", err)
			}
			if len(rec.all) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(rec.all))
			}
			r := rec.last
			if r.Method != http.MethodPost || r.Path != tt.wantPath || r.RawQuery != "" {
				t.Errorf("request = %s %s?%s, want POST %s", r.Method, r.Path, r.RawQuery, tt.wantPath)
			}
			if r.ContentType != "application/json" || r.Accept != "application/json" || r.Auth != "Bearer "+testToken {
				t.Errorf("headers: Content-Type %q, Accept %q, Authorization %q; want JSON both ways and the bearer token", r.ContentType, r.Accept, r.Auth)
			}
			if diff := sameJSON(t, tt.wantBody, r.Body); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
			var want MachineAction
			if err := json.Unmarshal([]byte(answer), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("action mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResponseActionsDecodeDocumentedFields(t *testing.T) {
	for _, tt := range []struct {
		typ  ActionType
		want MachineAction
	}{
		{ActionRunAntiVirusScan, MachineAction{
			ID: "2e9da30d-27f6-4208-81f2-9cd3d67893ba", Type: ActionRunAntiVirusScan, Scope: string(ScanFull),
			Requestor: "Analyst@contoso.com", RequestorComment: "Check machine for viruses due to alert 3212", Status: ActionSucceeded,
			MachineID: "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f", ComputerDNSName: "desktop-39g9tgl",
			CreationDateTimeUTC: time.Date(2018, 12, 4, 12, 18, 27, 129348700, time.UTC)}},
		{ActionStopAndQuarantineFile, MachineAction{
			ID: "44cffc15-0e3d-4cbf-96aa-bf76f9b27f5e", Type: ActionStopAndQuarantineFile,
			Requestor: "Analyst@contoso.com", RequestorComment: "test", Status: ActionSucceeded,
			MachineID: "f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f", ComputerDNSName: "desktop-39g9tgl",
			CreationDateTimeUTC: time.Date(2018, 12, 4, 12, 15, 40, 605202900, time.UTC),
			RelatedFileInfo:     &RelatedFileInfo{FileIdentifier: "a0c659857ccbe457fdaf5fe21d54efdcbf6f6508", FileIdentifierType: "Sha1"}}},
	} {
		t.Run(string(tt.typ), func(t *testing.T) {
			var got MachineAction
			if err := json.Unmarshal([]byte(documentedAction(t, tt.typ)), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoded %s mismatch (-want +got):\n%s", tt.typ, diff)
			}
		})
	}
}

func TestResponseActionArgumentErrors(t *testing.T) {
	rec := &recorder{status: http.StatusCreated, body: actionJSON}
	c, _ := newTestClient(t, rec, nil, nil)
	ctx := context.Background()
	const sha1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
	tests := []struct {
		name     string
		call     func() error
		wantName string
	}{
		{name: "scan bad machine", wantName: "machineID", call: func() error {
			_, err := c.RunAntiVirusScan(ctx, "../alerts", ScanRequest{Comment: "c"})
			return err
		}},
		{name: "scan bad type", wantName: "ScanType", call: func() error {
			_, err := c.RunAntiVirusScan(ctx, machineID1, ScanRequest{Comment: "c", ScanType: "quick"})
			return err
		}},
		{name: "scan no comment", wantName: "Comment", call: func() error {
			_, err := c.RunAntiVirusScan(ctx, machineID1, ScanRequest{ScanType: ScanFull})
			return err
		}},
		{name: "restrict bad machine", wantName: "machineID", call: func() error {
			_, err := c.RestrictCodeExecution(ctx, machineID1+"0", "c")
			return err
		}},
		{name: "restrict no comment", wantName: "Comment", call: func() error {
			_, err := c.RestrictCodeExecution(ctx, machineID1, " ")
			return err
		}},
		{name: "unrestrict long comment", wantName: "Comment", call: func() error {
			_, err := c.UnrestrictCodeExecution(ctx, machineID1, strings.Repeat("c", maxComment+1))
			return err
		}},
		{name: "collect bad machine", wantName: "machineID", call: func() error {
			_, err := c.CollectInvestigationPackage(ctx, "fb9ab6be3965095a09c057be7c90f0a2", "c") // 32 characters, as in Microsoft's example
			return err
		}},
		{name: "quarantine bad machine", wantName: "machineID", call: func() error {
			_, err := c.StopAndQuarantineFile(ctx, "", QuarantineRequest{Comment: "c", Sha1: sha1})
			return err
		}},
		{name: "quarantine short sha1", wantName: "Sha1", call: func() error {
			_, err := c.StopAndQuarantineFile(ctx, machineID1, QuarantineRequest{Comment: "c", Sha1: sha1[:39]})
			return err
		}},
		{name: "quarantine sha256", wantName: "Sha1", call: func() error {
			_, err := c.StopAndQuarantineFile(ctx, machineID1, QuarantineRequest{Comment: "c", Sha1: strings.Repeat("ab", 32)})
			return err
		}},
		{name: "quarantine no comment", wantName: "Comment", call: func() error {
			_, err := c.StopAndQuarantineFile(ctx, machineID1, QuarantineRequest{Sha1: sha1})
			return err
		}},
		{name: "cancel bad id", wantName: "actionID", call: func() error {
			_, err := c.CancelMachineAction(ctx, "2e9da30d-27f6-4208-81f2-9cd3d67893b/", "c")
			return err
		}},
		{name: "cancel machine id", wantName: "actionID", call: func() error {
			_, err := c.CancelMachineAction(ctx, machineID1, "c")
			return err
		}},
		{name: "cancel no comment", wantName: "Comment", call: func() error {
			_, err := c.CancelMachineAction(ctx, actionID1, "")
			return err
		}},
		{name: "package uri bad id", wantName: "actionID", call: func() error {
			_, err := c.GetPackageURI(ctx, "7327b54fd718525cbca07dacde913b5ac3c85673") // the id of Microsoft's example is no GUID
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *ArgumentError
			if !errors.As(err, &ae) || ae.Name != tt.wantName {
				t.Errorf("call = %v, want *ArgumentError for %s", err, tt.wantName)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "atp: ") {
				t.Errorf("error %q lacks the atp: prefix", err)
			}
		})
	}
	if len(rec.all) != 0 {
		t.Errorf("server saw %d requests, want none", len(rec.all))
	}
}

func TestValidSHA1AndActionID(t *testing.T) {
	for _, tt := range []struct {
		s          string
		sha1, guid bool
	}{
		{"87662bc3d60e4200ceaf7aae249d1c343f4b83c9", true, false},
		{"87662BC3D60E4200CEAF7AAE249D1C343F4B83C9", true, false},
		{"87662bc3d60e4200ceaf7aae249d1c343f4b83cg", false, false},
		{"87662bc3d60e4200ceaf7aae249d1c343f4b83c", false, false},
		{"2e9da30d-27f6-4208-81f2-9cd3d67893ba", false, true},
		{"2E9DA30D-27F6-4208-81F2-9CD3D67893BA", false, true},
		{"2e9da30d27f6420881f29cd3d67893ba", false, false},
		{"{2e9da30d-27f6-4208-81f2-9cd3d67893ba}", false, false},
		{"2e9da30d-27f6-4208-81f2-9cd3d67893bz", false, false},
		{"", false, false},
	} {
		if got := ValidSHA1(tt.s); got != tt.sha1 {
			t.Errorf("ValidSHA1(%q) = %v, want %v", tt.s, got, tt.sha1)
		}
		if got := ValidActionID(tt.s); got != tt.guid {
			t.Errorf("ValidActionID(%q) = %v, want %v", tt.s, got, tt.guid)
		}
	}
	if ScanType("").Valid() || ScanType("quick").Valid() || !ScanQuick.Valid() || !ScanFull.Valid() {
		t.Errorf("ScanType.Valid is wrong")
	}
}

func TestCancelMachineAction(t *testing.T) {
	cancelled := strings.NewReplacer(
		`"status": "Pending"`, `"status": "Cancelled"`,
		`"cancellationRequestor": null`, `"cancellationRequestor": "Analyst@TestPrd.onmicrosoft.com"`,
		`"cancellationComment": null`, `"cancellationComment": "Machine action was canceled by automation"`,
		`"cancellationDateTimeUtc": null`, `"cancellationDateTimeUtc": "2019-01-02T14:41:00.1234567Z"`,
	).Replace(actionJSON)
	rec := &recorder{status: http.StatusOK, body: cancelled}
	c, _ := newTestClient(t, rec, nil, nil)
	a, err := c.CancelMachineAction(context.Background(), actionID1, "Machine action was canceled by automation")
	if err != nil {
		t.Fatalf("CancelMachineAction(%s) = %v", actionID1, err)
	}
	if rec.last.Method != http.MethodPost || rec.last.Path != "/api/machineactions/"+actionID1+"/cancel" || rec.last.ContentType != "application/json" {
		t.Errorf("request = %s %s (%s), want POST /api/machineactions/%s/cancel with JSON", rec.last.Method, rec.last.Path, rec.last.ContentType, actionID1)
	}
	// Microsoft's documented request body.
	if diff := sameJSON(t, `{"Comment": "Machine action was canceled by automation"}`, rec.last.Body); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
	want := struct {
		Status                                     ActionStatus
		CancellationRequestor, CancellationComment string
		CancellationDateTimeUTC                    time.Time
	}{ActionCancelled, "Analyst@TestPrd.onmicrosoft.com", "Machine action was canceled by automation", time.Date(2019, 1, 2, 14, 41, 0, 123456700, time.UTC)}
	got := want
	got.Status, got.CancellationRequestor, got.CancellationComment, got.CancellationDateTimeUTC = a.Status, a.CancellationRequestor, a.CancellationComment, a.CancellationDateTimeUTC
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CancelMachineAction(%s) mismatch (-want +got):\n%s", actionID1, diff)
	}

	for _, tt := range []struct {
		status int
		body   string
		check  func(error) bool
	}{
		{404, `{"error":{"code":"ResourceNotFound","message":"MachineAction x was not found","target":"t"}}`, IsNotFound},
		{400, `{"error":{"code":"BadRequest","message":"already in final state","target":"t"}}`, func(err error) bool {
			var re *ResponseError
			return errors.As(err, &re) && re.StatusCode == 400
		}},
		{200, `{}`, func(err error) bool {
			var de *DecodeError
			return errors.As(err, &de) && de.StatusCode == 200
		}},
	} {
		rec := &recorder{status: tt.status, body: tt.body}
		c, _ := newTestClient(t, rec, nil, nil)
		if _, err := c.CancelMachineAction(context.Background(), actionID1, "c"); !tt.check(err) {
			t.Errorf("CancelMachineAction() answered %d %s = %v, want it recognised", tt.status, tt.body, err)
		}
	}
}

func TestGetPackageURI(t *testing.T) {
	documented, err := os.ReadFile(filepath.Join("testdata", "packageuri.json"))
	if err != nil {
		t.Fatal(err)
	}
	const plain = "https://userrequests-us.securitycenter.windows.com:443/safedownload/WDATP_Investigation_Package.zip?token=secret%2bsig"
	tests := []struct {
		name       string
		body       string
		wantPrefix string // of the returned link; empty: a *DecodeError is expected
	}{
		{name: "documented example (link in literal quotes)", body: string(documented),
			wantPrefix: "https://userrequests-us.securitycenter.windows.com:443/safedownload/WDATP_Investigation_Package.zip?token=gbDyj7y%2fbWGAZ"},
		{name: "plain link", body: `{"@odata.context":"x","value":"` + plain + `"}`, wantPrefix: plain},
		{name: "http", body: `{"value":"http://userrequests-us.securitycenter.windows.com/p.zip?token=secret"}`},
		{name: "relative", body: `{"value":"/safedownload/p.zip?token=secret"}`},
		{name: "no host", body: `{"value":"https:///p.zip?token=secret"}`},
		{name: "user info", body: `{"value":"https://u:secret@example.com/p.zip?token=secret"}`},
		{name: "not a URL", body: `{"value":"https://exa mple.com/%zz?token=secret"}`},
		{name: "empty", body: `{"value":""}`},
		{name: "no value", body: `{"@odata.context":"x"}`},
		{name: "javascript", body: `{"value":"javascript:alert('token=secret')"}`},
		{name: "value not a string", body: `{"value":{"token":"secret"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{body: tt.body}
			c, _ := newTestClient(t, rec, nil, nil)
			got, err := c.GetPackageURI(context.Background(), actionID1)
			if rec.last.Method != http.MethodGet || rec.last.Path != "/api/machineactions/"+actionID1+"/GetPackageUri" || rec.last.Auth != "Bearer "+testToken {
				t.Errorf("request = %s %s (%q), want GET /api/machineactions/%s/GetPackageUri with the bearer token", rec.last.Method, rec.last.Path, rec.last.Auth, actionID1)
			}
			if tt.wantPrefix != "" {
				if err != nil || !strings.HasPrefix(got, tt.wantPrefix) || strings.Contains(got, `"`) {
					t.Errorf("GetPackageURI(%s) = %.120q, %v; want a link starting %.120q", actionID1, got, err, tt.wantPrefix)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || got != "" {
				t.Fatalf("GetPackageURI(%s) = %q, %v; want a *DecodeError", actionID1, got, err)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "token=") {
				t.Errorf("GetPackageURI() error %q quotes the link", err)
			}
		})
	}

	rec := &recorder{status: 404, body: `{"error":{"code":"ResourceNotFound","message":"not complete","target":"t"}}`}
	c, _ := newTestClient(t, rec, nil, nil)
	if _, err := c.GetPackageURI(context.Background(), actionID1); !IsNotFound(err) {
		t.Errorf("GetPackageURI() while collecting = %v, want a 404", err)
	}
}

// TestResponseActionRetries checks that every action POST keeps the
// isolate semantics: retried on 429, never on a 5xx (the action may have
// been created), and Defender's refusal of a second pending action is
// recognisable.
func TestResponseActionRetries(t *testing.T) {
	ctx := context.Background()
	posts := map[string]func(c *Client) error{
		"scan": func(c *Client) error {
			_, err := c.RunAntiVirusScan(ctx, machineID1, ScanRequest{Comment: "c"})
			return err
		},
		"restrict": func(c *Client) error {
			_, err := c.RestrictCodeExecution(ctx, machineID1, "c")
			return err
		},
		"unrestrict": func(c *Client) error {
			_, err := c.UnrestrictCodeExecution(ctx, machineID1, "c")
			return err
		},
		"collect": func(c *Client) error {
			_, err := c.CollectInvestigationPackage(ctx, machineID1, "c")
			return err
		},
		"quarantine": func(c *Client) error {
			_, err := c.StopAndQuarantineFile(ctx, machineID1, QuarantineRequest{Comment: "c", Sha1: strings.Repeat("a", 40)})
			return err
		},
		"cancel": func(c *Client) error {
			_, err := c.CancelMachineAction(ctx, actionID1, "c")
			return err
		},
	}
	for name, post := range posts {
		for _, tt := range []struct {
			statuses []int
			wantHits int32
			wantErr  bool
		}{
			{[]int{429, 201}, 2, false},
			{[]int{503, 201}, 1, true},
			{[]int{500, 201}, 1, true},
			{[]int{502, 201}, 1, true},
		} {
			var hits atomic.Int32
			c, _ := newTestClient(t, sequence(&hits, "1", tt.statuses...), nil, nil)
			err := post(c)
			if (err != nil) != tt.wantErr || hits.Load() != tt.wantHits {
				t.Errorf("%s answered %v = %v after %d requests, want error %v after %d", name, tt.statuses, err, hits.Load(), tt.wantErr, tt.wantHits)
			}
		}
		rec := &recorder{status: 400, body: `{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"t"}}`}
		c, _ := newTestClient(t, rec, nil, nil)
		if err := post(c); !IsActiveRequestAlreadyExists(err) || len(rec.all) != 1 {
			t.Errorf("%s answered ActiveRequestAlreadyExists = %v after %d requests, want it recognised after 1", name, err, len(rec.all))
		}
	}
}
