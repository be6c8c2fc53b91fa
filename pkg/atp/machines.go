package atp

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Machine is a device known to Defender. Times absent or null are zero.
type Machine struct {
	ID                    string      `json:"id"` // 40 hexadecimal characters
	ComputerDNSName       string      `json:"computerDnsName"`
	FirstSeen             time.Time   `json:"firstSeen"`
	LastSeen              time.Time   `json:"lastSeen"`
	OSPlatform            string      `json:"osPlatform"`
	OSVersion             string      `json:"osVersion"`
	OSProcessor           string      `json:"osProcessor"`
	Version               string      `json:"version"`
	OSBuild               int64       `json:"osBuild"`
	LastIPAddress         string      `json:"lastIpAddress"`
	LastExternalIPAddress string      `json:"lastExternalIpAddress"`
	HealthStatus          string      `json:"healthStatus"` // Active, Inactive, ImpairedCommunication, NoSensorData...
	OnboardingStatus      string      `json:"onboardingStatus"`
	RBACGroupID           int64       `json:"rbacGroupId"`
	RBACGroupName         string      `json:"rbacGroupName"`
	RiskScore             string      `json:"riskScore"`     // None, Informational, Low, Medium, High
	ExposureLevel         string      `json:"exposureLevel"` // None, Low, Medium, High
	DeviceValue           string      `json:"deviceValue"`   // Normal, Low, High
	IsAADJoined           bool        `json:"isAadJoined"`
	AADDeviceID           string      `json:"aadDeviceId"`
	MachineTags           []string    `json:"machineTags"`
	DefenderAVStatus      string      `json:"defenderAvStatus"`
	IPAddresses           []IPAddress `json:"ipAddresses"`
	// IsPotentialDuplication is set on a record Defender suspects is a
	// duplicate of another device's record.
	IsPotentialDuplication bool `json:"isPotentialDuplication"`
	// MergedIntoMachineID is the surviving record's ID when this record was
	// merged into another.
	MergedIntoMachineID string `json:"mergedIntoMachineId"`
}

// IPAddress is one network address of a machine.
type IPAddress struct {
	IPAddress         string `json:"ipAddress"`
	MACAddress        string `json:"macAddress"`
	Type              string `json:"type"`
	OperationalStatus string `json:"operationalStatus"`
}

// IsDuplicate reports whether m is a merged or potential-duplicate record,
// one that a caller acting on "the" device should set aside.
func (m *Machine) IsDuplicate() bool {
	return m.IsPotentialDuplication || m.MergedIntoMachineID != ""
}

// ListMachinesOptions select machines. The zero value lists Defender's
// default page of all machines.
type ListMachinesOptions struct {
	// Filter is a raw OData $filter; build string literals with ODataString.
	Filter string
	Top    int // page size, 1..10000; 0 means Defender's default
	Skip   int // machines to skip, >= 0
}

// GetMachine returns the machine with the given ID (40 hex characters).
func (c *Client) GetMachine(ctx context.Context, id string) (*Machine, error) {
	if err := checkMachineID("machineID", id); err != nil {
		return nil, fmt.Errorf("atp: get machine: %w", err)
	}
	cl := &call{op: "get machine " + id, method: http.MethodGet, path: "/api/machines/" + id}
	var m Machine
	if err := c.do(ctx, cl, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ListMachines returns one page of machines matching o (nil: all).
func (c *Client) ListMachines(ctx context.Context, o *ListMachinesOptions) ([]Machine, error) {
	if o == nil {
		o = &ListMachinesOptions{}
	}
	if err := validatePage(o.Top, o.Skip); err != nil {
		return nil, fmt.Errorf("atp: list machines: %w", err)
	}
	return c.listMachines(ctx, "list machines", o.Filter, o.Top, o.Skip)
}

func (c *Client) listMachines(ctx context.Context, op, filter string, top, skip int) ([]Machine, error) {
	cl := &call{op: op, method: http.MethodGet, path: "/api/machines", query: pageQuery(nil, filter, top, skip)}
	var page struct {
		Value []Machine `json:"value"`
	}
	if err := c.do(ctx, cl, &page); err != nil {
		return nil, err
	}
	return page.Value, nil
}

// allMachines pages through every machine matching filter.
func (c *Client) allMachines(ctx context.Context, op, filter string) ([]Machine, error) {
	var all []Machine
	for skip := 0; ; {
		page, err := c.listMachines(ctx, op, filter, MaxTop, skip)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < MaxTop {
			return all, nil
		}
		skip += len(page)
	}
}

// MachineNameFilter returns the $filter FindMachinesByName sends for name:
// computerDnsName eq '<fqdn>' when name has a dot, else
// startswith(computerDnsName,'<label>'), the name lowercased.
func MachineNameFilter(name string) (string, error) {
	n, err := normalizeName(name)
	if err != nil {
		return "", err
	}
	if strings.Contains(n, ".") {
		return "computerDnsName eq " + ODataString(n), nil
	}
	return "startswith(computerDnsName," + ODataString(n) + ")", nil
}

func normalizeName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", argErr("name", "not valid UTF-8")
	}
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if n == "" || len(n) > 255 {
		return "", argErr("name", "want 1 to 255 characters")
	}
	for _, r := range n {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", argErr("name", "contains white space or control characters")
		}
	}
	if strings.HasPrefix(n, ".") || strings.Contains(n, "..") {
		return "", argErr("name", "empty label")
	}
	return n, nil
}

// FindMachinesByName returns every machine record whose computerDnsName is
// name: compared case-insensitively with the whole FQDN when name has a
// dot, else with the host label (the part before the first dot). Merged and
// potential-duplicate records are included; see [Machine.IsDuplicate].
func (c *Client) FindMachinesByName(ctx context.Context, name string) ([]Machine, error) {
	filter, err := MachineNameFilter(name)
	if err != nil {
		return nil, fmt.Errorf("atp: find machines by name: %w", err)
	}
	n, _ := normalizeName(name)
	all, err := c.allMachines(ctx, "find machines by name", filter)
	if err != nil {
		return nil, err
	}
	fqdn := strings.Contains(n, ".")
	out := all[:0]
	for _, m := range all {
		dns := strings.ToLower(strings.TrimSuffix(m.ComputerDNSName, "."))
		if dns == n || (!fqdn && strings.HasPrefix(dns, n+".")) {
			out = append(out, m)
		}
	}
	return out, nil
}

// FindMachinesByTag returns every machine carrying tag.
func (c *Client) FindMachinesByTag(ctx context.Context, tag string) ([]Machine, error) {
	if tag == "" || len(tag) > 200 || !utf8.ValidString(tag) {
		return nil, fmt.Errorf("atp: find machines by tag: %w", argErr("tag", "want 1 to 200 characters of UTF-8"))
	}
	return c.allMachines(ctx, "find machines by tag", "machineTags/any(tag: tag eq "+ODataString(tag)+")")
}

// FindMachinesByIP returns the machines seen with the internal address ip
// within 15 minutes either side of at (zero means now), which Defender
// requires to be within the last 30 days.
func (c *Client) FindMachinesByIP(ctx context.Context, ip netip.Addr, at time.Time) ([]Machine, error) {
	const op = "find machines by ip"
	if !ip.IsValid() || ip.Zone() != "" {
		return nil, fmt.Errorf("atp: %s: %w", op, argErr("ip", "want an IP address without zone"))
	}
	now := c.now()
	if at.IsZero() {
		at = now
	}
	if at.Before(now.Add(-30*24*time.Hour)) || at.After(now.Add(5*time.Minute)) {
		return nil, fmt.Errorf("atp: %s: %w", op, argErr("timestamp", "want a time within the last 30 days"))
	}
	ts := odataTime(at)
	cl := &call{
		op:     op,
		method: http.MethodGet,
		path:   "/api/machines/findbyip(ip=" + ODataString(ip.Unmap().String()) + ",timestamp=" + ts + ")",
	}
	var page struct {
		Value []Machine `json:"value"`
	}
	if err := c.do(ctx, cl, &page); err != nil {
		return nil, err
	}
	return page.Value, nil
}
