package platform

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// waitFor polls url until it answers.
func waitFor(t *testing.T, url string) *http.Response {
	t.Helper()
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			return resp
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
	return nil
}

func TestRunServers(t *testing.T) {
	tests := []struct {
		name  string
		env   func(addr string) map[string]string
		probe string
	}{
		{"local", func(addr string) map[string]string { return map[string]string{"MDE_LISTEN_ADDR": addr} }, "/api/openapi.json"},
		{"azure", func(addr string) map[string]string {
			_, port, _ := net.SplitHostPort(addr)
			return map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": port, "MDE_LISTEN_ADDR": "127.0.0.1:1"}
		}, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			slow := make(chan struct{})
			fx.app.Functions["isolate"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(slow)
				time.Sleep(200 * time.Millisecond)
				_, _ = io.WriteString(w, `{"done":true}`)
			})
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			env := tt.env(addr)
			go func() { done <- Run(ctx, fx.app, "", env["MDE_LISTEN_ADDR"], envOf(env)) }()

			resp := waitFor(t, "http://"+addr+tt.probe)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d, want 200", tt.probe, resp.StatusCode)
			}

			// An invocation running when ctx ends still completes.
			answered := make(chan string, 1)
			go func() {
				resp, err := http.Post("http://"+addr+"/api/isolate", "application/json", strings.NewReader("{}"))
				if err != nil {
					answered <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				answered <- string(b)
			}()
			<-slow
			cancel()
			if got := <-answered; got != `{"done":true}` {
				t.Errorf("in-flight answer = %q, want it completed during shutdown", got)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil after ctx ends", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after ctx ended")
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name     string
		function string
		env      map[string]string
	}{
		{"lambda without function", "", map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}},
		{"lambda unknown function", "nope", map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}},
		{"azure port not a number", "", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}},
		{"azure port out of range", "", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "70000"}},
		{"listen address in use", "", map[string]string{"MDE_LISTEN_ADDR": busy.Addr().String()}},
		{"listen address malformed", "", map[string]string{"MDE_LISTEN_ADDR": "not an address"}},
		{"no listen address", "", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := Run(ctx, fx.app, tt.function, tt.env["MDE_LISTEN_ADDR"], envOf(tt.env)); err == nil {
				t.Errorf("Run(%v) = nil, want an error", tt.env)
			}
		})
	}
}
