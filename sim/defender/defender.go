// Package defender is an in-memory fake of the Microsoft Defender for
// Endpoint API (alerts, machines, machine actions), used by the mdefn
// simulator, its tests and benchmarks.
//
// It serves the documented routes under /api (segment names match
// case-insensitively):
//
//	GET  /api/alerts                 $filter $top $skip $expand=evidence
//	GET  /api/alerts/{id}
//	GET  /api/machines               $filter $top $skip
//	GET  /api/machines/{id}          id, or a computer name
//	GET  /api/machines/findbyip(ip='10.1.2.3',timestamp=2024-09-22T08:44:05Z)
//	POST /api/machines/{id}/isolate                     {"Comment": "...", "IsolationType": "Full"}
//	POST /api/machines/{id}/unisolate                   {"Comment": "..."}
//	POST /api/machines/{id}/runAntiVirusScan            {"Comment": "...", "ScanType": "Quick"}
//	POST /api/machines/{id}/restrictCodeExecution       {"Comment": "..."}
//	POST /api/machines/{id}/unrestrictCodeExecution     {"Comment": "..."}
//	POST /api/machines/{id}/collectInvestigationPackage {"Comment": "..."}
//	POST /api/machines/{id}/StopAndQuarantineFile       {"Comment": "...", "Sha1": "<40 hex>"}
//	GET  /api/machineactions                            $filter $top $skip
//	GET  /api/machineactions/{id}
//	POST /api/machineactions/{id}/cancel                {"Comment": "..."}
//	GET  /api/machineactions/{id}/GetPackageUri
//
// and, without a bearer token (the link carries its own signature), the
// investigation package download links that GetPackageUri hands out:
//
//	GET  /packages/{id}?se=<expiry>&sig=<signature>
//
// Every API request is authorized by Options.Authorize (401), rate limited
// per tenant and application (429 with Retry-After; GetPackageUri also has
// its own, lower, documented limit), and checked against the permissions
// Microsoft documents for the endpoint (403 naming them). Every error body
// is {"error":{"code","message","target"}} with a fresh correlation GUID in
// target.
//
// Data is seeded deterministically (see SeedOptions and the Seed* constants
// for the records tests can rely on). Machine actions progress on the
// Options.Now clock: Pending, then InProgress, then Succeeded (see
// ActionTimings; SetActionOutcome, FailAction and FailNextAction make them
// end otherwise); the device's isolation and app restriction states follow.
// Only one action of a type may be Pending or InProgress on a device
// (Isolate and Unisolate count as one type): another is refused with 400
// ActiveRequestAlreadyExists. A Pending or InProgress action can be
// cancelled. A Succeeded CollectInvestigationPackage action has a package,
// downloadable for PackageURILifetime after GetPackageUri.
//
// A Server is safe for concurrent use.
package defender

import (
	"crypto/rand"
	"net/http"
	"sync"
	"time"
)

// Principal is the caller identified from a verified bearer token.
type Principal struct {
	TenantID string
	AppID    string // appid claim
	ObjectID string // oid claim
	UPN      string // delegated tokens only
	Roles    []string
	Scopes   []string // delegated tokens only (scp claim split on spaces)
}

// Delegated reports whether the principal came from a delegated (user) token.
func (p Principal) Delegated() bool { return len(p.Scopes) > 0 }

// Application permissions (app roles) and delegated permissions (scopes) of
// the WindowsDefenderATP API used here. The machine action permissions have
// the same name in both kinds.
const (
	RoleAlertReadAll              = "Alert.Read.All"
	RoleAlertReadWriteAll         = "Alert.ReadWrite.All"
	RoleMachineReadAll            = "Machine.Read.All"
	RoleMachineReadWriteAll       = "Machine.ReadWrite.All"
	RoleMachineIsolate            = "Machine.Isolate"
	RoleMachineScan               = "Machine.Scan"
	RoleMachineRestrictExecution  = "Machine.RestrictExecution"
	RoleMachineCollectForensics   = "Machine.CollectForensics"
	RoleMachineStopAndQuarantine  = "Machine.StopAndQuarantine"
	RoleMachineOffboard           = "Machine.Offboard"
	RoleMachineLiveResponse       = "Machine.LiveResponse"
	RoleTiReadWrite               = "Ti.ReadWrite"
	RoleTiReadWriteAll            = "Ti.ReadWrite.All"
	ScopeAlertRead                = "Alert.Read"
	ScopeAlertReadWrite           = "Alert.ReadWrite"
	ScopeMachineRead              = "Machine.Read"
	ScopeMachineReadWrite         = "Machine.ReadWrite"
	ScopeMachineIsolate           = "Machine.Isolate"
	ScopeMachineScan              = "Machine.Scan"
	ScopeMachineRestrictExecution = "Machine.RestrictExecution"
	ScopeMachineCollectForensics  = "Machine.CollectForensics"
	ScopeMachineStopAndQuarantine = "Machine.StopAndQuarantine"
	ScopeMachineOffboard          = "Machine.Offboard"
	ScopeMachineLiveResponse      = "Machine.LiveResponse"
	ScopeTiReadWrite              = "Ti.ReadWrite"

	// DefaultAppID is the application ID of DefaultPrincipal.
	DefaultAppID = "5c1e7a9d-3b2f-4c6e-8a0d-7f4b2e9c1a56"

	defaultPerMinute = 100
	defaultPerHour   = 1500
	// GetPackageUri's own documented limits.
	defaultPackageURIPerMinute = 2
	defaultPackageURIPerHour   = 120
)

// DefaultPrincipal is the caller assumed when Options.Authorize is nil: an
// application of the seed tenant holding every application role the
// simulator's endpoints need (not Machine.Offboard nor
// Machine.LiveResponse, which only cancel accepts).
var DefaultPrincipal = Principal{
	TenantID: SeedTenantID,
	AppID:    DefaultAppID,
	Roles: []string{RoleAlertReadAll, RoleAlertReadWriteAll, RoleMachineReadAll, RoleMachineReadWriteAll, RoleMachineIsolate,
		RoleMachineScan, RoleMachineRestrictExecution, RoleMachineCollectForensics, RoleMachineStopAndQuarantine, RoleTiReadWriteAll},
}

// Options configure a Server. The zero value is usable.
type Options struct {
	// Authorize verifies the request's bearer token. A non-nil error means
	// 401. Nil means every request is DefaultPrincipal.
	Authorize func(r *http.Request) (Principal, error)
	// Now is the simulator's clock; nil means time.Now.
	Now func() time.Time
	// Seed sizes the seeded data; nil means DefaultSeed.
	Seed *SeedOptions
	// RateLimits; nil means Defender's 100 calls a minute and 1,500 an hour
	// (GetPackageUri: 2 and 120).
	RateLimits *RateLimits
	// ActionTimings; nil means DefaultActionTimings.
	ActionTimings *ActionTimings
	// PackageBaseURL is the scheme and host (and optional path prefix) of
	// the investigation package links GetPackageUri hands out, for an
	// embedder that serves PackageHandler on a listener of its own (as
	// Defender serves packages from another host). Empty means the host the
	// GetPackageUri request came to, whose ServeHTTP serves the links.
	PackageBaseURL string
}

// RateLimits caps calls per tenant and application in sliding windows of
// one minute and one hour. A zero field means no limit for that window.
// PackageURIPerMinute and PerHour are GetPackageUri's own limits, applied
// on top of the others (Defender documents 2 a minute and 120 an hour).
type RateLimits struct {
	PerMinute           int
	PerHour             int
	PackageURIPerMinute int
	PackageURIPerHour   int
}

// defaultRateLimits are Defender's documented limits.
var defaultRateLimits = RateLimits{PerMinute: defaultPerMinute, PerHour: defaultPerHour,
	PackageURIPerMinute: defaultPackageURIPerMinute, PackageURIPerHour: defaultPackageURIPerHour}

// ActionTimings say when a new machine action turns InProgress and when it
// completes, counted from its creation.
type ActionTimings struct {
	InProgressAfter time.Duration
	CompletedAfter  time.Duration
}

// DefaultActionTimings: InProgress after 5 s, completed after 20 s.
var DefaultActionTimings = ActionTimings{InProgressAfter: 5 * time.Second, CompletedAfter: 20 * time.Second}

// Server serves the Defender API under /api/.
type Server struct {
	opts Options
	now  func() time.Time
	seed SeedOptions
	base time.Time // seed base time: Now() at New

	mu               sync.RWMutex
	machines         []*Machine          // insertion order
	machineByID      map[string]*Machine // lowercase id
	alerts           []*Alert            // newest first; replaced, never mutated in place
	alertByID        map[string]*Alert
	actions          []*action
	actionByID       map[string]*action
	actionsByMachine map[string][]*action
	timings          ActionTimings
	outcome          ActionStatus
	failRules        []failRule // FailNextAction, oldest first

	packageKey []byte // signs package links

	indicators indicatorStore

	limiter    limiter
	pkgLimiter limiter // GetPackageUri's own limits
	stats      statsCounter
}

// New returns a Server with seeded data.
func New(opts Options) *Server {
	s := &Server{opts: opts, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.seed = DefaultSeed
	if opts.Seed != nil {
		s.seed = *opts.Seed
	}
	s.base = s.now()
	s.timings = DefaultActionTimings
	if opts.ActionTimings != nil {
		s.timings = *opts.ActionTimings
	}
	s.packageKey = make([]byte, 32)
	_, _ = rand.Read(s.packageKey)
	s.SetRateLimits(s.optRateLimits())
	s.outcome = ActionSucceeded
	s.stats.reset()
	s.loadSeed()
	return s
}

// optRateLimits returns the Options' rate limits, or Defender's.
func (s *Server) optRateLimits() RateLimits {
	if s.opts.RateLimits != nil {
		return *s.opts.RateLimits
	}
	return defaultRateLimits
}
