package defender

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestListAlertsFilter(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	all := f.srv.Alerts()
	week := testBase.Add(-7 * 24 * time.Hour)
	weekText := week.Format(time.RFC3339)
	anInProgress := ""
	for _, a := range all {
		if a.Status == AlertStatusInProgress {
			anInProgress = a.ID
			break
		}
	}
	tests := []struct {
		filter string
		want   func(a Alert) bool
	}{
		{"severity eq 'High'", func(a Alert) bool { return a.Severity == SeverityHigh }},
		{"severity ne 'High'", func(a Alert) bool { return a.Severity != SeverityHigh }},
		{"severity eq 'high'", func(a Alert) bool { return a.Severity == SeverityHigh }},
		{"status eq 'New' and severity eq 'Medium'", func(a Alert) bool { return a.Status == AlertStatusNew && a.Severity == SeverityMedium }},
		{"severity eq 'High' or severity eq 'Medium'", func(a Alert) bool { return a.Severity == SeverityHigh || a.Severity == SeverityMedium }},
		{"severity in ('High','Medium')", func(a Alert) bool { return a.Severity == SeverityHigh || a.Severity == SeverityMedium }},
		{"(severity eq 'High' or severity eq 'Low') and status eq 'Resolved'", func(a Alert) bool {
			return (a.Severity == SeverityHigh || a.Severity == SeverityLow) && a.Status == AlertStatusResolved
		}},
		{"severity eq 'High' or severity eq 'Low' and status eq 'Resolved'", func(a Alert) bool {
			return a.Severity == SeverityHigh || (a.Severity == SeverityLow && a.Status == AlertStatusResolved)
		}},
		{"not (status eq 'New')", func(a Alert) bool { return a.Status != AlertStatusNew }},
		{"alertCreationTime ge " + weekText, func(a Alert) bool { return !a.AlertCreationTime.Before(week) }},
		{"alertCreationTime gt " + weekText, func(a Alert) bool { return a.AlertCreationTime.After(week) }},
		{"alertCreationTime lt " + weekText, func(a Alert) bool { return a.AlertCreationTime.Before(week) }},
		{"alertCreationTime le " + weekText, func(a Alert) bool { return !a.AlertCreationTime.After(week) }},
		{"lastUpdateTime ge " + weekText + " and severity eq 'Low'", func(a Alert) bool { return !a.LastUpdateTime.Before(week) && a.Severity == SeverityLow }},
		{"lastEventTime lt " + weekText, func(a Alert) bool { return a.LastEventTime.Before(week) }},
		{"AlertCreationTime ge 2025-02-22", func(a Alert) bool { return !a.AlertCreationTime.Before(time.Date(2025, 2, 22, 0, 0, 0, 0, time.UTC)) }},
		{"machineId eq '" + KnownIPMachineID + "'", func(a Alert) bool { return a.MachineID == KnownIPMachineID }},
		{"machineId eq '" + strings.ToUpper(KnownIPMachineID) + "'", func(a Alert) bool { return a.MachineID == KnownIPMachineID }},
		{"assignedTo eq 'o''brien@contoso.com'", func(a Alert) bool { return a.AssignedTo == QuoteAssignee }},
		{"assignedTo eq null", func(a Alert) bool { return a.AssignedTo == "" }},
		{"assignedTo ne null", func(a Alert) bool { return a.AssignedTo != "" }},
		{"incidentId eq 7587", func(a Alert) bool { return a.IncidentID == 7587 }},
		{"incidentId gt 1010", func(a Alert) bool { return a.IncidentID > 1010 }},
		{"investigationId eq null", func(a Alert) bool { return a.InvestigationID == 0 }},
		{"id eq '" + SampleAlertID + "'", func(a Alert) bool { return a.ID == SampleAlertID }},
		{"id eq '" + anInProgress + "'", func(a Alert) bool { return a.ID == anInProgress }},
		{"category eq 'Execution'", func(a Alert) bool { return a.Category == "Execution" }},
		{"detectionSource eq 'WindowsDefenderAv'", func(a Alert) bool { return a.DetectionSource == "WindowsDefenderAv" }},
		{"startswith(category,'Cred')", func(a Alert) bool { return strings.HasPrefix(a.Category, "Cred") }},
		{"status in ('New') and machineId in ('" + AmbiguousMachineID1 + "','" + AmbiguousMachineID2 + "')", func(a Alert) bool {
			return a.Status == AlertStatusNew && (a.MachineID == AmbiguousMachineID1 || a.MachineID == AmbiguousMachineID2)
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
			if len(want) == 0 && !strings.Contains(tt.filter, "'"+SampleAlertID) {
				t.Logf("filter %q matches nothing in the seed", tt.filter)
			}
			got, r := list[idOf](t, f, filterPath("/api/alerts", "$filter", tt.filter))
			if r.status != 0 && r.status != http.StatusOK {
				t.Fatalf("ListAlerts(%q) status = %d %s, want 200", tt.filter, r.status, r.body)
			}
			if diff := cmp.Diff(want, ids(got)); diff != "" {
				t.Errorf("ListAlerts(%q) ids mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
}

func TestListAlertsBadRequests(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		name  string
		query []string
	}{
		{"unknown property", []string{"$filter", "title eq 'x'"}},
		{"unquoted string", []string{"$filter", "severity eq High"}},
		{"bad enum", []string{"$filter", "severity eq 'Critical'"}},
		{"quoted time", []string{"$filter", "alertCreationTime ge '2024-01-01T00:00:00Z'"}},
		{"unterminated quote", []string{"$filter", "assignedTo eq 'o'brien'"}},
		{"dangling and", []string{"$filter", "status eq 'New' and"}},
		{"unbalanced paren", []string{"$filter", "(status eq 'New'"}},
		{"uppercase operator", []string{"$filter", "status EQ 'New'"}},
		{"unknown function", []string{"$filter", "tolower(status) eq 'new'"}},
		{"top over max", []string{"$top", "10001"}},
		{"top negative", []string{"$top", "-1"}},
		{"top not a number", []string{"$top", "ten"}},
		{"skip negative", []string{"$skip", "-5"}},
		{"expand other", []string{"$expand", "machine"}},
		{"unsupported option", []string{"$orderby", "severity"}},
		{"deep nesting", []string{"$filter", strings.Repeat("(", 200) + "status eq 'New'" + strings.Repeat(")", 200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.get(t, filterPath("/api/alerts", tt.query...))
			if r.status != http.StatusBadRequest {
				t.Fatalf("ListAlerts(%v) status = %d, want 400 (body %s)", tt.query, r.status, r.body)
			}
			e := r.errorBody(t)
			if e.Error.Code != CodeODataError || e.Error.Message == "" || len(e.Error.Target) != 36 {
				t.Errorf("ListAlerts(%v) error = %+v, want code %s with message and GUID target", tt.query, e.Error, CodeODataError)
			}
		})
	}
}

func TestListAlertsPaging(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	all := f.srv.Alerts()
	var wantAll []string
	for _, a := range all {
		wantAll = append(wantAll, a.ID)
	}
	tests := []struct {
		top, skip string
		from, to  int
	}{
		{"10", "", 0, 10},
		{"10", "10", 10, 20},
		{"", "495", 495, 500},
		{"0", "", 0, 0},
		{"100", "1000", 500, 500},
		{"10000", "", 0, 500},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("top=%s,skip=%s", tt.top, tt.skip), func(t *testing.T) {
			var q []string
			if tt.top != "" {
				q = append(q, "$top", tt.top)
			}
			if tt.skip != "" {
				q = append(q, "$skip", tt.skip)
			}
			got, r := list[idOf](t, f, filterPath("/api/alerts", q...))
			if r.status != 0 && r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			want := wantAll[min(tt.from, len(wantAll)):min(tt.to, len(wantAll))]
			if diff := cmp.Diff(want, ids(got), cmpEmpty); diff != "" {
				t.Errorf("ListAlerts(top=%s skip=%s) mismatch (-want +got):\n%s", tt.top, tt.skip, diff)
			}
		})
	}
	// Pages concatenate to the whole, newest first.
	var paged []string
	for skip := 0; ; skip += 64 {
		got, _ := list[idOf](t, f, filterPath("/api/alerts", "$top", "64", "$skip", fmt.Sprint(skip)))
		paged = append(paged, ids(got)...)
		if len(got) < 64 {
			break
		}
	}
	if diff := cmp.Diff(wantAll, paged); diff != "" {
		t.Errorf("paging through alerts mismatch (-want +got):\n%s", diff)
	}
	for i := 1; i < len(all); i++ {
		if all[i].AlertCreationTime.After(all[i-1].AlertCreationTime) {
			t.Fatalf("alerts not newest first at %d", i)
		}
	}
}

var cmpEmpty = cmp.Transformer("nilEmpty", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})

func TestAlertsEvidenceExpansion(t *testing.T) {
	f := newFixture(t, Options{})
	type withEvidence struct {
		ID       string            `json:"id"`
		Evidence []json.RawMessage `json:"evidence"`
	}
	filter := "id eq '" + SampleAlertID + "'"
	plain, _ := list[withEvidence](t, f, filterPath("/api/alerts", "$filter", filter))
	expanded, _ := list[withEvidence](t, f, filterPath("/api/alerts", "$filter", filter, "$expand", "evidence"))
	if len(plain) != 1 || len(expanded) != 1 {
		t.Fatalf("ListAlerts(%q) = %d and %d alerts, want 1 each", filter, len(plain), len(expanded))
	}
	if plain[0].Evidence == nil || len(plain[0].Evidence) != 0 {
		t.Errorf("ListAlerts without $expand evidence = %v, want []", plain[0].Evidence)
	}
	if len(expanded[0].Evidence) != 3 {
		t.Errorf("ListAlerts with $expand=evidence has %d evidence, want 3", len(expanded[0].Evidence))
	}
	// Deterministic: same evidence twice.
	again, _ := list[withEvidence](t, f, filterPath("/api/alerts", "$filter", filter, "$expand", "evidence"))
	if diff := cmp.Diff(string(expanded[0].Evidence[2]), string(again[0].Evidence[2])); diff != "" {
		t.Errorf("evidence not deterministic (-first +second):\n%s", diff)
	}
}

func TestGetAlert(t *testing.T) {
	f := newFixture(t, Options{})
	r := f.get(t, "/api/alerts/"+SampleAlertID)
	if r.status != http.StatusOK {
		t.Fatalf("GetAlert(%s) status = %d, want 200", SampleAlertID, r.status)
	}
	var a struct {
		Context  string `json:"@odata.context"`
		ID       string `json:"id"`
		Assigned string `json:"assignedTo"`
		Evidence []any  `json:"evidence"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	if a.ID != SampleAlertID || a.Assigned != QuoteAssignee || len(a.Evidence) != 3 || !strings.HasSuffix(a.Context, "#Alerts/$entity") {
		t.Errorf("GetAlert(%s) = %+v", SampleAlertID, a)
	}
	r = f.get(t, "/api/alerts/da000_1")
	if r.status != http.StatusNotFound || r.errorBody(t).Error.Code != CodeResourceNotFound {
		t.Errorf("GetAlert(unknown) = %d %s, want 404 ResourceNotFound", r.status, r.body)
	}
}

func TestAddAlerts(t *testing.T) {
	f := newFixture(t, Options{Seed: &SeedOptions{Alerts: 0}})
	if n := f.srv.AlertCount(); n != 0 {
		t.Fatalf("AlertCount() = %d, want 0", n)
	}
	f.srv.AddAlerts(
		Alert{ID: "a1", Severity: SeverityHigh, Status: AlertStatusNew, Title: "tab\there \"quoted\" \u2028 <ok>", AlertCreationTime: testBase.Add(-time.Hour)},
		Alert{ID: "a2", Severity: SeverityLow, Status: AlertStatusNew, AlertCreationTime: testBase, Evidence: []Evidence{{EntityType: "Ip", IPAddress: "10.0.0.1"}}},
	)
	type small struct {
		ID       string `json:"id"`
		Title    string `json:"title"`
		Evidence []struct {
			EntityType string  `json:"entityType"`
			IPAddress  *string `json:"ipAddress"`
			SHA1       *string `json:"sha1"`
		} `json:"evidence"`
	}
	got, _ := list[small](t, f, "/api/alerts?$expand=evidence")
	if len(got) != 2 || got[0].ID != "a2" || got[1].ID != "a1" {
		t.Fatalf("ListAlerts() = %+v, want a2 then a1", got)
	}
	if got[1].Title != "tab\there \"quoted\" \u2028 <ok>" {
		t.Errorf("title round trip = %q", got[1].Title)
	}
	if ev := got[0].Evidence; len(ev) != 1 || ev[0].IPAddress == nil || *ev[0].IPAddress != "10.0.0.1" || ev[0].SHA1 != nil {
		t.Errorf("evidence = %+v, want one Ip evidence with null sha1", ev)
	}
}
