package alerts

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

// BenchmarkParseQuery decodes a GET alerts request with every parameter.
//
//	go test -run '^$' -bench . -benchmem ./functions/alerts
func BenchmarkParseQuery(b *testing.B) {
	q, err := url.ParseQuery("severity=High,Medium&status=New&status=InProgress&since=7d&updatedSince=36h" +
		"&machineId=1e5b2c3d4e5f60718293a4b5c6d7e8f901234567&top=100&skip=200&evidence=true")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseQuery(q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSON decodes the same request as a POST body.
func BenchmarkDecodeJSON(b *testing.B) {
	body := []byte(`{"severity":["High","Medium"],"status":"New","since":"7d","updatedSince":"36h",` +
		`"machineId":"1e5b2c3d4e5f60718293a4b5c6d7e8f901234567","top":"100","skip":200,"evidence":true}`)
	b.ReportAllocs()
	for b.Loop() {
		var r Request
		if err := decode.JSON(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOptions turns a decoded request into the client's options
// (time filters resolved, OData built by the client from them).
func BenchmarkOptions(b *testing.B) {
	q, _ := url.ParseQuery("severity=High,Medium&status=New&since=7d&updatedSince=36h&top=100")
	r, err := ParseQuery(q)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		o, err := r.Options(now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := atp.BuildAlertFilter(o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTP streams pages of the Defender fake through the whole
// function (query decoding, the client, the answer) over loopback HTTP, to
// a caller on the network and to a buffer as the adapters use. The page of
// 10,000 alerts with evidence is about 30 MB; B/op shows it is not held.
func BenchmarkServeHTTP(b *testing.B) {
	def := defender.New(defender.Options{
		Now:        func() time.Time { return base },
		RateLimits: &defender.RateLimits{},
		Seed:       &defender.SeedOptions{Machines: 50, Alerts: 10000, Seed: 1},
	})
	up := httptest.NewServer(def)
	b.Cleanup(up.Close)
	c, err := atp.NewClient(up.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, MaxRetries: -1})
	if err != nil {
		b.Fatal(err)
	}
	s := &Service{Client: c, Now: func() time.Time { return base }}
	fn := httptest.NewServer(s)
	b.Cleanup(fn.Close)
	for _, tc := range []struct{ name, query string }{
		{"top10", "top=10&severity=High,Medium"},
		{"top10000evidence", "top=10000&evidence=true"},
	} {
		b.Run(tc.name+"/network", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := http.Get(fn.URL + "/api/alerts?" + tc.query)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s = %d, %v", tc.query, resp.StatusCode, err)
				}
				b.SetBytes(n)
			}
		})
		b.Run(tc.name+"/buffer", func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/api/alerts?"+tc.query, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := &bufferOnly{header: http.Header{}}
				s.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("GET %s = %d %.200s", tc.query, w.status, w.body)
				}
				b.SetBytes(int64(len(w.body)))
			}
		})
	}
}

// BenchmarkDo is the Do path (a copy of every alert kept), for comparison
// with ServeHTTP's streaming.
func BenchmarkDo(b *testing.B) {
	def := defender.New(defender.Options{Now: func() time.Time { return base }, RateLimits: &defender.RateLimits{}})
	up := httptest.NewServer(def)
	b.Cleanup(up.Close)
	c, err := atp.NewClient(up.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, MaxRetries: -1})
	if err != nil {
		b.Fatal(err)
	}
	s := &Service{Client: c, Now: func() time.Time { return base }}
	var r Request
	if err := json.NewDecoder(strings.NewReader(`{"top":100}`)).Decode(&r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Do(b.Context(), r)
		if err != nil || res.Count != 100 {
			b.Fatalf("Do() = %v, %v", res, err)
		}
	}
}
