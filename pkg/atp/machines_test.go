package atp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const machineJSON = `{
  "id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
  "computerDnsName": "mymachine1.contoso.com",
  "firstSeen": "2018-08-02T14:55:03.7791856Z",
  "lastSeen": "2018-08-02T14:55:03.7791856Z",
  "osPlatform": "Windows10",
  "version": "1709",
  "osProcessor": "x64",
  "lastIpAddress": "172.17.230.209",
  "lastExternalIpAddress": "167.220.196.71",
  "osBuild": 18209,
  "healthStatus": "Active",
  "rbacGroupId": 140,
  "rbacGroupName": "The-A-Team",
  "riskScore": "Low",
  "exposureLevel": "Medium",
  "isAadJoined": true,
  "aadDeviceId": "80fe8ff8-2624-418e-9591-41f0491218f9",
  "machineTags": ["test tag 1", "test tag 2"],
  "isPotentialDuplication": false,
  "mergedIntoMachineId": null,
  "ipAddresses": [{"ipAddress": "172.17.230.209", "macAddress": "00155D6E3F0A", "type": "Ethernet", "operationalStatus": "Up"}]
}`

func TestGetMachine(t *testing.T) {
	rec := &recorder{body: machineJSON}
	c, _ := newTestClient(t, rec, nil, nil)
	m, err := c.GetMachine(context.Background(), machineID1)
	if err != nil {
		t.Fatalf("GetMachine() = %v", err)
	}
	if rec.last.Method != "GET" || rec.last.Path != "/api/machines/"+machineID1 {
		t.Errorf("request = %s %s", rec.last.Method, rec.last.Path)
	}
	seen := time.Date(2018, 8, 2, 14, 55, 3, 779185600, time.UTC)
	want := &Machine{
		ID: machineID1, ComputerDNSName: "mymachine1.contoso.com", FirstSeen: seen, LastSeen: seen,
		OSPlatform: "Windows10", Version: "1709", OSProcessor: "x64", LastIPAddress: "172.17.230.209",
		LastExternalIPAddress: "167.220.196.71", OSBuild: 18209, HealthStatus: "Active", RBACGroupID: 140,
		RBACGroupName: "The-A-Team", RiskScore: "Low", ExposureLevel: "Medium", IsAADJoined: true,
		AADDeviceID: "80fe8ff8-2624-418e-9591-41f0491218f9", MachineTags: []string{"test tag 1", "test tag 2"},
		IPAddresses: []IPAddress{{IPAddress: "172.17.230.209", MACAddress: "00155D6E3F0A", Type: "Ethernet", OperationalStatus: "Up"}},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("GetMachine() mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "abc", machineID1 + "0", strings.Repeat("z", 40), "../../alerts/xxxxxxxxxxxxxxxxxxxxxxxxxxx"} {
		_, err := c.GetMachine(context.Background(), bad)
		var ae *ArgumentError
		if !errors.As(err, &ae) {
			t.Errorf("GetMachine(%q) = %v, want *ArgumentError", bad, err)
		}
	}
}

func TestMachineIsDuplicate(t *testing.T) {
	tests := []struct {
		m    Machine
		want bool
	}{
		{Machine{}, false},
		{Machine{IsPotentialDuplication: true}, true},
		{Machine{MergedIntoMachineID: machineID2}, true},
	}
	for _, tt := range tests {
		if got := tt.m.IsDuplicate(); got != tt.want {
			t.Errorf("%+v.IsDuplicate() = %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestMachineNameFilter(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "WS-01", want: "startswith(computerDnsName,'ws-01')"},
		{in: "ws-01.Contoso.com", want: "computerDnsName eq 'ws-01.contoso.com'"},
		{in: "ws-01.contoso.com.", want: "computerDnsName eq 'ws-01.contoso.com'"},
		{in: "o'brien", want: "startswith(computerDnsName,'o''brien')"},
		{in: "x') or (1 eq 1", wantErr: true},
		{in: "x')or(true", want: "startswith(computerDnsName,'x'')or(true')"},
		{in: "", wantErr: true},
		{in: "  ", wantErr: true},
		{in: ".", wantErr: true},
		{in: "a..b", wantErr: true},
		{in: ".a", wantErr: true},
		{in: "a\nb", wantErr: true},
		{in: "a\u202eb", wantErr: true},
		{in: "bad\xff", wantErr: true},
		{in: strings.Repeat("a", 256), wantErr: true},
	}
	for _, tt := range tests {
		got, err := MachineNameFilter(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("MachineNameFilter(%q) = %q, %v, want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFindMachinesByName(t *testing.T) {
	mk := func(id, name string, dup bool) string {
		return fmt.Sprintf(`{"id":%q,"computerDnsName":%q,"isPotentialDuplication":%v}`, id, name, dup)
	}
	id := func(i int) string { return fmt.Sprintf("%040x", i) }
	answer := `{"value":[` + strings.Join([]string{
		mk(id(1), "ws-01.contoso.com", false),
		mk(id(2), "WS-01.fabrikam.com", true),
		mk(id(3), "ws-010.contoso.com", false),
		mk(id(4), "ws-01", false),
		mk(id(5), "ws-01x", false),
		mk(id(6), "ws-01.contoso.com.", false),
	}, ",") + `]}`
	tests := []struct {
		name       string
		in         string
		wantFilter string
		wantIDs    []string
	}{
		{name: "label", in: "WS-01", wantFilter: "startswith(computerDnsName,'ws-01')", wantIDs: []string{id(1), id(2), id(4), id(6)}},
		{name: "fqdn", in: "ws-01.CONTOSO.com", wantFilter: "computerDnsName eq 'ws-01.contoso.com'", wantIDs: []string{id(1), id(6)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{body: answer}
			c, _ := newTestClient(t, rec, nil, nil)
			ms, err := c.FindMachinesByName(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("FindMachinesByName(%q) = %v", tt.in, err)
			}
			var ids []string
			for _, m := range ms {
				ids = append(ids, m.ID)
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("FindMachinesByName(%q) IDs mismatch (-want +got):\n%s", tt.in, diff)
			}
			wantQuery := map[string][]string{"$filter": {tt.wantFilter}, "$top": {"10000"}}
			if diff := cmp.Diff(wantQuery, rec.last.Query); diff != "" || rec.last.Path != "/api/machines" {
				t.Errorf("request %s?%v mismatch (-want +got):\n%s", rec.last.Path, rec.last.Query, diff)
			}
		})
	}
	c, _ := newTestClient(t, &recorder{}, nil, nil)
	var ae *ArgumentError
	if _, err := c.FindMachinesByName(context.Background(), "a b"); !errors.As(err, &ae) {
		t.Errorf("FindMachinesByName(%q) = %v, want *ArgumentError", "a b", err)
	}
}

func TestFindMachinesPaging(t *testing.T) {
	var skips []int
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		skip, _ := strconv.Atoi(r.URL.Query().Get("$skip"))
		skips = append(skips, skip)
		n := MaxTop
		if skip >= MaxTop {
			n = 3
		}
		var vals []string
		for i := range n {
			vals = append(vals, fmt.Sprintf(`{"id":"%040x","computerDnsName":"web.contoso.com","machineTags":["DC"]}`, skip+i))
		}
		fmt.Fprintf(w, `{"value":[%s]}`, strings.Join(vals, ","))
	})
	c, _ := newTestClient(t, h, nil, nil)
	ms, err := c.FindMachinesByTag(context.Background(), "DC")
	if err != nil || len(ms) != MaxTop+3 {
		t.Fatalf("FindMachinesByTag() = %d machines, %v; want %d", len(ms), err, MaxTop+3)
	}
	if diff := cmp.Diff([]int{0, MaxTop}, skips); diff != "" {
		t.Errorf("skips mismatch (-want +got):\n%s", diff)
	}
}

func TestFindMachinesByTag(t *testing.T) {
	rec := &recorder{body: `{"value":[` + machineJSON + `]}`}
	c, _ := newTestClient(t, rec, nil, nil)
	ms, err := c.FindMachinesByTag(context.Background(), "it's protected")
	if err != nil || len(ms) != 1 {
		t.Fatalf("FindMachinesByTag() = %v, %v", ms, err)
	}
	if got, want := rec.last.Query["$filter"], []string{"machineTags/any(tag: tag eq 'it''s protected')"}; !cmp.Equal(got, want) {
		t.Errorf("$filter = %q, want %q", got, want)
	}
	for _, bad := range []string{"", strings.Repeat("t", 201), "\xff"} {
		var ae *ArgumentError
		if _, err := c.FindMachinesByTag(context.Background(), bad); !errors.As(err, &ae) {
			t.Errorf("FindMachinesByTag(%q) = %v, want *ArgumentError", bad, err)
		}
	}
}

func TestFindMachinesByIP(t *testing.T) {
	now := time.Date(2024, 9, 22, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		ip       netip.Addr
		at       time.Time
		wantPath string
		wantErr  string // ArgumentError.Name
	}{
		{name: "v4", ip: netip.MustParseAddr("10.1.2.3"), at: time.Date(2024, 9, 22, 8, 44, 5, 900, time.UTC),
			wantPath: "/api/machines/findbyip(ip='10.1.2.3',timestamp=2024-09-22T08:44:05Z)"},
		{name: "zero time means now", ip: netip.MustParseAddr("10.1.2.3"),
			wantPath: "/api/machines/findbyip(ip='10.1.2.3',timestamp=2024-09-22T09:00:00Z)"},
		{name: "local time to utc", ip: netip.MustParseAddr("192.168.0.7"), at: time.Date(2024, 9, 22, 10, 0, 0, 0, time.FixedZone("CET", 7200)),
			wantPath: "/api/machines/findbyip(ip='192.168.0.7',timestamp=2024-09-22T08:00:00Z)"},
		{name: "v6", ip: netip.MustParseAddr("fe80::1"), at: now,
			wantPath: "/api/machines/findbyip(ip='fe80::1',timestamp=2024-09-22T09:00:00Z)"},
		{name: "v4 in v6", ip: netip.MustParseAddr("::ffff:10.0.0.1"), at: now,
			wantPath: "/api/machines/findbyip(ip='10.0.0.1',timestamp=2024-09-22T09:00:00Z)"},
		{name: "invalid ip", ip: netip.Addr{}, at: now, wantErr: "ip"},
		{name: "zone", ip: netip.MustParseAddr("fe80::1%eth0"), at: now, wantErr: "ip"},
		{name: "too old", ip: netip.MustParseAddr("10.1.2.3"), at: now.Add(-31 * 24 * time.Hour), wantErr: "timestamp"},
		{name: "future", ip: netip.MustParseAddr("10.1.2.3"), at: now.Add(time.Hour), wantErr: "timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath, gotRawPath string
			h := jsonHandler(200, `{"value":[`+machineJSON+`]}`, func(r *http.Request) {
				gotPath, gotRawPath = r.URL.Path, r.RequestURI
			})
			c, _ := newTestClient(t, h, nil, &Options{Now: func() time.Time { return now }})
			ms, err := c.FindMachinesByIP(context.Background(), tt.ip, tt.at)
			if tt.wantErr != "" {
				var ae *ArgumentError
				if !errors.As(err, &ae) || ae.Name != tt.wantErr {
					t.Errorf("FindMachinesByIP(%v, %v) = %v, want *ArgumentError for %s", tt.ip, tt.at, err, tt.wantErr)
				}
				if gotPath != "" {
					t.Errorf("FindMachinesByIP made a request for an invalid argument")
				}
				return
			}
			if err != nil || len(ms) != 1 {
				t.Fatalf("FindMachinesByIP(%v, %v) = %v, %v", tt.ip, tt.at, ms, err)
			}
			if gotPath != tt.wantPath || gotRawPath != tt.wantPath {
				t.Errorf("path = %q (sent as %q), want %q", gotPath, gotRawPath, tt.wantPath)
			}
		})
	}
}

func TestListMachines(t *testing.T) {
	rec := &recorder{body: `{"value":[` + machineJSON + `]}`}
	c, _ := newTestClient(t, rec, nil, nil)
	filter := "healthStatus eq 'Active' and riskScore eq 'High'"
	ms, err := c.ListMachines(context.Background(), &ListMachinesOptions{Filter: filter, Top: 5, Skip: 10})
	if err != nil || len(ms) != 1 {
		t.Fatalf("ListMachines() = %v, %v", ms, err)
	}
	want := map[string][]string{"$filter": {filter}, "$top": {"5"}, "$skip": {"10"}}
	if diff := cmp.Diff(want, rec.last.Query); diff != "" {
		t.Errorf("query mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.ListMachines(context.Background(), nil); err != nil || rec.last.RawQuery != "" {
		t.Errorf("ListMachines(nil) = %v with query %q, want no query", err, rec.last.RawQuery)
	}
	var ae *ArgumentError
	if _, err := c.ListMachines(context.Background(), &ListMachinesOptions{Top: 10001}); !errors.As(err, &ae) {
		t.Errorf("ListMachines(Top 10001) = %v, want *ArgumentError", err)
	}
}
