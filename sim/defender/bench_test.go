package defender

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	h http.Header
	n int64
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(b []byte) (int, error) { d.n += int64(len(b)); return len(b), nil }

func benchServer(b *testing.B, alerts int) *Server {
	b.Helper()
	return New(Options{Now: func() time.Time { return testBase }, RateLimits: &RateLimits{},
		Seed: &SeedOptions{Machines: 500, Alerts: alerts, Seed: 1}})
}

// BenchmarkAlertsPage10000 encodes one 10,000-alert page (of 100,000) in
// process: go test -run=^$ -bench=AlertsPage ./sim/defender/
func BenchmarkAlertsPage10000(b *testing.B) {
	for _, expand := range []bool{false, true} {
		name := "plain"
		path := "/api/alerts?$top=10000&$skip=5000"
		if expand {
			name, path = "evidence", path+"&$expand=evidence"
		}
		b.Run(name, func(b *testing.B) {
			s := benchServer(b, 100_000)
			req := httptest.NewRequest(http.MethodGet, path, nil)
			b.ReportAllocs()
			var n int64
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				s.ServeHTTP(w, req)
				n = w.n
			}
			b.SetBytes(n)
		})
	}
}

// BenchmarkAlertsFilter100000 filters 100,000 alerts and encodes the matches.
func BenchmarkAlertsFilter100000(b *testing.B) {
	s := benchServer(b, 100_000)
	req := httptest.NewRequest(http.MethodGet, "/api/alerts?$filter="+
		"severity%20in%20('High','Medium')%20and%20status%20eq%20'New'%20and%20alertCreationTime%20ge%202025-02-22T00:00:00Z&$top=10000", nil)
	b.ReportAllocs()
	for b.Loop() {
		s.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	}
}

// BenchmarkAlertsPageHTTP fetches a 10,000-alert page over loopback HTTP.
func BenchmarkAlertsPageHTTP(b *testing.B) {
	hs := httptest.NewServer(benchServer(b, 20_000))
	defer hs.Close()
	b.ReportAllocs()
	for b.Loop() {
		res, err := http.Get(hs.URL + "/api/alerts?$top=10000")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		b.SetBytes(n)
	}
}

// BenchmarkSeed100000 measures seeding 100,000 alerts.
func BenchmarkSeed100000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchServer(b, 100_000)
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		"severity eq 'High'", "severity in ('High','Medium') and status ne 'Resolved'",
		"alertCreationTime ge 2024-01-01T00:00:00Z", "assignedTo eq 'o''brien'", "not (incidentId gt 5)",
		"startswith(category,'Ex')", "machineTags/any(t: t eq 'x')", "((", "'", "a eq", "-", "2024-01-01T00:00:00+01:00",
	} {
		f.Add(s)
	}
	alerts := []*Alert{{ID: "x", Severity: SeverityHigh}, {AssignedTo: "o'brien", AlertCreationTime: testBase}}
	machines := []*Machine{{ID: "m", MachineTags: []string{"x"}}, {}}
	f.Fuzz(func(t *testing.T, src string) {
		if p, err := compileFilter(src, alertSchema); err == nil {
			for _, a := range alerts {
				p(a)
			}
		} else if toAPIError(err).status != http.StatusBadRequest {
			t.Fatalf("compileFilter(%q) error status %d", src, toAPIError(err).status)
		}
		if p, err := compileFilter(src, machineSchema); err == nil {
			for _, m := range machines {
				p(m)
			}
		}
	})
}
