package defender

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// SeedOptions size the deterministic seed data. The fixed records below
// (Seed* constants) are always present; Machines and Alerts add generated
// ones. The same Seed and base time (Options.Now at New) give the same data.
type SeedOptions struct {
	Machines int    // generated machines besides the fixed ones
	Alerts   int    // alerts in all, spread over the last 30 days
	Seed     uint64 // PCG seed
	TenantID string // aadTenantId of alerts; "" means SeedTenantID
}

// DefaultSeed: 50 generated machines and 500 alerts.
var DefaultSeed = SeedOptions{Machines: 50, Alerts: 500, Seed: 1}

// Fixed seed records tests can rely on. Machine IDs are 40 lowercase hex
// characters like Defender's.
const (
	// SeedTenantID is the tenant of seeded alerts and of DefaultPrincipal.
	SeedTenantID = "8f3b6c2e-1d4a-4e7b-9c5f-2a6d8e0b1c34"

	// Two active (not merged, not duplicate) records sharing one DNS name.
	AmbiguousDNSName    = "shared-ws.contoso.local"
	AmbiguousMachineID1 = "aa00000000000000000000000000000000000001"
	AmbiguousMachineID2 = "aa00000000000000000000000000000000000002"

	// An older record merged into a newer one, both named MergedDNSName:
	// the old one has isPotentialDuplication true and mergedIntoMachineId
	// MergedNewMachineID; the new one is the survivor.
	MergedDNSName      = "laptop-merged.contoso.local"
	MergedOldMachineID = "bb00000000000000000000000000000000000001"
	MergedNewMachineID = "bb00000000000000000000000000000000000002"

	// Devices tagged for protection: DCMachineID carries DCTag and
	// ProtectedTag, PayrollMachineID carries ProtectedTag.
	ProtectedTag     = "protected"
	DCTag            = "DC"
	DCDNSName        = "dc01.contoso.local"
	DCMachineID      = "cc00000000000000000000000000000000000001"
	PayrollDNSName   = "srv-payroll.contoso.local"
	PayrollMachineID = "cc00000000000000000000000000000000000002"

	// KnownIPMachineID has lastIpAddress KnownIP (and KnownIPv6 among its
	// ipAddresses) during the whole 30 days before the base time.
	KnownIPDNSName   = "ws-knownip.contoso.local"
	KnownIPMachineID = "dd00000000000000000000000000000000000001"
	KnownIP          = "10.1.2.3"
	KnownIPv6        = "fd00:1:2::3"

	// MovedIP belonged to MovedIPOldMachineID until 48 hours before the base
	// time and to MovedIPNewMachineID from 47 hours before it on.
	MovedIP             = "10.1.2.50"
	MovedIPOldMachineID = "dd00000000000000000000000000000000000002"
	MovedIPNewMachineID = "dd00000000000000000000000000000000000003"

	// An FQDN device whose host label is unique among all machines. It
	// carries QuoteTag, a tag with a single quote.
	UniqueFQDN      = "finance-ws7.corp.contoso.com"
	UniqueHostLabel = "finance-ws7"
	UniqueMachineID = "ee00000000000000000000000000000000000001"
	QuoteTag        = "it's-lab"

	// IsolatedMachineID starts isolated.
	IsolatedDNSName   = "ws-isolated.contoso.local"
	IsolatedMachineID = "ff00000000000000000000000000000000000001"

	// SampleAlertID is a High, New alert on KnownIPMachineID created two
	// hours before the base time, assigned to QuoteAssignee, with evidence.
	SampleAlertID = "da637472900382838869_1364969609"
	QuoteAssignee = "o'brien@contoso.com"
)

// dotnetEpochTicks is 1970-01-01 in .NET ticks (100 ns since year 1), the
// number Defender alert ids start with.
const dotnetEpochTicks = 621355968000000000

type alertTemplate struct {
	title, description, category, source, family, threat string
	mitre                                                []string
}

var alertTemplates = []alertTemplate{
	{"Suspicious 'Meterpreter' behavior was detected", "Malware and unwanted software are undesirable applications that perform annoying, disruptive, or harmful actions on affected machines.", "SuspiciousActivity", "WindowsDefenderAv", "Meterpreter", "Behavior:Win32/Meterpreter.gen!A", []string{"T1064", "T1085", "T1220"}},
	{"Low-reputation arbitrary code executed by signed executable", "Binaries signed by Microsoft can be used to run low-reputation arbitrary code.", "Execution", "WindowsDefenderAtp", "", "", []string{"T1218", "T1218.011"}},
	{"Suspicious PowerShell command line", "A suspicious PowerShell activity was observed on the machine.", "Execution", "WindowsDefenderAtp", "", "", []string{"T1059.001"}},
	{"Credential dumping activity observed", "A process accessed the memory of LSASS, which may indicate credential theft.", "CredentialAccess", "WindowsDefenderAtp", "Mimikatz", "HackTool:Win32/Mimikatz", []string{"T1003.001"}},
	{"Ransomware behavior detected in the file system", "Files were encrypted in a pattern typical of ransomware.", "Ransomware", "WindowsDefenderAv", "WannaCry", "Ransom:Win32/WannaCrypt", []string{"T1486"}},
	{"Suspicious remote service creation", "A service was created remotely, which may indicate lateral movement.", "LateralMovement", "WindowsDefenderAtp", "", "", []string{"T1021.002", "T1569.002"}},
	{"New local admin added using Net commands", "A new user was added to the local administrators group.", "Persistence", "CustomDetection", "", "", []string{"T1136.001"}},
	{"Connection to a custom network indicator", "The device connected to an address on a custom block list.", "CommandAndControl", "CustomTi", "", "", []string{"T1071"}},
	{"'Emotet' malware was detected", "Emotet is a banking trojan that also delivers other malware.", "Malware", "WindowsDefenderAv", "Emotet", "Trojan:Win32/Emotet", []string{"T1204.002"}},
	{"Suspicious URL clicked", "A user opened a link that was later found to be malicious.", "InitialAccess", "SmartScreen", "", "", []string{"T1566.002"}},
	{"Defense evasion: tampering with Microsoft Defender", "An attempt to disable antivirus protection was detected.", "DefenseEvasion", "WindowsDefenderAtp", "", "", []string{"T1562.001"}},
	{"Automated investigation started manually", "An automated investigation was started on the device.", "SuspiciousActivity", "AutomatedInvestigation", "", "", nil},
}

var (
	severityWeights = []struct {
		s Severity
		w int
	}{{SeverityInformational, 15}, {SeverityLow, 35}, {SeverityMedium, 35}, {SeverityHigh, 15}}
	investigationStates = []string{"Queued", "Running", "SuccessfullyRemediated", "Benign", "UnsupportedAlertType", "PendingApproval", "TerminatedBySystem"}
	analysts            = []string{"secop123@contoso.com", "analyst@contoso.com", QuoteAssignee}
	osPlatforms         = []struct{ platform, version, arch string }{
		{"Windows10", "22H2", "64-bit"}, {"Windows11", "23H2", "64-bit"}, {"WindowsServer2019", "1809", "64-bit"},
		{"WindowsServer2022", "21H2", "64-bit"}, {"Linux", "", "64-bit"}, {"macOS", "", "64-bit"},
	}
	levels = []string{"None", "Informational", "Low", "Medium", "High"}
)

// loadSeed replaces all data with the seeded records.
func (s *Server) loadSeed() {
	rng := rand.New(rand.NewPCG(s.seed.Seed, s.seed.Seed^0x9e3779b97f4a7c15))
	base := s.base
	machines := fixedMachines(base)
	names := map[string]bool{}
	for _, m := range machines {
		names[m.ComputerDNSName] = true
	}
	for i := range max(0, s.seed.Machines) {
		machines = append(machines, genMachine(rng, base, i, names))
	}
	alerts := s.genAlerts(rng, base, machines)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.machines = machines
	s.machineByID = make(map[string]*Machine, len(machines))
	for _, m := range machines {
		s.machineByID[m.ID] = m
	}
	s.alerts = alerts
	s.alertByID = make(map[string]*Alert, len(alerts))
	for _, a := range alerts {
		s.alertByID[a.ID] = a
	}
	s.actions = nil
	s.actionByID = map[string]*action{}
	s.actionsByMachine = map[string][]*action{}
}

func fixedMachines(base time.Time) []*Machine {
	day := 24 * time.Hour
	mk := func(id, name, ip string, tags ...string) *Machine {
		return &Machine{
			ID: id, ComputerDNSName: name,
			FirstSeen: base.Add(-200 * day), LastSeen: base.Add(-time.Hour),
			OSPlatform: "Windows11", OSVersion: "", OSProcessor: "x64", Version: "23H2", OSBuild: 22631,
			LastIPAddress: ip, LastExternalIPAddress: "203.0.113.10", AgentVersion: "10.8760.22631.1000",
			HealthStatus: "Active", DeviceValue: "Normal", RBACGroupID: 140, RBACGroupName: "Workstations",
			RiskScore: "Low", ExposureLevel: "Medium", IsAADJoined: true,
			AADDeviceID:      "80fe8ff8-2624-418e-9591-" + id[28:40],
			MachineTags:      append([]string{}, tags...),
			DefenderAVStatus: "Updated", OnboardingStatus: "Onboarded", OSArchitecture: "64-bit",
			ManagedBy: "Intune", ManagedByStatus: "Success",
			IPAddresses: []IPAddress{{IPAddress: ip, MACAddress: "8CEC4B" + id[34:40], Type: "Ethernet", OperationalStatus: "Up"}},
		}
	}
	amb1 := mk(AmbiguousMachineID1, AmbiguousDNSName, "10.1.1.11")
	amb2 := mk(AmbiguousMachineID2, AmbiguousDNSName, "10.1.1.12")
	amb2.FirstSeen = base.Add(-20 * day)

	mergedOld := mk(MergedOldMachineID, MergedDNSName, "10.1.1.21")
	mergedOld.LastSeen = base.Add(-25 * day)
	mergedOld.HealthStatus = "Inactive"
	mergedOld.IsPotentialDuplication = true
	mergedOld.MergedIntoMachineID = MergedNewMachineID
	mergedNew := mk(MergedNewMachineID, MergedDNSName, "10.1.1.22")
	mergedNew.FirstSeen = base.Add(-24 * day)

	dc := mk(DCMachineID, DCDNSName, "10.1.0.10", DCTag, ProtectedTag)
	dc.OSPlatform, dc.Version, dc.OSBuild, dc.RBACGroupID, dc.RBACGroupName = "WindowsServer2022", "21H2", 20348, 150, "Servers"
	dc.DeviceValue = "High"
	payroll := mk(PayrollMachineID, PayrollDNSName, "10.1.0.20", ProtectedTag)
	payroll.OSPlatform, payroll.Version, payroll.OSBuild, payroll.RBACGroupID, payroll.RBACGroupName = "WindowsServer2019", "1809", 17763, 150, "Servers"

	known := mk(KnownIPMachineID, KnownIPDNSName, KnownIP)
	known.IPAddresses = append(known.IPAddresses, IPAddress{IPAddress: KnownIPv6, MACAddress: known.IPAddresses[0].MACAddress, Type: "Ethernet", OperationalStatus: "Up"})
	known.IPHistory = []IPSighting{{IP: KnownIP, From: base.Add(-31 * day), To: base}, {IP: KnownIPv6, From: base.Add(-31 * day), To: base}}

	movedOld := mk(MovedIPOldMachineID, "ws-oldowner.contoso.local", "10.1.2.51")
	movedOld.IPHistory = []IPSighting{{IP: MovedIP, From: base.Add(-31 * day), To: base.Add(-48 * time.Hour)}, {IP: "10.1.2.51", From: base.Add(-48 * time.Hour), To: base}}
	movedNew := mk(MovedIPNewMachineID, "ws-newowner.contoso.local", MovedIP)
	movedNew.IPHistory = []IPSighting{{IP: MovedIP, From: base.Add(-47 * time.Hour), To: base}}

	unique := mk(UniqueMachineID, UniqueFQDN, "10.1.3.7", QuoteTag)
	isolated := mk(IsolatedMachineID, IsolatedDNSName, "10.1.3.9")
	isolated.Isolated = true

	return []*Machine{amb1, amb2, mergedOld, mergedNew, dc, payroll, known, movedOld, movedNew, unique, isolated}
}

func randHex(rng *rand.Rand, n int) string {
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

func randGUID(rng *rand.Rand) string {
	h := randHex(rng, 32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func genMachine(rng *rand.Rand, base time.Time, i int, names map[string]bool) *Machine {
	name := ""
	for name == "" || names[name] {
		name = "desktop-" + randHex(rng, 6) + ".contoso.local"
	}
	names[name] = true
	os := osPlatforms[rng.IntN(len(osPlatforms))]
	ip := fmt.Sprintf("10.20.%d.%d", i/250, i%250+1)
	health, lastSeen := "Active", base.Add(-time.Duration(rng.Int64N(int64(6*time.Hour))))
	if rng.IntN(10) == 0 {
		health, lastSeen = "Inactive", base.Add(-time.Duration(10+rng.IntN(10))*24*time.Hour)
	}
	group, groupName := int64(140), "Workstations"
	if len(os.platform) > 13 && os.platform[:13] == "WindowsServer" {
		group, groupName = 150, "Servers"
	}
	id := randHex(rng, 40)
	var tags []string
	if rng.IntN(5) == 0 {
		tags = []string{"Finance"}
	}
	return &Machine{
		ID: id, ComputerDNSName: name,
		FirstSeen: base.Add(-time.Duration(30+rng.IntN(400)) * 24 * time.Hour), LastSeen: lastSeen,
		OSPlatform: os.platform, OSProcessor: "x64", Version: os.version, OSBuild: int64(17763 + rng.IntN(5000)),
		LastIPAddress: ip, LastExternalIPAddress: fmt.Sprintf("198.51.100.%d", 1+rng.IntN(254)),
		AgentVersion: "10.8760.19041.1000", HealthStatus: health, DeviceValue: "Normal",
		RBACGroupID: group, RBACGroupName: groupName,
		RiskScore: levels[rng.IntN(len(levels))], ExposureLevel: levels[1+rng.IntN(len(levels)-1)],
		IsAADJoined: rng.IntN(2) == 0, AADDeviceID: randGUID(rng), MachineTags: tags,
		DefenderAVStatus: "Updated", OnboardingStatus: "Onboarded", OSArchitecture: os.arch,
		ManagedBy: "MicrosoftDefenderForEndpoint", ManagedByStatus: "Success",
		IPAddresses: []IPAddress{{IPAddress: ip, MACAddress: randHex(rng, 12), Type: "Ethernet", OperationalStatus: "Up"}},
	}
}

// machineUsers returns a stable related user per machine.
func machineUser(m *Machine) (*RelatedUser, []LoggedOnUser) {
	label := m.ComputerDNSName
	for i := range len(label) {
		if label[i] == '.' {
			label = label[:i]
			break
		}
	}
	u := &RelatedUser{UserName: "user-" + label, DomainName: "CONTOSO"}
	return u, []LoggedOnUser{{AccountName: u.UserName, DomainName: u.DomainName}}
}

func (s *Server) genAlerts(rng *rand.Rand, base time.Time, machines []*Machine) []*Alert {
	n := max(0, s.seed.Alerts)
	tenant := s.seed.TenantID
	if tenant == "" {
		tenant = SeedTenantID
	}
	users := make([]*RelatedUser, len(machines))
	logged := make([][]LoggedOnUser, len(machines))
	for i, m := range machines {
		users[i], logged[i] = machineUser(m)
	}
	// One detector (detection rule) per template, as in Defender.
	detectorIDs := make([]string, len(alertTemplates))
	for i := range detectorIDs {
		detectorIDs[i] = randGUID(rng)
	}
	alerts := make([]*Alert, 0, n)
	backing := make([]Alert, n)
	const window = 30 * 24 * time.Hour
	for i := range n {
		a := &backing[i]
		mi := rng.IntN(len(machines))
		m := machines[mi]
		ti := rng.IntN(len(alertTemplates))
		t := alertTemplates[ti]
		created := base.Add(-time.Duration(rng.Int64N(int64(window)))).Truncate(100 * time.Nanosecond)
		first := created.Add(-time.Duration(1+rng.IntN(600)) * time.Second)
		last := first.Add(time.Duration(rng.IntN(int(created.Sub(first)) + 1)))
		update := created.Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
		if update.After(base) {
			update = base
		}
		w := rng.IntN(100)
		sev := SeverityHigh
		for _, sw := range severityWeights {
			if w < sw.w {
				sev = sw.s
				break
			}
			w -= sw.w
		}
		*a = Alert{
			ID:                 "da" + strconv.FormatInt(created.UnixNano()/100+dotnetEpochTicks, 10) + "_" + strconv.FormatInt(int64(int32(rng.Uint32())), 10),
			IncidentID:         int64(1000 + rng.IntN(max(1, n/3))),
			Severity:           sev,
			Status:             AlertStatusNew,
			InvestigationState: investigationStates[rng.IntN(len(investigationStates))],
			DetectionSource:    t.source,
			DetectorID:         detectorIDs[ti],
			Category:           t.category,
			ThreatFamilyName:   t.family,
			Title:              t.title,
			Description:        t.description,
			AlertCreationTime:  created,
			FirstEventTime:     first,
			LastEventTime:      last,
			LastUpdateTime:     update,
			MachineID:          m.ID,
			ComputerDNSName:    m.ComputerDNSName,
			RBACGroupName:      m.RBACGroupName,
			AADTenantID:        tenant,
			ThreatName:         t.threat,
			MitreTechniques:    t.mitre,
			RelatedUser:        users[mi],
			LoggedOnUsers:      logged[mi],
			evSeed:             rng.Uint64() | 1,
		}
		if rng.IntN(2) == 0 {
			a.InvestigationID = int64(700000 + rng.IntN(100000))
		}
		switch st := rng.IntN(10); {
		case st < 5:
		case st < 7:
			a.Status = AlertStatusInProgress
			a.AssignedTo = analysts[rng.IntN(len(analysts))]
		default:
			a.Status = AlertStatusResolved
			a.AssignedTo = analysts[rng.IntN(len(analysts))]
			a.ResolvedTime = update
			if rng.IntN(2) == 0 {
				a.Classification, a.Determination = "TruePositive", "Malware"
			} else {
				a.Classification, a.Determination = "FalsePositive", "Clean"
			}
		}
		if rng.IntN(10) == 0 {
			a.Comments = []AlertComment{{Comment: "Looked at by the SOC", CreatedBy: analysts[0], CreatedTime: update}}
		}
		alerts = append(alerts, a)
	}
	if n > 0 {
		// The first alert becomes the documented sample.
		var known *Machine
		for _, m := range machines {
			if m.ID == KnownIPMachineID {
				known = m
			}
		}
		a := alerts[0]
		created := base.Add(-2 * time.Hour)
		u, lu := machineUser(known)
		*a = Alert{
			ID: SampleAlertID, IncidentID: 7587, InvestigationID: 723156, AssignedTo: QuoteAssignee,
			Severity: SeverityHigh, Status: AlertStatusNew, InvestigationState: "Queued",
			DetectionSource: "WindowsDefenderAtp", DetectorID: "17e10bbc-3a68-474a-8aad-faef14d43952",
			Category: "Execution", Title: "Low-reputation arbitrary code executed by signed executable",
			Description:       "Binaries signed by Microsoft can be used to run low-reputation arbitrary code.",
			AlertCreationTime: created, FirstEventTime: created.Add(-150 * time.Second), LastEventTime: created.Add(-149 * time.Second),
			LastUpdateTime: created.Add(2 * time.Second), MachineID: known.ID, ComputerDNSName: known.ComputerDNSName,
			RBACGroupName: known.RBACGroupName, AADTenantID: tenant, MitreTechniques: []string{"T1064", "T1085", "T1220"},
			RelatedUser: u, LoggedOnUsers: lu,
			Comments: []AlertComment{{Comment: "test comment for docs", CreatedBy: "secop123@contoso.com", CreatedTime: created.Add(time.Hour)}},
			evSeed:   1,
		}
	}
	sortAlerts(alerts)
	return alerts
}

// seededEvidence builds a seeded alert's evidence (a user, a process and a
// file) deterministically from the alert.
func seededEvidence(a *Alert) []Evidence {
	rng := rand.New(rand.NewPCG(a.evSeed, 0x5eed))
	t := a.AlertCreationTime.Add(time.Second)
	sha1, sha256 := randHex(rng, 40), randHex(rng, 64)
	ev := make([]Evidence, 0, 3)
	if a.RelatedUser != nil {
		ev = append(ev, Evidence{
			EntityType: "User", EvidenceCreationTime: t,
			AccountName: a.RelatedUser.UserName, DomainName: a.RelatedUser.DomainName,
			UserSID:           fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", 1000000+rng.IntN(9000000), 1000000+rng.IntN(9000000), 100000000+rng.IntN(900000000), 1000+rng.IntN(90000)),
			AADUserID:         randGUID(rng),
			UserPrincipalName: a.RelatedUser.UserName + "@contoso.com",
		})
	}
	ev = append(ev, Evidence{
		EntityType: "Process", EvidenceCreationTime: t,
		SHA1: "ff836cfb1af40252bd2a2ea843032e99a5b262ed", SHA256: "a4752c71d81afd3d5865d24ddb11a6b0c615062fcc448d24050c2172d2cbccd6",
		FileName: "rundll32.exe", FilePath: `C:\Windows\SysWOW64`, ProcessID: int64(1000 + rng.IntN(9000)),
		ProcessCommandLine: `rundll32.exe  c:\temp\suspicious.dll,RepeatAfterMe`, ProcessCreationTime: a.FirstEventTime,
		ParentProcessID: int64(1000 + rng.IntN(9000)), ParentProcessCreationTime: a.FirstEventTime.Add(-time.Second),
		ParentProcessFileName: "explorer.exe", ParentProcessFilePath: `C:\Windows`, DetectionStatus: "Detected",
	}, Evidence{
		EntityType: "File", EvidenceCreationTime: t, SHA1: sha1, SHA256: sha256,
		FileName: "suspicious.dll", FilePath: `c:\temp`, DetectionStatus: "Detected",
	})
	return ev
}
