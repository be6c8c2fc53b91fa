package atp

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestConnectionReuse: answers read to their end put the connection back in
// the pool, so consecutive calls share one TCP (and, against Defender, one
// TLS) connection.
func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// Chunked answers whose JSON ends before the body does, as
		// Defender's large pages are streamed.
		switch r.URL.Path {
		case "/api/alerts":
			w.Write([]byte(`{"@odata.context":"x","value":[{"id":"a"},{"id":"b"}]}`))
		default:
			w.Write([]byte(`{"id":"` + r.URL.Path[len("/api/machines/"):] + `","computerDnsName":"h"}`))
		}
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond) // the rest arrives after the JSON was decoded
		w.Write([]byte("\n"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}), &Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, err := c.StreamAlerts(ctx, nil, func(json.RawMessage) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetMachine(ctx, "aa00000000000000000000000000000000000001"); err != nil {
			t.Fatal(err)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("10 sequential calls opened %d connections, want 1", got)
	}
}
