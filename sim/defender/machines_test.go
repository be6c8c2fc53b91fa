package defender

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSeedFixedRecords(t *testing.T) {
	f := newFixture(t, Options{})
	hex40 := regexp.MustCompile(`^[0-9a-f]{40}$`)
	for _, m := range f.srv.Machines() {
		if !hex40.MatchString(m.ID) {
			t.Errorf("machine id %q is not 40 lowercase hex", m.ID)
		}
	}
	if n := len(f.srv.Machines()); n != 50+11 {
		t.Errorf("len(Machines()) = %d, want 61", n)
	}
	if n := f.srv.AlertCount(); n != 500 {
		t.Errorf("AlertCount() = %d, want 500", n)
	}
	old, _ := f.srv.Machine(MergedOldMachineID)
	if !old.IsPotentialDuplication || old.MergedIntoMachineID != MergedNewMachineID || old.ComputerDNSName != MergedDNSName {
		t.Errorf("Machine(MergedOldMachineID) = %+v, want a duplicate merged into %s", old, MergedNewMachineID)
	}
	dc, _ := f.srv.Machine(DCMachineID)
	if !slices.Contains(dc.MachineTags, ProtectedTag) || !slices.Contains(dc.MachineTags, DCTag) {
		t.Errorf("Machine(DCMachineID).MachineTags = %v", dc.MachineTags)
	}
	iso, _ := f.srv.Machine(IsolatedMachineID)
	if !iso.Isolated {
		t.Errorf("Machine(IsolatedMachineID).Isolated = false, want true")
	}
	labels := 0
	for _, m := range f.srv.Machines() {
		if strings.SplitN(m.ComputerDNSName, ".", 2)[0] == UniqueHostLabel {
			labels++
		}
	}
	if labels != 1 {
		t.Errorf("machines with host label %q = %d, want 1", UniqueHostLabel, labels)
	}

	// Deterministic: a second server with the same seed and base has the same data.
	g := newFixture(t, Options{})
	if diff := cmp.Diff(f.srv.Machines(), g.srv.Machines()); diff != "" {
		t.Errorf("seed not deterministic (-first +second):\n%s", diff)
	}
	a1, a2 := f.srv.Alerts(), g.srv.Alerts()
	if len(a1) != len(a2) || a1[17].ID != a2[17].ID || a1[300].Title != a2[300].Title {
		t.Errorf("alert seed not deterministic")
	}
	h := newFixture(t, Options{Seed: &SeedOptions{Machines: 5, Alerts: 20, Seed: 2}})
	if n, a := len(h.srv.Machines()), h.srv.AlertCount(); n != 16 || a != 20 {
		t.Errorf("SeedOptions{5,20}: %d machines, %d alerts; want 16, 20", n, a)
	}
}

func TestListMachinesFilter(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	all := f.srv.Machines()
	cut := testBase.Add(-3 * time.Hour)
	tests := []struct {
		filter string
		want   func(m Machine) bool
	}{
		{"computerDnsName eq '" + AmbiguousDNSName + "'", func(m Machine) bool { return m.ComputerDNSName == AmbiguousDNSName }},
		{"computerDnsName eq '" + strings.ToUpper(UniqueFQDN) + "'", func(m Machine) bool { return m.ComputerDNSName == UniqueFQDN }},
		{"ComputerDnsName ne '" + AmbiguousDNSName + "'", func(m Machine) bool { return m.ComputerDNSName != AmbiguousDNSName }},
		{"startswith(computerDnsName,'" + UniqueHostLabel + "')", func(m Machine) bool { return strings.HasPrefix(m.ComputerDNSName, UniqueHostLabel) }},
		{"startswith(computerDnsName,'laptop-merged')", func(m Machine) bool { return strings.HasPrefix(m.ComputerDNSName, "laptop-merged") }},
		{"lastIpAddress eq '" + KnownIP + "'", func(m Machine) bool { return m.LastIPAddress == KnownIP }},
		{"healthStatus eq 'Inactive'", func(m Machine) bool { return m.HealthStatus == "Inactive" }},
		{"healthStatus ne 'Active' and rbacGroupId eq 150", func(m Machine) bool { return m.HealthStatus != "Active" && m.RBACGroupID == 150 }},
		{"machineTags/any(tag: tag eq '" + ProtectedTag + "')", func(m Machine) bool { return slices.Contains(m.MachineTags, ProtectedTag) }},
		{"machineTags/any(t: t eq 'dc')", func(m Machine) bool { return slices.Contains(m.MachineTags, DCTag) }},
		{"machineTags/any(tag: tag eq 'it''s-lab')", func(m Machine) bool { return slices.Contains(m.MachineTags, QuoteTag) }},
		{"machineTags/any(tag: tag eq 'DC' or tag eq 'Finance')", func(m Machine) bool {
			return slices.Contains(m.MachineTags, DCTag) || slices.Contains(m.MachineTags, "Finance")
		}},
		{"id eq '" + DCMachineID + "'", func(m Machine) bool { return m.ID == DCMachineID }},
		{"id in ('" + DCMachineID + "','" + PayrollMachineID + "')", func(m Machine) bool { return m.ID == DCMachineID || m.ID == PayrollMachineID }},
		{"lastSeen gt " + cut.Format(time.RFC3339), func(m Machine) bool { return m.LastSeen.After(cut) }},
		{"lastSeen lt " + cut.Format(time.RFC3339) + " or osPlatform eq 'Linux'", func(m Machine) bool { return m.LastSeen.Before(cut) || m.OSPlatform == "Linux" }},
		{"aadDeviceId ne null", func(m Machine) bool { return m.AADDeviceID != "" }},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			var want []string
			for _, m := range all {
				if tt.want(m) {
					want = append(want, m.ID)
				}
			}
			got, r := list[idOf](t, f, filterPath("/api/machines", "$filter", tt.filter))
			if r.status != 0 && r.status != http.StatusOK {
				t.Fatalf("ListMachines(%q) status = %d %s", tt.filter, r.status, r.body)
			}
			if diff := cmp.Diff(want, ids(got), cmpEmpty); diff != "" {
				t.Errorf("ListMachines(%q) mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
	if got, _ := list[idOf](t, f, filterPath("/api/machines", "$filter", "computerDnsName eq '"+AmbiguousDNSName+"'")); len(got) != 2 {
		t.Errorf("ambiguous name matches %d machines, want 2", len(got))
	}

	// Paging.
	got, _ := list[idOf](t, f, "/api/machines?$top=5&$skip=3")
	var want []string
	for _, m := range all[3:8] {
		want = append(want, m.ID)
	}
	if diff := cmp.Diff(want, ids(got)); diff != "" {
		t.Errorf("ListMachines($top=5&$skip=3) mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"$top=10001", "$filter=machineTags eq 'DC'", "$filter=title eq 'x'", "$filter=machineTags/all(t: t eq 'x')", "$expand=evidence"} {
		if r := f.get(t, "/api/machines?"+strings.ReplaceAll(bad, " ", "%20")); r.status != http.StatusBadRequest {
			t.Errorf("ListMachines(%s) status = %d, want 400", bad, r.status)
		}
	}
}

func TestGetMachine(t *testing.T) {
	f := newFixture(t, Options{})
	tests := []struct {
		path   string
		status int
		id     string
	}{
		{"/api/machines/" + DCMachineID, 200, DCMachineID},
		{"/api/machines/" + strings.ToUpper(DCMachineID), 200, DCMachineID},
		{"/API/Machines/" + DCMachineID, 200, DCMachineID},
		{"/api/machines/" + UniqueFQDN, 200, UniqueMachineID},
		{"/api/machines/" + MergedDNSName, 200, MergedNewMachineID},
		{"/api/machines/0000000000000000000000000000000000000000", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := f.get(t, tt.path)
			if r.status != tt.status {
				t.Fatalf("GET %s status = %d, want %d", tt.path, r.status, tt.status)
			}
			if tt.status == 404 {
				if e := r.errorBody(t); e.Error.Code != CodeResourceNotFound {
					t.Errorf("GET %s code = %q, want ResourceNotFound", tt.path, e.Error.Code)
				}
				return
			}
			var m idOf
			mustJSON(t, r.body, &m)
			if m.ID != tt.id {
				t.Errorf("GET %s id = %q, want %q", tt.path, m.ID, tt.id)
			}
		})
	}
}

func TestFindMachinesByIP(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	at := func(d time.Duration) string { return testBase.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name   string
		seg    string
		status int
		want   []string
	}{
		{"known ip now", fmt.Sprintf("ip='%s',timestamp=%s", KnownIP, at(0)), 200, []string{KnownIPMachineID}},
		{"known ipv6", fmt.Sprintf("ip='%s',timestamp=%s", KnownIPv6, at(-time.Hour)), 200, []string{KnownIPMachineID}},
		{"moved ip, old owner", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-72*time.Hour)), 200, []string{MovedIPOldMachineID}},
		{"moved ip, new owner", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-time.Hour)), 200, []string{MovedIPNewMachineID}},
		{"moved ip, gap", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-47*time.Hour-30*time.Minute)), 200, []string{}},
		{"window start 14m", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-48*time.Hour+14*time.Minute)), 200, []string{MovedIPOldMachineID}},
		{"window start 16m", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-48*time.Hour+16*time.Minute)), 200, []string{}},
		{"window end 14m", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-47*time.Hour-14*time.Minute)), 200, []string{MovedIPNewMachineID}},
		{"window end 16m", fmt.Sprintf("ip='%s',timestamp=%s", MovedIP, at(-47*time.Hour-16*time.Minute)), 200, []string{}},
		{"unknown ip", fmt.Sprintf("ip='10.99.99.99',timestamp=%s", at(0)), 200, []string{}},
		{"31 days old", fmt.Sprintf("ip='%s',timestamp=%s", KnownIP, at(-31*24*time.Hour)), 400, nil},
		{"future", fmt.Sprintf("ip='%s',timestamp=%s", KnownIP, at(2*time.Hour)), 400, nil},
		{"bad ip", fmt.Sprintf("ip='10.1.2',timestamp=%s", at(0)), 400, nil},
		{"unquoted ip", fmt.Sprintf("ip=%s,timestamp=%s", KnownIP, at(0)), 400, nil},
		{"missing timestamp", fmt.Sprintf("ip='%s'", KnownIP), 400, nil},
		{"bad timestamp", fmt.Sprintf("ip='%s',timestamp=yesterday", KnownIP), 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/machines/findbyip(" + tt.seg + ")"
			got, r := list[idOf](t, f, path)
			if r.status != 0 && r.status != tt.status || r.status == 0 && tt.status != 200 {
				t.Fatalf("FindByIP(%s) status = %d, want %d (%s)", tt.seg, r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if e := r.errorBody(t); e.Error.Code == "" {
					t.Errorf("FindByIP(%s) error has no code", tt.seg)
				}
				return
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("FindByIP(%s) mismatch (-want +got):\n%s", tt.seg, diff)
			}
		})
	}
}
