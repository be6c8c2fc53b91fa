package defender

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Machine is a Defender device record, serialized with Defender's field
// names. Nullable fields are null on the wire when empty: "" strings
// (OSVersion, AADDeviceID, MergedIntoMachineID) and a 0 OSBuild.
//
// Isolated, CodeRestricted and IPHistory are simulator state and never
// serialized.
type Machine struct {
	ID                     string
	ComputerDNSName        string
	FirstSeen              time.Time
	LastSeen               time.Time
	OSPlatform             string
	OSVersion              string
	OSProcessor            string
	Version                string
	LastIPAddress          string
	LastExternalIPAddress  string
	AgentVersion           string
	OSBuild                int64
	HealthStatus           string
	DeviceValue            string
	RBACGroupID            int64
	RBACGroupName          string
	RiskScore              string
	ExposureLevel          string
	IsAADJoined            bool
	AADDeviceID            string
	MachineTags            []string
	DefenderAVStatus       string
	OnboardingStatus       string
	OSArchitecture         string
	ManagedBy              string
	ManagedByStatus        string
	IPAddresses            []IPAddress
	IsPotentialDuplication bool
	MergedIntoMachineID    string

	// Isolated is the device's network isolation state. In AddMachine it is
	// the starting state; Server.Machine reports it as completed Isolate and
	// Unisolate actions have left it.
	Isolated bool
	// CodeRestricted is the device's app restriction state, like Isolated
	// for RestrictCodeExecution and UnrestrictCodeExecution actions.
	CodeRestricted bool
	// IPHistory says when the device used which internal IP, for
	// findbyip. Empty means LastIPAddress and IPAddresses were in use from
	// FirstSeen to LastSeen.
	IPHistory []IPSighting
}

// IPAddress is one network interface address of a machine.
type IPAddress struct {
	IPAddress         string `json:"ipAddress"`
	MACAddress        string `json:"macAddress"`
	Type              string `json:"type"`
	OperationalStatus string `json:"operationalStatus"`
}

// IPSighting says a device used IP from From to To (inclusive).
type IPSighting struct {
	IP       string
	From, To time.Time
}

type machineWire struct {
	Context                string      `json:"@odata.context,omitempty"`
	ID                     string      `json:"id"`
	ComputerDNSName        string      `json:"computerDnsName"`
	FirstSeen              time.Time   `json:"firstSeen"`
	LastSeen               time.Time   `json:"lastSeen"`
	OSPlatform             string      `json:"osPlatform"`
	OSVersion              *string     `json:"osVersion"`
	OSProcessor            string      `json:"osProcessor"`
	Version                string      `json:"version"`
	LastIPAddress          string      `json:"lastIpAddress"`
	LastExternalIPAddress  string      `json:"lastExternalIpAddress"`
	AgentVersion           string      `json:"agentVersion"`
	OSBuild                *int64      `json:"osBuild"`
	HealthStatus           string      `json:"healthStatus"`
	DeviceValue            string      `json:"deviceValue"`
	RBACGroupID            int64       `json:"rbacGroupId"`
	RBACGroupName          string      `json:"rbacGroupName"`
	RiskScore              string      `json:"riskScore"`
	ExposureLevel          string      `json:"exposureLevel"`
	IsAADJoined            bool        `json:"isAadJoined"`
	AADDeviceID            *string     `json:"aadDeviceId"`
	MachineTags            []string    `json:"machineTags"`
	DefenderAVStatus       string      `json:"defenderAvStatus"`
	OnboardingStatus       string      `json:"onboardingStatus"`
	OSArchitecture         string      `json:"osArchitecture"`
	ManagedBy              string      `json:"managedBy"`
	ManagedByStatus        string      `json:"managedByStatus"`
	IPAddresses            []IPAddress `json:"ipAddresses"`
	IsPotentialDuplication bool        `json:"isPotentialDuplication"`
	MergedIntoMachineID    *string     `json:"mergedIntoMachineId"`
}

func nullable[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func (m *Machine) wire() machineWire {
	tags := m.MachineTags
	if tags == nil {
		tags = []string{}
	}
	ips := m.IPAddresses
	if ips == nil {
		ips = []IPAddress{}
	}
	return machineWire{
		ID: m.ID, ComputerDNSName: m.ComputerDNSName,
		FirstSeen: m.FirstSeen.UTC(), LastSeen: m.LastSeen.UTC(),
		OSPlatform: m.OSPlatform, OSVersion: nullable(m.OSVersion), OSProcessor: m.OSProcessor,
		Version: m.Version, LastIPAddress: m.LastIPAddress, LastExternalIPAddress: m.LastExternalIPAddress,
		AgentVersion: m.AgentVersion, OSBuild: nullable(m.OSBuild), HealthStatus: m.HealthStatus,
		DeviceValue: m.DeviceValue, RBACGroupID: m.RBACGroupID, RBACGroupName: m.RBACGroupName,
		RiskScore: m.RiskScore, ExposureLevel: m.ExposureLevel, IsAADJoined: m.IsAADJoined,
		AADDeviceID: nullable(m.AADDeviceID), MachineTags: tags, DefenderAVStatus: m.DefenderAVStatus,
		OnboardingStatus: m.OnboardingStatus, OSArchitecture: m.OSArchitecture,
		ManagedBy: m.ManagedBy, ManagedByStatus: m.ManagedByStatus, IPAddresses: ips,
		IsPotentialDuplication: m.IsPotentialDuplication, MergedIntoMachineID: nullable(m.MergedIntoMachineID),
	}
}

// MarshalJSON encodes the machine as Defender does.
func (m Machine) MarshalJSON() ([]byte, error) { return json.Marshal(m.wire()) }

// clone returns a deep copy of m.
func (m *Machine) clone() Machine {
	c := *m
	c.MachineTags = append([]string(nil), m.MachineTags...)
	c.IPAddresses = append([]IPAddress(nil), m.IPAddresses...)
	c.IPHistory = append([]IPSighting(nil), m.IPHistory...)
	return c
}

// seenWith reports whether m used ip at some time within [from, to].
func (m *Machine) seenWith(ip netip.Addr, from, to time.Time) bool {
	match := func(s string) bool {
		a, err := netip.ParseAddr(s)
		return err == nil && a == ip
	}
	if len(m.IPHistory) > 0 {
		for _, h := range m.IPHistory {
			if match(h.IP) && !h.From.After(to) && !h.To.Before(from) {
				return true
			}
		}
		return false
	}
	if m.FirstSeen.After(to) || m.LastSeen.Before(from) {
		return false
	}
	if match(m.LastIPAddress) {
		return true
	}
	for _, a := range m.IPAddresses {
		if match(a.IPAddress) {
			return true
		}
	}
	return false
}

// machineSchema lists the properties $filter accepts on machines.
var machineSchema = schema[Machine]{entity: "Machine", fields: map[string]field[Machine]{
	"id":               {kind: kString, value: func(m *Machine) value { return strVal(m.ID) }},
	"computerdnsname":  {kind: kString, value: func(m *Machine) value { return nullStrVal(m.ComputerDNSName) }},
	"version":          {kind: kString, value: func(m *Machine) value { return nullStrVal(m.Version) }},
	"devicevalue":      {kind: kString, value: func(m *Machine) value { return nullStrVal(m.DeviceValue) }},
	"aaddeviceid":      {kind: kString, value: func(m *Machine) value { return nullStrVal(m.AADDeviceID) }},
	"machinetags":      {kind: kStrings, value: func(m *Machine) value { return stringsVal(m.MachineTags) }},
	"lastseen":         {kind: kTime, value: func(m *Machine) value { return timeVal(m.LastSeen) }},
	"exposurelevel":    {kind: kString, value: func(m *Machine) value { return nullStrVal(m.ExposureLevel) }},
	"onboardingstatus": {kind: kString, value: func(m *Machine) value { return nullStrVal(m.OnboardingStatus) }},
	"lastipaddress":    {kind: kString, value: func(m *Machine) value { return nullStrVal(m.LastIPAddress) }},
	"healthstatus":     {kind: kString, value: func(m *Machine) value { return nullStrVal(m.HealthStatus) }},
	"osplatform":       {kind: kString, value: func(m *Machine) value { return nullStrVal(m.OSPlatform) }},
	"riskscore":        {kind: kString, value: func(m *Machine) value { return nullStrVal(m.RiskScore) }},
	"rbacgroupid":      {kind: kInt, value: func(m *Machine) value { return value{n: m.RBACGroupID} }},
	"ispotentialduplication": {kind: kBool,
		value: func(m *Machine) value { return boolVal(m.IsPotentialDuplication) }},
}}

// writeJSON answers 200 (or status) with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, code: CodeInternalServerError})
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type collection[T any] struct {
	Context string `json:"@odata.context"`
	Value   []T    `json:"value"`
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) *apiError {
	q, err := parseQuery(r.URL.Query(), false)
	if err != nil {
		return toAPIError(err)
	}
	pred, err := compileFilter(q.filter, machineSchema)
	if err != nil {
		return toAPIError(err)
	}
	s.mu.RLock()
	var match []machineWire
	for _, m := range s.machines {
		if pred(m) {
			match = append(match, m.wire())
		}
	}
	s.mu.RUnlock()
	from, to := q.page(len(match))
	writeJSON(w, http.StatusOK, collection[machineWire]{Context: odataContext(r, "Machines"), Value: nonNil(match[from:to])})
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// getMachine answers GET /api/machines/{id}. Like Defender it also accepts
// a computer name: the most recently seen record of that exact
// computerDnsName (case-insensitive) that is not merged into another.
func (s *Server) getMachine(w http.ResponseWriter, r *http.Request, id string) *apiError {
	s.mu.RLock()
	m := s.machineByID[strings.ToLower(id)]
	if m == nil {
		for _, c := range s.machines {
			if strings.EqualFold(c.ComputerDNSName, id) && c.MergedIntoMachineID == "" &&
				(m == nil || c.LastSeen.After(m.LastSeen)) {
				m = c
			}
		}
	}
	var wv machineWire
	if m != nil {
		wv = m.wire()
	}
	s.mu.RUnlock()
	if m == nil {
		return errNotFound("Machine %s was not found", id)
	}
	wv.Context = odataContext(r, "Machines/$entity")
	writeJSON(w, http.StatusOK, wv)
	return nil
}

// findByIPWindow is Defender's documented window around the timestamp.
const findByIPWindow = 15 * time.Minute

// findMachinesByIP answers GET /api/machines/findbyip(ip='…',timestamp=…).
func (s *Server) findMachinesByIP(w http.ResponseWriter, r *http.Request, seg string) *apiError {
	ip, ts, aerr := parseFindByIP(seg)
	if aerr != nil {
		return aerr
	}
	now := s.now()
	if ts.Before(now.Add(-30 * 24 * time.Hour)) {
		return errBadRequest(CodeBadRequest, "The given timestamp %s must be within the past 30 days", ts.Format(time.RFC3339))
	}
	if ts.After(now.Add(findByIPWindow)) {
		return errBadRequest(CodeBadRequest, "The given timestamp %s is in the future", ts.Format(time.RFC3339))
	}
	from, to := ts.Add(-findByIPWindow), ts.Add(findByIPWindow)
	s.mu.RLock()
	var match []machineWire
	for _, m := range s.machines {
		if m.seenWith(ip, from, to) {
			match = append(match, m.wire())
		}
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, collection[machineWire]{Context: odataContext(r, "Machines"), Value: nonNil(match)})
	return nil
}

// parseFindByIP parses "findbyip(ip='10.1.2.3',timestamp=2024-09-22T08:44:05Z)".
func parseFindByIP(seg string) (netip.Addr, time.Time, *apiError) {
	bad := func(format string, args ...any) (netip.Addr, time.Time, *apiError) {
		return netip.Addr{}, time.Time{}, errBadRequest(CodeInvalidInput, format, args...)
	}
	open := strings.IndexByte(seg, '(')
	if open < 0 || !strings.HasSuffix(seg, ")") {
		return bad("Invalid input %s", seg)
	}
	var ipText, tsText string
	var haveIP, haveTS bool
	for part := range strings.SplitSeq(seg[open+1:len(seg)-1], ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return bad("Invalid input %s", part)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "ip":
			v = strings.TrimSpace(v)
			if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
				return bad("Invalid input ip=%s: the IP must be a quoted string", v)
			}
			ipText, haveIP = v[1:len(v)-1], true
		case "timestamp":
			tsText, haveTS = strings.TrimSpace(v), true
		default:
			return bad("Invalid input %s", k)
		}
	}
	if !haveIP || !haveTS {
		return netip.Addr{}, time.Time{}, errBadRequest(CodeMissingRequiredParameter, "Parameter %s is missing", map[bool]string{true: "timestamp", false: "ip"}[haveIP])
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, time.Time{}, errBadRequest(CodeInvalidIPAddress, "IP address %s is invalid", ipText)
	}
	ts, ok := parseODataTime(strings.Trim(tsText, "'"))
	if !ok {
		return bad("Invalid input timestamp=%s", tsText)
	}
	return ip.Unmap(), ts, nil
}
