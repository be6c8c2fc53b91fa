package alerts

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestServeHTTPStreamsLargePages checks that a page larger than streamAfter
// is streamed to a network writer (no Content-Length) and sent whole, with
// a Content-Length, to a writer that cannot flush; both carry the same page.
func TestServeHTTPStreamsLargePages(t *testing.T) {
	s, def := newService(t, nil)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	const target = "/api/alerts?top=300&evidence=true"

	resp, err := http.Get(srv.URL + target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	streamed, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the answer: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
		t.Errorf("GET %s over the network = status %d, length %d, want 200 streamed (length -1)", target, resp.StatusCode, resp.ContentLength)
	}
	if len(streamed) <= streamAfter {
		t.Fatalf("GET %s = %d bytes, want more than %d for this test to mean anything", target, len(streamed), streamAfter)
	}

	w := &bufferOnly{header: http.Header{}}
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	if got, want := w.header.Get("Content-Length"), len(w.body); got != strconv.Itoa(want) {
		t.Errorf("GET %s to a buffer: Content-Length = %q, want %d", target, got, want)
	}
	if string(w.body) != string(streamed) {
		t.Errorf("GET %s: buffered answer (%d bytes) differs from the streamed one (%d bytes)", target, len(w.body), len(streamed))
	}
	var p page
	if err := json.Unmarshal(streamed, &p); err != nil {
		t.Fatal(err)
	}
	if p.Count != 300 || len(p.Value) != 300 || def.AlertCount() < 300 {
		t.Errorf("GET %s = count %d, %d values, want 300", target, p.Count, len(p.Value))
	}
}

// TestServeHTTPStreamFailure checks both sides of streamAfter when Defender's
// answer breaks off: before it, an error envelope; after it, a broken
// answer (the connection is aborted), never a short page that looks whole.
func TestServeHTTPStreamFailure(t *testing.T) {
	alert := `{"id":"da1","title":"` + strings.Repeat("x", 1000) + `"}`
	for _, tc := range []struct {
		name   string
		alerts int
		broken bool
	}{
		{"before the first byte", 10, false},
		{"while streaming", 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cut := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, `{"value":[`+alert)
				for range tc.alerts - 1 {
					io.WriteString(w, ","+alert)
				}
				panic(http.ErrAbortHandler) // the connection to Defender breaks
			})
			s, _ := newService(t, cut)
			srv := httptest.NewServer(s)
			t.Cleanup(srv.Close)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			resp, err := http.Get(srv.URL + "/api/alerts?top=1000")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if tc.broken {
				if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("reading a page broken after streaming started: err = %v, want io.ErrUnexpectedEOF (status %d, %d bytes)", err, resp.StatusCode, len(body))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var p page
			if jerr := json.Unmarshal(body, &p); jerr != nil || resp.StatusCode < 500 || p.Error == nil || p.Error.Code != "upstream_error" {
				t.Errorf("GET = %d %s, want 5xx with an upstream_error envelope", resp.StatusCode, body)
			}
		})
	}
}

// bufferOnly is a ResponseWriter that cannot flush, like the adapters'
// recorders.
type bufferOnly struct {
	header http.Header
	status int
	body   []byte
}

func (b *bufferOnly) Header() http.Header { return b.header }
func (b *bufferOnly) WriteHeader(s int)   { b.status = s }
func (b *bufferOnly) Write(p []byte) (int, error) {
	b.body = append(b.body, p...)
	return len(p), nil
}
