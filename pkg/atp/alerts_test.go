package atp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBuildAlertFilter(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 999, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		o    *ListAlertsOptions
		want string
	}{
		{name: "nil", o: nil, want: ""},
		{name: "zero", o: &ListAlertsOptions{}, want: ""},
		{name: "one severity", o: &ListAlertsOptions{Severities: []Severity{SeverityHigh}}, want: "severity eq 'High'"},
		{name: "two severities", o: &ListAlertsOptions{Severities: []Severity{SeverityHigh, SeverityMedium}},
			want: "(severity eq 'High' or severity eq 'Medium')"},
		{name: "statuses", o: &ListAlertsOptions{Statuses: []AlertStatus{AlertStatusNew, AlertStatusInProgress, AlertStatusResolved}},
			want: "(status eq 'New' or status eq 'InProgress' or status eq 'Resolved')"},
		{name: "created from", o: &ListAlertsOptions{CreatedFrom: t0}, want: "alertCreationTime ge 2024-01-02T02:04:05Z"},
		{name: "created before", o: &ListAlertsOptions{CreatedBefore: t0}, want: "alertCreationTime lt 2024-01-02T02:04:05Z"},
		{name: "updated from", o: &ListAlertsOptions{UpdatedFrom: t0}, want: "lastUpdateTime ge 2024-01-02T02:04:05Z"},
		{name: "machine", o: &ListAlertsOptions{MachineID: strings.ToUpper(machineID1)}, want: "machineId eq '" + machineID1 + "'"},
		{name: "all", o: &ListAlertsOptions{Severities: []Severity{SeverityLow}, Statuses: []AlertStatus{AlertStatusNew},
			CreatedFrom: t0, CreatedBefore: t0.Add(time.Hour), UpdatedFrom: t0, MachineID: machineID1, Top: 10, Skip: 5, ExpandEvidence: true},
			want: "severity eq 'Low' and status eq 'New' and alertCreationTime ge 2024-01-02T02:04:05Z and alertCreationTime lt 2024-01-02T03:04:05Z and lastUpdateTime ge 2024-01-02T02:04:05Z and machineId eq '" + machineID1 + "'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BuildAlertFilter(tt.o)
			if err != nil || got != tt.want {
				t.Errorf("BuildAlertFilter(%+v) = %q, %v, want %q", tt.o, got, err, tt.want)
			}
		})
	}
}

func TestListAlertsInvalid(t *testing.T) {
	tests := []struct {
		name     string
		o        *ListAlertsOptions
		wantName string
	}{
		{name: "top too big", o: &ListAlertsOptions{Top: 10001}, wantName: "Top"},
		{name: "top negative", o: &ListAlertsOptions{Top: -1}, wantName: "Top"},
		{name: "skip negative", o: &ListAlertsOptions{Skip: -1}, wantName: "Skip"},
		{name: "severity", o: &ListAlertsOptions{Severities: []Severity{"high"}}, wantName: "Severities"},
		{name: "severity injection", o: &ListAlertsOptions{Severities: []Severity{"High') or (1 eq 1"}}, wantName: "Severities"},
		{name: "status", o: &ListAlertsOptions{Statuses: []AlertStatus{"Closed"}}, wantName: "Statuses"},
		{name: "machine short", o: &ListAlertsOptions{MachineID: "abc"}, wantName: "MachineID"},
		{name: "machine not hex", o: &ListAlertsOptions{MachineID: strings.Repeat("g", 40)}, wantName: "MachineID"},
	}
	rec := &recorder{body: `{"value":[]}`}
	c, _ := newTestClient(t, rec, nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ListAlerts(context.Background(), tt.o)
			var ae *ArgumentError
			if !errors.As(err, &ae) || ae.Name != tt.wantName {
				t.Errorf("ListAlerts(%+v) = %v, want *ArgumentError for %s", tt.o, err, tt.wantName)
			}
			_, err = c.StreamAlerts(context.Background(), tt.o, func(json.RawMessage) error { return nil })
			if !errors.As(err, &ae) {
				t.Errorf("StreamAlerts(%+v) = %v, want *ArgumentError", tt.o, err)
			}
		})
	}
	if len(rec.all) != 0 {
		t.Errorf("server saw %d requests, want none", len(rec.all))
	}
}

const alertJSON = `{
  "id": "da637472900382838869_1364969609",
  "incidentId": 1126093,
  "investigationId": null,
  "assignedTo": null,
  "severity": "Low",
  "status": "New",
  "classification": null,
  "determination": null,
  "investigationState": "Queued",
  "detectionSource": "WindowsDefenderAtp",
  "detectorId": "17e10bbc-3a68-474a-8aad-faef14d43952",
  "category": "Execution",
  "threatFamilyName": null,
  "title": "Low-reputation arbitrary code executed by signed executable",
  "description": "Binaries signed by Microsoft can be used to run low-reputation arbitrary code.",
  "alertCreationTime": "2021-01-26T20:33:57.7220239Z",
  "firstEventTime": "2021-01-26T20:31:32.9562661Z",
  "lastEventTime": "2021-01-26T20:31:33.0577322Z",
  "lastUpdateTime": "2021-01-26T20:33:59.2Z",
  "resolvedTime": null,
  "machineId": "111e6dd8c833c8a052ea231ec1b19adaf497b625",
  "computerDnsName": "temp123.middleeast.corp.microsoft.com",
  "rbacGroupName": "A",
  "aadTenantId": "a839b112-1253-6432-9bf6-94542403f21c",
  "threatName": null,
  "mitreTechniques": ["T1064", "T1085", "T1220"],
  "relatedUser": {"userName": "temp123", "domainName": "MIDDLEEAST"},
  "loggedOnUsers": [{"accountName": "temp123", "domainName": "MIDDLEEAST"}],
  "comments": [{"comment": "test comment", "createdBy": "secop123@contoso.com", "createdTime": "2021-01-26T01:00:37.8404534Z"}],
  "evidence": [{
    "entityType": "User", "evidenceCreationTime": "2021-01-26T20:33:58.42Z",
    "sha1": null, "sha256": null, "fileName": null, "filePath": null, "processId": null,
    "processCommandLine": null, "processCreationTime": null, "parentProcessId": null,
    "parentProcessCreationTime": null, "parentProcessFileName": null, "parentProcessFilePath": null,
    "ipAddress": null, "url": null, "registryKey": null, "registryHive": null, "registryValueType": null,
    "registryValue": null, "accountName": "name", "domainName": "DOMAIN", "userSid": "S-1-5-21-11111607-1111760036-109187956-75141",
    "aadUserId": "11118379-2a59-1111-ac3c-a51eb4a3c627", "userPrincipalName": "temp123@microsoft.com", "detectionStatus": null
  }, {
    "entityType": "Process", "evidenceCreationTime": "2021-01-26T20:33:58.6133333Z",
    "sha1": "ff836cfb1af40252bd2a2ea843032e99a5b262ed", "sha256": "a4752c71d81afd3d5865d24ddb11a6b0c615062fcc448d24050c2172d2cbccd6",
    "fileName": "rundll32.exe", "filePath": "C:\\Windows\\SysWOW64", "processId": 3276,
    "processCommandLine": "rundll32.exe  c:\\temp\\suspicious.dll,RepeatAfterMe",
    "processCreationTime": "2021-01-26T20:31:32.9581596Z", "parentProcessId": 8420,
    "parentProcessCreationTime": "2021-01-26T20:31:32.9004163Z", "parentProcessFileName": "rundll32.exe",
    "parentProcessFilePath": "C:\\Windows\\System32", "ipAddress": null, "url": null, "registryKey": null,
    "registryHive": null, "registryValueType": null, "registryValue": null, "accountName": null, "domainName": null,
    "userSid": null, "aadUserId": null, "userPrincipalName": null, "detectionStatus": "Detected"
  }]
}`

func TestListAlerts(t *testing.T) {
	rec := &recorder{body: `{"@odata.context":"https://api.security.microsoft.com/api/$metadata#Alerts","value":[` + alertJSON + `]}`}
	c, _ := newTestClient(t, rec, nil, nil)
	created := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	got, err := c.ListAlerts(context.Background(), &ListAlertsOptions{
		Severities: []Severity{SeverityHigh, SeverityMedium}, Statuses: []AlertStatus{AlertStatusNew},
		CreatedFrom: created, Top: 100, Skip: 200, ExpandEvidence: true,
	})
	if err != nil {
		t.Fatalf("ListAlerts() = %v", err)
	}
	wantQuery := map[string][]string{
		"$filter": {"(severity eq 'High' or severity eq 'Medium') and status eq 'New' and alertCreationTime ge 2024-05-01T00:00:00Z"},
		"$top":    {"100"},
		"$skip":   {"200"},
		"$expand": {"evidence"},
	}
	if rec.last.Method != "GET" || rec.last.Path != "/api/alerts" {
		t.Errorf("request = %s %s, want GET /api/alerts", rec.last.Method, rec.last.Path)
	}
	if diff := cmp.Diff(wantQuery, rec.last.Query); diff != "" {
		t.Errorf("query mismatch (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(rec.last.RawQuery, "$filter=") {
		t.Errorf("raw query = %q, want a literal $filter key", rec.last.RawQuery)
	}
	if len(got) != 1 {
		t.Fatalf("ListAlerts() returned %d alerts, want 1", len(got))
	}
	a := got[0]
	want := Alert{
		ID: "da637472900382838869_1364969609", IncidentID: 1126093, Severity: SeverityLow, Status: AlertStatusNew,
		InvestigationState: "Queued", DetectionSource: "WindowsDefenderAtp", DetectorID: "17e10bbc-3a68-474a-8aad-faef14d43952",
		Category: "Execution", Title: "Low-reputation arbitrary code executed by signed executable",
		Description:       "Binaries signed by Microsoft can be used to run low-reputation arbitrary code.",
		AlertCreationTime: time.Date(2021, 1, 26, 20, 33, 57, 722023900, time.UTC),
		FirstEventTime:    time.Date(2021, 1, 26, 20, 31, 32, 956266100, time.UTC),
		LastEventTime:     time.Date(2021, 1, 26, 20, 31, 33, 57732200, time.UTC),
		LastUpdateTime:    time.Date(2021, 1, 26, 20, 33, 59, 200000000, time.UTC),
		MachineID:         "111e6dd8c833c8a052ea231ec1b19adaf497b625", ComputerDNSName: "temp123.middleeast.corp.microsoft.com",
		RBACGroupName: "A", AADTenantID: "a839b112-1253-6432-9bf6-94542403f21c",
		MitreTechniques: []string{"T1064", "T1085", "T1220"},
		RelatedUser:     &User{UserName: "temp123", DomainName: "MIDDLEEAST"},
		LoggedOnUsers:   []User{{AccountName: "temp123", DomainName: "MIDDLEEAST"}},
		Comments:        []Comment{{Comment: "test comment", CreatedBy: "secop123@contoso.com", CreatedTime: time.Date(2021, 1, 26, 1, 0, 37, 840453400, time.UTC)}},
	}
	if diff := cmp.Diff(want, a, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Evidence" }, cmp.Ignore())); diff != "" {
		t.Errorf("alert mismatch (-want +got):\n%s", diff)
	}
	if len(a.Evidence) != 2 || a.Evidence[1].ProcessID != 3276 || a.Evidence[1].FileName != "rundll32.exe" ||
		a.Evidence[0].UserPrincipalName != "temp123@microsoft.com" || a.Evidence[1].DetectionStatus != "Detected" {
		t.Errorf("evidence = %+v, want the two documented entities", a.Evidence)
	}
}

func TestListAlertsNoOptions(t *testing.T) {
	rec := &recorder{body: `{"value":[]}`}
	c, _ := newTestClient(t, rec, nil, nil)
	got, err := c.ListAlerts(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListAlerts(nil) = %v, %v, want empty", got, err)
	}
	if rec.last.RawQuery != "" {
		t.Errorf("ListAlerts(nil) query = %q, want none", rec.last.RawQuery)
	}
}

// alertsPage returns a Defender alerts answer with n alerts, pretty-printed
// oddly so a re-encoding would show.
func alertsPage(n int) (page []byte, elems [][]byte) {
	var b bytes.Buffer
	b.WriteString(`{"@odata.context": "https://api.security.microsoft.com/api/$metadata#Alerts", "value" : [ `)
	for i := range n {
		if i > 0 {
			b.WriteString(" ,\n ")
		}
		e := fmt.Sprintf(`{ "id":"da%018d_%d",  "severity" : "High", "title":"\u003cscript\u003e é \"q\"", "n": 1.50e3, "evidence": [ {"entityType":"File" } ] }`, i, i)
		elems = append(elems, []byte(e))
		b.WriteString(e)
	}
	b.WriteString(" ], \"extra\": {\"a\": [1,2]} }")
	return b.Bytes(), elems
}

func TestStreamAlertsRawUnmodified(t *testing.T) {
	page, elems := alertsPage(50)
	c, _ := newTestClient(t, jsonHandler(200, string(page), nil), nil, nil)
	var got [][]byte
	n, err := c.StreamAlerts(context.Background(), &ListAlertsOptions{Top: 50}, func(raw json.RawMessage) error {
		got = append(got, bytes.Clone(raw))
		return nil
	})
	if err != nil || n != len(elems) {
		t.Fatalf("StreamAlerts() = %d, %v, want %d, nil", n, err, len(elems))
	}
	if diff := cmp.Diff(elems, got); diff != "" {
		t.Errorf("raw alerts differ from the bytes sent (-want +got):\n%s", diff)
	}
}

func TestStreamAlertsErrors(t *testing.T) {
	stop := errors.New("stop")
	tests := []struct {
		name     string
		body     string
		fnErrAt  int // fn fails on this call (1-based), 0 never
		wantN    int
		wantIs   error
		wantDecE bool
	}{
		{name: "empty value", body: `{"value":[]}`, wantN: 0},
		{name: "value after other members", body: `{"a":{"b":[1]},"value":[{"id":"1"},{"id":"2"}],"z":null}`, wantN: 2},
		{name: "fn error stops", body: `{"value":[{"id":"1"},{"id":"2"},{"id":"3"}]}`, fnErrAt: 2, wantN: 1, wantIs: stop},
		{name: "truncated", body: `{"value":[{"id":"1"},{"id":`, wantN: 1, wantDecE: true},
		{name: "no value", body: `{"other":[]}`, wantDecE: true},
		{name: "value not array", body: `{"value":{"id":"1"}}`, wantDecE: true},
		{name: "element not object", body: `{"value":[{"id":"1"},"x"]}`, wantN: 1, wantDecE: true},
		{name: "not an object", body: `[{"id":"1"}]`, wantDecE: true},
		{name: "html", body: `<html></html>`, wantDecE: true},
		{name: "trailing garbage inside", body: `{"value":[{"id":"1"}] "x"}`, wantN: 1, wantDecE: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, jsonHandler(200, tt.body, nil), nil, nil)
			calls := 0
			n, err := c.StreamAlerts(context.Background(), nil, func(json.RawMessage) error {
				calls++
				if calls == tt.fnErrAt {
					return stop
				}
				return nil
			})
			if n != tt.wantN {
				t.Errorf("StreamAlerts() n = %d, want %d", n, tt.wantN)
			}
			var de *DecodeError
			if got := errors.As(err, &de); got != tt.wantDecE {
				t.Errorf("StreamAlerts() = %v, *DecodeError %v, want %v", err, got, tt.wantDecE)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("StreamAlerts() = %v, want errors.Is %v", err, tt.wantIs)
			}
			if !tt.wantDecE && tt.wantIs == nil && err != nil {
				t.Errorf("StreamAlerts() = %v, want nil", err)
			}
		})
	}
}

func TestStreamAlertsRetriesBeforeFirstElement(t *testing.T) {
	page, elems := alertsPage(3)
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(page)
	})
	c, _ := newTestClient(t, h, nil, nil)
	n, err := c.StreamAlerts(context.Background(), nil, func(json.RawMessage) error { return nil })
	if err != nil || n != len(elems) || calls != 2 {
		t.Errorf("StreamAlerts() = %d, %v after %d calls, want %d, nil after 2", n, err, calls, len(elems))
	}
}

func TestStreamAlertsOversized(t *testing.T) {
	page, _ := alertsPage(100)
	c, _ := newTestClient(t, jsonHandler(200, string(page), nil), nil, &Options{MaxBodyBytes: int64(len(page) / 2)})
	n, err := c.StreamAlerts(context.Background(), nil, func(json.RawMessage) error { return nil })
	if !errors.Is(err, ErrBodyTooLarge) || n == 0 || n >= 100 {
		t.Errorf("StreamAlerts() = %d, %v, want some alerts then ErrBodyTooLarge", n, err)
	}
}

// pagingServer serves total alerts by $top/$skip.
func pagingServer(t *testing.T, total int, skips *[]int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		top, _ := strconv.Atoi(r.URL.Query().Get("$top"))
		skip, _ := strconv.Atoi(r.URL.Query().Get("$skip"))
		*skips = append(*skips, skip)
		var vals []string
		for i := skip; i < min(total, skip+top); i++ {
			vals = append(vals, fmt.Sprintf(`{"id":"a%d"}`, i))
		}
		fmt.Fprintf(w, `{"value":[%s]}`, strings.Join(vals, ","))
	})
}

func TestAllAlerts(t *testing.T) {
	tests := []struct {
		name      string
		total     int
		top, skip int
		breakAt   int
		wantIDs   int
		wantSkips []int
	}{
		{name: "several pages", total: 25, top: 10, wantIDs: 25, wantSkips: []int{0, 10, 20}},
		{name: "exact multiple", total: 20, top: 10, wantIDs: 20, wantSkips: []int{0, 10, 20}},
		{name: "start at skip", total: 25, top: 10, skip: 5, wantIDs: 20, wantSkips: []int{5, 15, 25}},
		{name: "default page size", total: 3, wantIDs: 3, wantSkips: []int{0}},
		{name: "break", total: 25, top: 10, breakAt: 12, wantIDs: 12, wantSkips: []int{0, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var skips []int
			c, _ := newTestClient(t, pagingServer(t, tt.total, &skips), nil, nil)
			var ids []string
			for a, err := range c.AllAlerts(context.Background(), &ListAlertsOptions{Top: tt.top, Skip: tt.skip}) {
				if err != nil {
					t.Fatalf("AllAlerts() error = %v", err)
				}
				ids = append(ids, a.ID)
				if len(ids) == tt.breakAt {
					break
				}
			}
			if len(ids) != tt.wantIDs || (len(ids) > 0 && ids[0] != fmt.Sprintf("a%d", tt.skip)) {
				t.Errorf("AllAlerts() yielded %d alerts starting %v, want %d from a%d", len(ids), ids[:min(1, len(ids))], tt.wantIDs, tt.skip)
			}
			if diff := cmp.Diff(tt.wantSkips, skips); diff != "" {
				t.Errorf("skips mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAllAlertsError(t *testing.T) {
	c, _ := newTestClient(t, jsonHandler(403, `{"error":{"code":"Forbidden","message":"no"}}`, nil), nil, nil)
	n := 0
	var last error
	for _, err := range c.AllAlerts(context.Background(), nil) {
		n++
		last = err
	}
	if n != 1 || asResponseError(t, last).StatusCode != 403 {
		t.Errorf("AllAlerts() yielded %d items, last error %v; want one 403", n, last)
	}
}

func TestGetAlert(t *testing.T) {
	rec := &recorder{body: alertJSON}
	c, _ := newTestClient(t, rec, nil, nil)
	a, err := c.GetAlert(context.Background(), "da637472900382838869_1364969609")
	if err != nil || a.ID != "da637472900382838869_1364969609" {
		t.Fatalf("GetAlert() = %+v, %v", a, err)
	}
	if rec.last.Method != "GET" || rec.last.Path != "/api/alerts/da637472900382838869_1364969609" {
		t.Errorf("request = %s %s", rec.last.Method, rec.last.Path)
	}
	for _, bad := range []string{"", "..", "a/b", "a?b", "a b", strings.Repeat("a", 201)} {
		_, err := c.GetAlert(context.Background(), bad)
		var ae *ArgumentError
		if !errors.As(err, &ae) {
			t.Errorf("GetAlert(%q) = %v, want *ArgumentError", bad, err)
		}
	}
}
