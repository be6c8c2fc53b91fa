// Package functions is the registry of mdefn's functions: one Spec per
// function says its name (route /api/<name>, Azure folder, Lambda bootstrap),
// its HTTP methods, what a token must hold to use it, its Azure trigger
// variants, a sample request, and how to build its handler. Everything that
// lists functions (the wiring, tokencheck's "functions", the doctor, the
// platform's routes, the build, the fault matrix and the end-to-end tests)
// reads this list, and a test checks that each registered function has its
// function.json, cmd/bootstrap/<name>, SAM resource and OpenAPI path, and
// that none of those exists for an unregistered one.
//
// Adding a function: its package under functions/, its atp method, its
// simulator endpoint, one Spec below, its SAM resource in template.yaml and
// its line in the README (docs/architecture.md has the recipe).
package functions

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/mdefn/mdefn/functions/actions"
	"github.com/mdefn/mdefn/functions/alert"
	"github.com/mdefn/mdefn/functions/alerts"
	"github.com/mdefn/mdefn/functions/collect"
	"github.com/mdefn/mdefn/functions/indicators"
	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/isolate"
	"github.com/mdefn/mdefn/functions/quarantine"
	"github.com/mdefn/mdefn/functions/restrict"
	"github.com/mdefn/mdefn/functions/scan"
	"github.com/mdefn/mdefn/functions/tokencheck"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// Spec describes one function.
type Spec struct {
	// Name is the route segment (/api/<name>), the Azure function folder
	// and the Lambda bootstrap's directory (cmd/bootstrap/<name>).
	Name string
	// Summary is one line for listings and the dev banner.
	Summary string
	// Methods are the HTTP methods the function answers.
	Methods []string
	// Nested: the function also answers paths below /api/<name>
	// (/api/actions/{id}/cancel); its function.json route is
	// "<name>/{*rest}".
	Nested bool
	// Checks are the entries this function adds to tokencheck's
	// "functions" (usually one, named like the function).
	Checks []tokencheck.Check
	// Folders are the Azure function folders beyond the HTTP one, each
	// <name>-<anything> with its own trigger (isolate-queue).
	Folders []string
	// PermanentCodes are error codes of this function that a queue,
	// SQS or EventBridge delivery must never retry whatever their status.
	PermanentCodes []envelope.Code
	// Defender says how the function calls Defender; the fault matrix's
	// expectations follow it.
	Defender Use
	// Example is a request that succeeds against the simulator's seed
	// data, used by `mdefn dev`'s curl lines, the fault matrix and the
	// end-to-end tests. An action's example acts (no dry run).
	Example Example
	// New builds the function's handler; it does no I/O.
	New func(d *Deps) http.Handler
}

// Use is how a function calls Defender. The zero value: it never does.
type Use struct {
	// Reads: the function reads (GET), retried freely on failure.
	Reads bool
	// Action is the last path segment of the action the example starts,
	// POST /api/machines/{id}/<Action>: retried only where Defender cannot
	// have acted.
	Action string
	// Containment: the action is refused on a device carrying a protected
	// tag (MDE_PROTECTED_TAGS).
	Containment bool
	// Writes: the function writes with a call that is not a machine action
	// (an indicator): like an action, it is retried only where Defender
	// cannot have acted.
	Writes bool
}

// Example is a sample request. In Path, Query and Body, {machineId} and
// {deviceName} stand for a device of the target tenant and {actionId} for
// a machine action that has ended (a succeeded investigation package
// collection: see NeedsAction).
type Example struct {
	Method string
	Path   string // below /api/<name>, with its leading "/"; usually empty
	Query  string // GET: the query string, without "?"
	Body   string // POST: the JSON body
}

// NeedsAction reports whether the example names a machine action, which
// the caller must create first (a succeeded CollectInvestigationPackage).
func (e Example) NeedsAction() bool {
	return strings.Contains(e.Path+e.Query+e.Body, "{actionId}")
}

// Fill returns e with {machineId}, {deviceName} and {actionId} replaced.
func (e Example) Fill(machineID, deviceName, actionID string) Example {
	r := strings.NewReplacer("{machineId}", machineID, "{deviceName}", deviceName, "{actionId}", actionID)
	e.Path, e.Query, e.Body = r.Replace(e.Path), r.Replace(e.Query), r.Replace(e.Body)
	return e
}

// URL is the example's path and query: /api/<name><Path>[?Query].
func (e Example) URL(name string) string {
	u := "/api/" + name + e.Path
	if e.Query != "" {
		u += "?" + e.Query
	}
	return u
}

// Deps is what the functions are built from: clients made once per process
// and the safety settings. Build makes the shared action rules from it.
type Deps struct {
	Defender *atp.Client
	Tokens   tokencheck.TokenSource
	Verifier tokencheck.Verifier
	Logger   *slog.Logger

	ProtectedTags []string // MDE_PROTECTED_TAGS
	// NeverBlock is MDE_INDICATOR_NEVER_BLOCK, parsed (nil protects nothing).
	NeverBlock           *indicators.NeverBlock
	DryRun               bool // MDE_DRY_RUN
	MaxIsolationsPerHour int  // MDE_MAX_ISOLATIONS_PER_HOUR
	// Requestor is the identity Defender records for this app's actions
	// (for the isolation budget).
	Requestor func(ctx context.Context) (string, error)

	// checks and runner are filled by Build for the constructors.
	checks []tokencheck.Check
	runner *action.Runner
}

// All lists every function, in the order listings show them.
var All = []Spec{
	{
		Name:     "alerts",
		Summary:  "list Defender alerts (severity, status, since, machineId, paging)",
		Methods:  alerts.Methods,
		Checks:   []tokencheck.Check{{Name: "alerts", Needs: alerts.Needs}},
		Defender: Use{Reads: true},
		Example:  Example{Method: http.MethodGet, Query: "severity=High&top=5"},
		New: func(d *Deps) http.Handler {
			return &alerts.Service{Client: d.Defender, Logger: d.Logger}
		},
	},
	{
		Name:    "isolate",
		Summary: "isolate a device (by machineId, deviceName or ipAddress) or release it",
		Methods: isolate.Methods,
		Checks: []tokencheck.Check{
			{Name: "isolate", Needs: isolate.Needs},
			{Name: "isolateByName", Needs: isolate.NeedsByName},
		},
		Folders:        []string{"isolate-queue"},
		PermanentCodes: []envelope.Code{envelope.IsolationBudgetExceeded},
		Defender:       Use{Reads: true, Action: isolate.Kind.Path, Containment: isolate.Kind.Containment},
		Example:        Example{Method: http.MethodPost, Body: `{"machineId":"{machineId}","comment":"suspected ransomware","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &isolate.Service{Client: d.Defender, Runner: d.runner, Logger: d.Logger}
		},
	},
	{
		Name:    "scan",
		Summary: "run a Microsoft Defender Antivirus scan (Quick or Full) on a device",
		Methods: scan.Methods,
		Checks: []tokencheck.Check{
			{Name: "scan", Needs: scan.Needs},
			{Name: "scanByName", Needs: scan.NeedsByName},
		},
		Folders:  []string{"scan-queue"},
		Defender: Use{Reads: true, Action: scan.Kind.Path},
		Example:  Example{Method: http.MethodPost, Body: `{"machineId":"{machineId}","scanType":"Quick","comment":"scan after isolation","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &scan.Service{Client: d.Defender, Runner: d.runner, Logger: d.Logger}
		},
	},
	{
		Name:    "restrict",
		Summary: "restrict a device to Microsoft-signed code (or lift it with release)",
		Methods: restrict.Methods,
		Checks: []tokencheck.Check{
			{Name: "restrict", Needs: restrict.Needs},
			{Name: "restrictByName", Needs: restrict.NeedsByName},
		},
		Folders:  []string{"restrict-queue"},
		Defender: Use{Reads: true, Action: restrict.Kind.Path, Containment: restrict.Kind.Containment},
		Example:  Example{Method: http.MethodPost, Body: `{"machineId":"{machineId}","comment":"contain while investigating","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &restrict.Service{Client: d.Defender, Runner: d.runner, Logger: d.Logger}
		},
	},
	{
		Name:    "collect",
		Summary: "collect an investigation package from a device",
		Methods: collect.Methods,
		Checks: []tokencheck.Check{
			{Name: "collect", Needs: collect.Needs},
			{Name: "collectByName", Needs: collect.NeedsByName},
		},
		Folders:  []string{"collect-queue"},
		Defender: Use{Reads: true, Action: collect.Kind.Path},
		Example:  Example{Method: http.MethodPost, Body: `{"machineId":"{machineId}","comment":"forensics for the ticket","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &collect.Service{Client: d.Defender, Runner: d.runner, Logger: d.Logger}
		},
	},
	{
		Name:    "quarantine",
		Summary: "stop a file's processes on a device and quarantine it (by SHA-1)",
		Methods: quarantine.Methods,
		Checks: []tokencheck.Check{
			{Name: "quarantine", Needs: quarantine.Needs},
			{Name: "quarantineByName", Needs: quarantine.NeedsByName},
		},
		Folders:  []string{"quarantine-queue"},
		Defender: Use{Reads: true, Action: quarantine.Kind.Path},
		Example:  Example{Method: http.MethodPost, Body: `{"machineId":"{machineId}","sha1":"87662bc3d60e4200ceaf7aae249d1c343f4b83c9","comment":"known bad dropper","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &quarantine.Service{Client: d.Defender, Runner: d.runner, Logger: d.Logger}
		},
	},
	{
		Name:     "alert",
		Summary:  "write the ticket's verdict back to a Defender alert (status, assignee, classification, determination, comment)",
		Methods:  alert.Methods,
		Checks:   []tokencheck.Check{{Name: "alert", Needs: alert.Needs}},
		Folders:  []string{"alert-queue"},
		Defender: Use{Reads: true},
		// The simulator's defender.SampleAlertID.
		Example: Example{Method: http.MethodPost, Body: `{"alertId":"da637472900382838869_1364969609","status":"InProgress","assignedTo":"secop2@contoso.com","comment":"triage started","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &alert.Service{Client: d.Defender, DryRun: d.DryRun, Logger: d.Logger}
		},
	},
	{
		Name:     "indicators",
		Summary:  "block (or allow, audit, alert on) a hash, certificate, IP, domain or URL with Defender indicators, or delete one",
		Methods:  indicators.Methods,
		Checks:   []tokencheck.Check{{Name: "indicators", Needs: indicators.Needs}},
		Folders:  []string{"indicators-queue"},
		Defender: Use{Writes: true},
		Example:  Example{Method: http.MethodPost, Body: `{"indicatorType":"DomainName","indicatorValue":"malicious.example.net","action":"Block","title":"C2 domain from the investigation","severity":"High","expirationTime":"30d","ticket":"INC0012345"}`},
		New: func(d *Deps) http.Handler {
			return &indicators.Service{Client: d.Defender, NeverBlock: d.NeverBlock, DryRun: d.DryRun, Logger: d.Logger}
		},
	},
	{
		Name:    "actions",
		Summary: "a machine action's status (202 while it runs), its cancellation, a collection's package link",
		Methods: actions.Methods,
		Nested:  true,
		Checks: []tokencheck.Check{
			{Name: "actions", Needs: actions.Needs},
			{Name: "actionsCancel", Needs: actions.NeedsCancel},
			{Name: "actionsPackage", Needs: actions.NeedsPackage},
		},
		Folders:  []string{"actions-queue"},
		Defender: Use{Reads: true},
		Example:  Example{Method: http.MethodGet, Path: "/{actionId}"},
		New: func(d *Deps) http.Handler {
			return &actions.Service{Client: d.Defender, DryRun: d.DryRun, Logger: d.Logger}
		},
	},
	{
		Name:    "tokencheck",
		Summary: "inspect the functions' Defender token (or a supplied one) and what it allows",
		Methods: tokencheck.Methods,
		Checks:  []tokencheck.Check{{Name: "tokencheck"}},
		Example: Example{Method: http.MethodGet},
		New: func(d *Deps) http.Handler {
			return &tokencheck.Service{Tokens: d.Tokens, Verifier: d.Verifier, Checks: d.checks, Logger: d.Logger}
		},
	},
}

// Names lists the registered functions' names.
func Names() []string {
	out := make([]string, len(All))
	for i, s := range All {
		out[i] = s.Name
	}
	return out
}

// Lookup returns the Spec named name.
func Lookup(name string) (Spec, bool) {
	i := slices.IndexFunc(All, func(s Spec) bool { return s.Name == name })
	if i < 0 {
		return Spec{}, false
	}
	return All[i], true
}

// Checks lists every function's tokencheck entries.
func Checks() []tokencheck.Check {
	var out []tokencheck.Check
	for _, s := range All {
		out = append(out, s.Checks...)
	}
	return out
}

// Needs returns the needs of the tokencheck entry named name.
func Needs(name string) (auth.Needs, bool) {
	for _, c := range Checks() {
		if c.Name == name {
			return c.Needs, true
		}
	}
	return auth.Needs{}, false
}

// Nested lists the functions that answer paths below their own.
func Nested() map[string]bool {
	out := map[string]bool{}
	for _, s := range All {
		if s.Nested {
			out[s.Name] = true
		}
	}
	return out
}

// PermanentCodes lists every function's permanent codes.
func PermanentCodes() []envelope.Code {
	var out []envelope.Code
	for _, s := range All {
		for _, c := range s.PermanentCodes {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// Build builds the handler of every registered function from d. The action
// functions share one set of action rules, so the isolation budget is
// counted in one place per process.
func Build(d Deps) map[string]http.Handler {
	d.checks = Checks()
	d.runner = &action.Runner{
		Client:    d.Defender,
		Settings:  action.Settings{ProtectedTags: d.ProtectedTags, DryRun: d.DryRun, MaxIsolationsPerHour: d.MaxIsolationsPerHour},
		Requestor: d.Requestor,
		Logger:    d.Logger,
	}
	out := make(map[string]http.Handler, len(All))
	for _, s := range All {
		out[s.Name] = s.New(&d)
	}
	return out
}
