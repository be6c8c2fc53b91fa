package atp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
	"golang.org/x/oauth2"
)

// simClock is a clock shared by the simulator and the client: the client's
// sleeps move it forward.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

// simEnv is a simulator behind httptest and a client for it.
type simEnv struct {
	clock  *simClock
	sim    *defender.Server
	client *atp.Client
	base   time.Time
}

func newSimEnv(t *testing.T, opts defender.Options, copts *atp.Options, tokens oauth2.TokenSource) *simEnv {
	t.Helper()
	clock := &simClock{t: time.Date(2024, 9, 22, 9, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	sim := defender.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	if copts == nil {
		copts = &atp.Options{}
	}
	if copts.Now == nil {
		copts.Now = clock.Now
	}
	if copts.Sleep == nil {
		copts.Sleep = clock.Sleep
	}
	if tokens == nil {
		tokens = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "sim-token"})
	}
	c, err := atp.NewClient(srv.URL, tokens, copts)
	if err != nil {
		t.Fatal(err)
	}
	return &simEnv{clock: clock, sim: sim, client: c, base: clock.Now()}
}

func TestSimAlerts(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	ctx := context.Background()
	all := env.sim.Alerts()
	if len(all) == 0 {
		t.Fatalf("simulator has no alerts")
	}
	from := env.base.Add(-7 * 24 * time.Hour)
	tests := []struct {
		name string
		o    *atp.ListAlertsOptions
		keep func(a defender.Alert) bool
	}{
		{name: "high or medium new", o: &atp.ListAlertsOptions{
			Severities: []atp.Severity{atp.SeverityHigh, atp.SeverityMedium}, Statuses: []atp.AlertStatus{atp.AlertStatusNew}, Top: atp.MaxTop},
			keep: func(a defender.Alert) bool {
				return (a.Severity == "High" || a.Severity == "Medium") && a.Status == "New"
			}},
		{name: "created last 7 days", o: &atp.ListAlertsOptions{CreatedFrom: from, Top: atp.MaxTop},
			keep: func(a defender.Alert) bool { return !a.AlertCreationTime.Before(from.Truncate(time.Second)) }},
		{name: "machine", o: &atp.ListAlertsOptions{MachineID: defender.KnownIPMachineID, Top: atp.MaxTop},
			keep: func(a defender.Alert) bool { return a.MachineID == defender.KnownIPMachineID }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := env.client.ListAlerts(ctx, tt.o)
			if err != nil {
				t.Fatalf("ListAlerts(%+v) = %v", tt.o, err)
			}
			var want []string
			for _, a := range all {
				if tt.keep(a) {
					want = append(want, a.ID)
				}
			}
			var ids []string
			for _, a := range got {
				ids = append(ids, a.ID)
			}
			slices.Sort(want)
			slices.Sort(ids)
			if len(want) == 0 {
				t.Fatalf("test selects no seeded alert")
			}
			if diff := cmp.Diff(want, ids); diff != "" {
				t.Errorf("ListAlerts(%+v) IDs mismatch (-want +got):\n%s", tt.o, diff)
			}
		})
	}
}

func TestSimStreamMatchesList(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	ctx := context.Background()
	o := &atp.ListAlertsOptions{Severities: []atp.Severity{atp.SeverityHigh}, Top: 50, ExpandEvidence: true}
	list, err := env.client.ListAlerts(ctx, o)
	if err != nil {
		t.Fatalf("ListAlerts() = %v", err)
	}
	var streamed []atp.Alert
	n, err := env.client.StreamAlerts(ctx, o, func(raw json.RawMessage) error {
		var a atp.Alert
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		streamed = append(streamed, a)
		return nil
	})
	if err != nil || n != len(list) || n == 0 {
		t.Fatalf("StreamAlerts() = %d, %v; want %d alerts", n, err, len(list))
	}
	if diff := cmp.Diff(list, streamed); diff != "" {
		t.Errorf("streamed alerts differ from listed ones (-list +stream):\n%s", diff)
	}
	if len(list[0].Evidence) == 0 {
		t.Errorf("ExpandEvidence: first alert has no evidence")
	}
}

func TestSimAllAlertsPaging(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, &atp.Options{CallsPerMinute: -1}, nil)
	seen := map[string]bool{}
	for a, err := range env.client.AllAlerts(context.Background(), &atp.ListAlertsOptions{Top: 97}) {
		if err != nil {
			t.Fatalf("AllAlerts() = %v", err)
		}
		if seen[a.ID] {
			t.Fatalf("AllAlerts() yielded %s twice", a.ID)
		}
		seen[a.ID] = true
	}
	if len(seen) != env.sim.AlertCount() {
		t.Errorf("AllAlerts() yielded %d alerts, want %d", len(seen), env.sim.AlertCount())
	}
}

func TestSimGetAlert(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	a, err := env.client.GetAlert(context.Background(), defender.SampleAlertID)
	if err != nil {
		t.Fatalf("GetAlert() = %v", err)
	}
	if a.ID != defender.SampleAlertID || a.Severity != atp.SeverityHigh || a.MachineID != defender.KnownIPMachineID || a.AssignedTo != defender.QuoteAssignee {
		t.Errorf("GetAlert() = %+v, want the seeded sample alert", a)
	}
	assigned, err := env.client.ListAlerts(context.Background(), nil)
	if err != nil || len(assigned) == 0 {
		t.Errorf("ListAlerts(nil) = %d alerts, %v", len(assigned), err)
	}
	_, err = env.client.GetAlert(context.Background(), "da000_missing")
	if !atp.IsNotFound(err) {
		t.Errorf("GetAlert(missing) = %v, want 404", err)
	}
}

func TestSimFindMachinesByName(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	label := func(fqdn string) string { return strings.ToUpper(fqdn[:strings.IndexByte(fqdn, '.')]) }
	tests := []struct {
		name       string
		in         string
		wantIDs    []string
		wantActive []string
	}{
		{name: "ambiguous fqdn", in: defender.AmbiguousDNSName,
			wantIDs: []string{defender.AmbiguousMachineID1, defender.AmbiguousMachineID2}, wantActive: []string{defender.AmbiguousMachineID1, defender.AmbiguousMachineID2}},
		{name: "ambiguous label", in: label(defender.AmbiguousDNSName),
			wantIDs: []string{defender.AmbiguousMachineID1, defender.AmbiguousMachineID2}, wantActive: []string{defender.AmbiguousMachineID1, defender.AmbiguousMachineID2}},
		{name: "merged", in: defender.MergedDNSName,
			wantIDs: []string{defender.MergedOldMachineID, defender.MergedNewMachineID}, wantActive: []string{defender.MergedNewMachineID}},
		{name: "unique label", in: defender.UniqueHostLabel, wantIDs: []string{defender.UniqueMachineID}, wantActive: []string{defender.UniqueMachineID}},
		{name: "unique fqdn uppercase", in: strings.ToUpper(defender.UniqueFQDN), wantIDs: []string{defender.UniqueMachineID}, wantActive: []string{defender.UniqueMachineID}},
		{name: "unknown", in: "no-such-host.contoso.local"},
		{name: "quote", in: "o'brien"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := env.client.FindMachinesByName(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("FindMachinesByName(%q) = %v", tt.in, err)
			}
			var ids, active []string
			for _, m := range ms {
				ids = append(ids, m.ID)
				if !m.IsDuplicate() {
					active = append(active, m.ID)
				}
			}
			slices.Sort(ids)
			slices.Sort(active)
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("FindMachinesByName(%q) IDs mismatch (-want +got):\n%s", tt.in, diff)
			}
			if diff := cmp.Diff(tt.wantActive, active); diff != "" {
				t.Errorf("FindMachinesByName(%q) active IDs mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestSimFindMachinesByIPAndTag(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	ctx := context.Background()
	ipTests := []struct {
		ip   string
		at   time.Time
		want string
	}{
		{ip: defender.KnownIP, at: env.base.Add(-time.Hour), want: defender.KnownIPMachineID},
		{ip: defender.KnownIPv6, at: env.base.Add(-time.Hour), want: defender.KnownIPMachineID},
		{ip: defender.MovedIP, at: env.base.Add(-72 * time.Hour), want: defender.MovedIPOldMachineID},
		{ip: defender.MovedIP, at: env.base.Add(-time.Hour), want: defender.MovedIPNewMachineID},
	}
	for _, tt := range ipTests {
		ms, err := env.client.FindMachinesByIP(ctx, netip.MustParseAddr(tt.ip), tt.at)
		if err != nil {
			t.Errorf("FindMachinesByIP(%s, %v) = %v", tt.ip, tt.at, err)
			continue
		}
		if !slices.ContainsFunc(ms, func(m atp.Machine) bool { return m.ID == tt.want }) {
			t.Errorf("FindMachinesByIP(%s, %v) = %d machines, want %s among them", tt.ip, tt.at, len(ms), tt.want)
		}
	}
	tagTests := []struct {
		tag  string
		want []string
	}{
		{tag: defender.QuoteTag, want: []string{defender.UniqueMachineID}},
		{tag: defender.ProtectedTag, want: []string{defender.DCMachineID, defender.PayrollMachineID}},
		{tag: defender.DCTag, want: []string{defender.DCMachineID}},
	}
	for _, tt := range tagTests {
		ms, err := env.client.FindMachinesByTag(ctx, tt.tag)
		if err != nil {
			t.Errorf("FindMachinesByTag(%q) = %v", tt.tag, err)
			continue
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		slices.Sort(ids)
		if diff := cmp.Diff(tt.want, ids); diff != "" {
			t.Errorf("FindMachinesByTag(%q) mismatch (-want +got):\n%s", tt.tag, diff)
		}
	}
	m, err := env.client.GetMachine(ctx, defender.DCMachineID)
	if err != nil || m.ComputerDNSName != defender.DCDNSName || !slices.Contains(m.MachineTags, defender.DCTag) {
		t.Errorf("GetMachine(DC) = %+v, %v", m, err)
	}
	_, err = env.client.GetMachine(ctx, strings.Repeat("0", 40))
	if !atp.IsNotFound(err) {
		t.Errorf("GetMachine(unknown) = %v, want 404", err)
	}
}

func TestSimIsolationLifecycle(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	ctx := context.Background()
	id := defender.UniqueMachineID
	a, err := env.client.Isolate(ctx, id, atp.IsolateRequest{Comment: "INC0012345: test", IsolationType: atp.IsolationSelective})
	if err != nil {
		t.Fatalf("Isolate() = %v", err)
	}
	if a.Type != atp.ActionIsolate || a.Status != atp.ActionPending || a.MachineID != id || a.Scope != "Selective" ||
		a.RequestorComment != "INC0012345: test" || a.Requestor != defender.DefaultAppID {
		t.Errorf("Isolate() = %+v", a)
	}
	_, err = env.client.Isolate(ctx, id, atp.IsolateRequest{Comment: "again"})
	if !atp.IsActiveRequestAlreadyExists(err) {
		t.Errorf("second Isolate() = %v, want ActiveRequestAlreadyExists", err)
	}
	pending, err := env.client.ListMachineActions(ctx, &atp.ListMachineActionsOptions{
		MachineID: id, Types: []atp.ActionType{atp.ActionIsolate}, Statuses: []atp.ActionStatus{atp.ActionPending, atp.ActionInProgress},
	})
	if err != nil || len(pending) != 1 || pending[0].ID != a.ID {
		t.Errorf("ListMachineActions(pending) = %+v, %v; want the one action", pending, err)
	}
	mine, err := env.client.ListMachineActions(ctx, &atp.ListMachineActionsOptions{
		Types: []atp.ActionType{atp.ActionIsolate}, Requestor: defender.DefaultAppID, CreatedFrom: env.base.Add(-time.Hour),
	})
	if err != nil || len(mine) != 1 {
		t.Errorf("ListMachineActions(budget) = %d actions, %v; want 1", len(mine), err)
	}
	env.clock.Advance(time.Hour)
	got, err := env.client.GetMachineAction(ctx, a.ID)
	if err != nil || got.Status != atp.ActionSucceeded {
		t.Errorf("GetMachineAction() after an hour = %+v, %v; want Succeeded", got, err)
	}
	u, err := env.client.Unisolate(ctx, id, "release")
	if err != nil || u.Type != atp.ActionUnisolate {
		t.Errorf("Unisolate() = %+v, %v", u, err)
	}
	_, err = env.client.Isolate(ctx, strings.Repeat("0", 40), atp.IsolateRequest{Comment: "c"})
	if !atp.IsNotFound(err) {
		t.Errorf("Isolate(unknown) = %v, want 404", err)
	}
}

func TestSimConcurrentIsolateOneAction(t *testing.T) {
	env := newSimEnv(t, defender.Options{}, nil, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for range 20 {
		wg.Go(func() {
			_, err := env.client.Isolate(context.Background(), defender.PayrollMachineID, atp.IsolateRequest{Comment: "storm"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case atp.IsActiveRequestAlreadyExists(err):
				refused++
			default:
				t.Errorf("Isolate() = %v", err)
			}
		})
	}
	wg.Wait()
	if created != 1 || refused != 19 {
		t.Errorf("created %d, refused %d; want 1 and 19", created, refused)
	}
}

// invalidatingTokens hands out "stale" until invalidated, then "fresh".
type invalidatingTokens struct {
	mu          sync.Mutex
	fresh       bool
	invalidated int
}

func (s *invalidatingTokens) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh {
		return &oauth2.Token{AccessToken: "fresh"}, nil
	}
	return &oauth2.Token{AccessToken: "stale"}, nil
}

func (s *invalidatingTokens) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fresh = true
	s.invalidated++
}

func TestSimAuthorization(t *testing.T) {
	authorize := func(r *http.Request) (defender.Principal, error) {
		switch r.Header.Get("Authorization") {
		case "Bearer fresh":
			return defender.DefaultPrincipal, nil
		case "Bearer reader":
			p := defender.DefaultPrincipal
			p.Roles = []string{defender.RoleMachineReadAll}
			return p, nil
		}
		return defender.Principal{}, errors.New("expired")
	}
	tokens := &invalidatingTokens{}
	env := newSimEnv(t, defender.Options{Authorize: authorize}, nil, tokens)
	if _, err := env.client.GetMachine(context.Background(), defender.DCMachineID); err != nil {
		t.Errorf("GetMachine() with a stale token = %v, want success after Invalidate", err)
	}
	if tokens.invalidated != 1 {
		t.Errorf("Invalidate calls = %d, want 1", tokens.invalidated)
	}

	reader := newSimEnv(t, defender.Options{Authorize: authorize}, nil, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "reader"}))
	_, err := reader.client.Isolate(context.Background(), defender.DCMachineID, atp.IsolateRequest{Comment: "c"})
	var re *atp.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 || !strings.Contains(re.Message, "Machine.Isolate") || re.CorrelationID == "" {
		t.Errorf("Isolate() as reader = %v, want 403 naming Machine.Isolate with a correlation id", err)
	}
}

func TestSimThrottling(t *testing.T) {
	// Client budget off, simulator allows 3 calls a minute.
	env := newSimEnv(t, defender.Options{RateLimits: &defender.RateLimits{PerMinute: 3}},
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1}, nil)
	ctx := context.Background()
	for i := range 3 {
		if _, err := env.client.GetMachine(ctx, defender.DCMachineID); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Throttled: with time to wait, the client sleeps (on the shared
	// clock) and succeeds.
	if _, err := env.client.GetMachine(ctx, defender.DCMachineID); err != nil {
		t.Errorf("GetMachine() when throttled, no deadline = %v, want success after waiting", err)
	}
	// Throttled with a short deadline: an immediate *RateLimitError once
	// the window is full again (at most 3 calls later).
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	calls := 0
	for err == nil && calls < 4 {
		calls++
		_, err = env.client.GetMachine(short, defender.DCMachineID)
	}
	var rl *atp.RateLimitError
	var re *atp.ResponseError
	if !errors.As(err, &rl) || !errors.As(err, &re) || re.StatusCode != 429 || rl.RetryAfter < time.Second || re.Attempts != 1 {
		t.Errorf("GetMachine() throttled with a 2 s deadline = %v after %d calls, want *RateLimitError wrapping one 429", err, calls)
	}
}

func TestSimClientBudgetAvoidsThrottling(t *testing.T) {
	env := newSimEnv(t, defender.Options{RateLimits: &defender.RateLimits{PerMinute: 8, PerHour: 40}},
		&atp.Options{CallsPerMinute: 8, CallsPerHour: 40, MaxRetries: -1}, nil)
	for i := range 60 {
		if _, err := env.client.GetMachine(context.Background(), defender.DCMachineID); err != nil {
			t.Fatalf("call %d: GetMachine() = %v, want the client budget to keep under the limits", i, err)
		}
	}
	if st := env.sim.Stats(); st.Throttled != 0 {
		t.Errorf("simulator throttled %d calls, want 0", st.Throttled)
	}
}

// newSimTLSEnv is newSimEnv over HTTPS, as Defender and the package links
// it hands out are served.
func newSimTLSEnv(t *testing.T, opts defender.Options) (*simEnv, *http.Client) {
	t.Helper()
	clock := &simClock{t: time.Date(2024, 9, 22, 9, 0, 0, 0, time.UTC)}
	opts.Now = clock.Now
	sim := defender.New(opts)
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "sim-token"}),
		&atp.Options{HTTPClient: srv.Client(), Now: clock.Now, Sleep: clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	return &simEnv{clock: clock, sim: sim, client: c, base: clock.Now()}, srv.Client()
}

func TestSimResponseActions(t *testing.T) {
	env, hc := newSimTLSEnv(t, defender.Options{})
	ctx := context.Background()
	id := defender.UniqueMachineID

	scan, err := env.client.RunAntiVirusScan(ctx, id, atp.ScanRequest{Comment: "INC1: scan", ScanType: atp.ScanFull})
	if err != nil || scan.Type != atp.ActionRunAntiVirusScan || scan.Scope != "Full" || scan.Status != atp.ActionPending {
		t.Fatalf("RunAntiVirusScan() = %+v, %v; want a Pending Full scan", scan, err)
	}
	if _, err := env.client.RunAntiVirusScan(ctx, id, atp.ScanRequest{Comment: "INC1: again"}); !atp.IsActiveRequestAlreadyExists(err) {
		t.Errorf("second RunAntiVirusScan() = %v, want ActiveRequestAlreadyExists", err)
	}
	col, err := env.client.CollectInvestigationPackage(ctx, id, "INC1: forensics")
	if err != nil || col.Type != atp.ActionCollectInvestigationPackage {
		t.Fatalf("CollectInvestigationPackage() beside a scan = %+v, %v; want a new action", col, err)
	}
	const sha1 = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
	saq, err := env.client.StopAndQuarantineFile(ctx, id, atp.QuarantineRequest{Comment: "INC1: dropper", Sha1: sha1})
	if err != nil || saq.RelatedFileInfo == nil || *saq.RelatedFileInfo != (atp.RelatedFileInfo{FileIdentifier: sha1, FileIdentifierType: "Sha1"}) {
		t.Errorf("StopAndQuarantineFile() = %+v, %v; want the file named", saq, err)
	}

	// Cancel a restriction; a second cancellation is refused.
	res, err := env.client.RestrictCodeExecution(ctx, id, "INC1: restrict")
	if err != nil {
		t.Fatalf("RestrictCodeExecution() = %v", err)
	}
	c, err := env.client.CancelMachineAction(ctx, res.ID, "INC1: false positive")
	if err != nil || c.Status != atp.ActionCancelled || c.CancellationComment != "INC1: false positive" ||
		c.CancellationRequestor != defender.DefaultAppID || !c.CancellationDateTimeUTC.Equal(env.base) {
		t.Errorf("CancelMachineAction() = %+v, %v; want it Cancelled by the app now", c, err)
	}
	var re *atp.ResponseError
	if _, err := env.client.CancelMachineAction(ctx, res.ID, "again"); !errors.As(err, &re) || re.StatusCode != 400 {
		t.Errorf("second CancelMachineAction() = %v, want a 400", err)
	}
	if _, err := env.client.CancelMachineAction(ctx, "00000000-0000-4000-8000-000000000000", "c"); !atp.IsNotFound(err) {
		t.Errorf("CancelMachineAction(unknown) = %v, want a 404", err)
	}
	if _, err := env.client.UnrestrictCodeExecution(ctx, id, "INC1: release"); err != nil {
		t.Errorf("UnrestrictCodeExecution() = %v", err)
	}

	// The package: not ready, then a link that downloads a zip file.
	if _, err := env.client.GetPackageURI(ctx, col.ID); !atp.IsNotFound(err) {
		t.Errorf("GetPackageURI() while collecting = %v, want a 404", err)
	}
	env.clock.Advance(time.Minute)
	if got, err := env.client.GetMachineAction(ctx, col.ID); err != nil || got.Status != atp.ActionSucceeded {
		t.Fatalf("GetMachineAction(collection) = %+v, %v; want Succeeded", got, err)
	}
	link, err := env.client.GetPackageURI(ctx, col.ID)
	if err != nil || !strings.HasPrefix(link, "https://") {
		t.Fatalf("GetPackageURI() = %q, %v; want an https link", link, err)
	}
	resp, err := hc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Errorf("download = %d %q, want 200 application/zip", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// GetPackageUri's own limit (2 a minute): the third call waits out the
	// 429 on the shared clock and succeeds.
	before := env.clock.Now()
	for i := range 2 {
		if _, err := env.client.GetPackageURI(ctx, col.ID); err != nil {
			t.Fatalf("GetPackageURI() call %d = %v", i+2, err)
		}
	}
	if env.clock.Now().Sub(before) < 30*time.Second {
		t.Errorf("GetPackageURI() over its limit returned after %v of clock, want it to wait for the 429", env.clock.Now().Sub(before))
	}

	// A failed collection has no package.
	env.sim.FailNextAction(id, defender.ActionCollectInvestigationPackage)
	failed, err := env.client.CollectInvestigationPackage(ctx, id, "INC2")
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Hour)
	if got, _ := env.client.GetMachineAction(ctx, failed.ID); got == nil || got.Status != atp.ActionFailed {
		t.Errorf("collection after FailNextAction = %+v, want Failed", got)
	}
	if _, err := env.client.GetPackageURI(ctx, failed.ID); !atp.IsNotFound(err) {
		t.Errorf("GetPackageURI(failed) = %v, want a 404", err)
	}
}

func TestSimResponseActionPermissions(t *testing.T) {
	authorize := func(r *http.Request) (defender.Principal, error) {
		p := defender.DefaultPrincipal
		p.Roles = []string{defender.RoleMachineIsolate, defender.RoleMachineReadAll}
		return p, nil
	}
	env := newSimEnv(t, defender.Options{Authorize: authorize}, nil, nil)
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
		role string
	}{
		{"scan", func() error {
			_, err := env.client.RunAntiVirusScan(ctx, defender.DCMachineID, atp.ScanRequest{Comment: "c"})
			return err
		}, "Machine.Scan"},
		{"restrict", func() error {
			_, err := env.client.RestrictCodeExecution(ctx, defender.DCMachineID, "c")
			return err
		}, "Machine.RestrictExecution"},
		{"collect", func() error {
			_, err := env.client.CollectInvestigationPackage(ctx, defender.DCMachineID, "c")
			return err
		}, "Machine.CollectForensics"},
	}
	for _, tt := range calls {
		var re *atp.ResponseError
		if err := tt.call(); !errors.As(err, &re) || re.StatusCode != 403 || !strings.Contains(re.Message, tt.role) {
			t.Errorf("%s without its role = %v, want 403 naming %s", tt.name, err, tt.role)
		}
	}
	// Machine.Read.All is a documented alternative for stop and quarantine.
	if _, err := env.client.StopAndQuarantineFile(ctx, defender.DCMachineID, atp.QuarantineRequest{Comment: "c", Sha1: strings.Repeat("0", 40)}); err != nil {
		t.Errorf("StopAndQuarantineFile() with Machine.Read.All = %v, want success", err)
	}
	// Machine.Isolate is enough to cancel.
	a, err := env.client.Isolate(ctx, defender.DCMachineID, atp.IsolateRequest{Comment: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.CancelMachineAction(ctx, a.ID, "c"); err != nil {
		t.Errorf("CancelMachineAction() with Machine.Isolate = %v, want success", err)
	}
}
