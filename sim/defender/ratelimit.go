package defender

import (
	"maps"
	"sort"
	"sync"
	"time"
)

// limiter keeps, per tenant and application, the times of the calls it let
// through in the last hour (sliding windows). Refused calls do not count.
type limiter struct {
	mu     sync.Mutex
	limits RateLimits
	hits   map[string][]time.Time
}

func (l *limiter) set(rl RateLimits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limits = rl
	l.hits = make(map[string][]time.Time)
}

// allow records a call by key at now, or refuses it and says how long until
// it would be allowed.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limits
	if lim.PerMinute <= 0 && lim.PerHour <= 0 {
		return true, 0
	}
	keep := time.Minute
	if lim.PerHour > 0 {
		keep = time.Hour
	}
	h := l.hits[key]
	// Drop calls that left the longest window.
	cut := sort.Search(len(h), func(i int) bool { return h[i].After(now.Add(-keep)) })
	h = h[cut:]
	var retry time.Duration
	if lim.PerHour > 0 && len(h) >= lim.PerHour {
		retry = max(retry, h[len(h)-lim.PerHour].Add(time.Hour).Sub(now))
	}
	if lim.PerMinute > 0 {
		i := sort.Search(len(h), func(i int) bool { return h[i].After(now.Add(-time.Minute)) })
		if len(h)-i >= lim.PerMinute {
			retry = max(retry, h[len(h)-lim.PerMinute].Add(time.Minute).Sub(now))
		}
	}
	if retry > 0 {
		l.hits[key] = h
		return false, retry
	}
	l.hits[key] = append(h, now)
	return true, 0
}

// Stats are the server's call counters since New or the last ResetStats.
type Stats struct {
	// Calls counts API requests per route, keyed like "GET /api/alerts",
	// "GET /api/alerts/{id}", "GET /api/machines/findbyip",
	// "POST /api/machines/{id}/isolate" (and likewise unisolate,
	// runAntiVirusScan, restrictCodeExecution, unrestrictCodeExecution,
	// collectInvestigationPackage, StopAndQuarantineFile, spelled as
	// documented), "GET /api/machineactions/{id}",
	// "POST /api/machineactions/{id}/cancel",
	// "GET /api/machineactions/{id}/GetPackageUri" (UnmatchedRoute for the
	// rest). Every request counts, refused or not. Package downloads are
	// not API requests: they count in PackageDownloads only.
	Calls map[string]int
	// CallsByApp counts authenticated requests per "tenantID/appID".
	CallsByApp map[string]int
	// Unauthorized counts 401 answers; Throttled counts 429 answers.
	Unauthorized int
	Throttled    int
	// PackageDownloads counts investigation packages served (200 answers
	// to package links).
	PackageDownloads int
}

// Total returns the number of requests of every route.
func (st Stats) Total() int {
	n := 0
	for _, c := range st.Calls {
		n += c
	}
	return n
}

type statsCounter struct {
	mu sync.Mutex
	st Stats
}

func (c *statsCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = Stats{Calls: map[string]int{}, CallsByApp: map[string]int{}}
}

func (c *statsCounter) count(route, app string, throttled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Calls[route]++
	switch {
	case app == "":
		c.st.Unauthorized++
	case throttled:
		c.st.Throttled++
		c.st.CallsByApp[app]++
	default:
		c.st.CallsByApp[app]++
	}
}

func (c *statsCounter) countDownload() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.PackageDownloads++
}

func (c *statsCounter) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Calls: maps.Clone(c.st.Calls), CallsByApp: maps.Clone(c.st.CallsByApp),
		Unauthorized: c.st.Unauthorized, Throttled: c.st.Throttled, PackageDownloads: c.st.PackageDownloads}
}
