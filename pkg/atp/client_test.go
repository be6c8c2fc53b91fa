package atp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewClientBaseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "https://api.security.microsoft.com", want: "https://api.security.microsoft.com"},
		{in: "https://eu.api.security.microsoft.com/", want: "https://eu.api.security.microsoft.com"},
		{in: "https://api.security.microsoft.com/api", want: "https://api.security.microsoft.com"},
		{in: "http://127.0.0.1:8080/prefix/", want: "http://127.0.0.1:8080/prefix"},
		{in: "", wantErr: true},
		{in: "ftp://x", wantErr: true},
		{in: "https://", wantErr: true},
		{in: "https://user:pw@host", wantErr: true},
		{in: "https://host/?q=1", wantErr: true},
		{in: "://bad", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := NewClient(tt.in, &fakeTokens{}, nil)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewClient(%q) = %v, want error", tt.in, c.base)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("NewClient(%q) error %q leaks the password", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient(%q) = %v", tt.in, err)
			}
			if c.base != tt.want {
				t.Errorf("NewClient(%q).base = %q, want %q", tt.in, c.base, tt.want)
			}
		})
	}
	if _, err := NewClient("https://x", nil, nil); err == nil {
		t.Errorf("NewClient with nil token source = nil error, want error")
	}
}

func TestHeaders(t *testing.T) {
	var got http.Header
	h := jsonHandler(200, `{"id":"`+machineID1+`"}`, func(r *http.Request) { got = r.Header.Clone() })
	tests := []struct {
		name   string
		ua     string
		wantUA string
	}{
		{name: "default", wantUA: "mdefn/" + Version},
		{name: "custom", ua: "soar/1.0", wantUA: "soar/1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, h, nil, &Options{UserAgent: tt.ua})
			if _, err := c.GetMachine(context.Background(), machineID1); err != nil {
				t.Fatalf("GetMachine() = %v", err)
			}
			if ua := got.Get("User-Agent"); ua != tt.wantUA {
				t.Errorf("User-Agent = %q, want %q", ua, tt.wantUA)
			}
			if a := got.Get("Authorization"); a != "Bearer "+testToken {
				t.Errorf("Authorization = %q, want bearer token", a)
			}
			if a := got.Get("Accept"); a != "application/json" {
				t.Errorf("Accept = %q, want application/json", a)
			}
		})
	}
}

func TestNoRedirects(t *testing.T) {
	var leaked atomic.Bool
	other := jsonHandler(200, `{}`, func(r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
	})
	_, otherSrv := newTestClient(t, other, nil, nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/steal", http.StatusFound)
	})
	c, _ := newTestClient(t, h, nil, nil)
	_, err := c.GetMachine(context.Background(), machineID1)
	if re := asResponseError(t, err); re.StatusCode != http.StatusFound {
		t.Errorf("GetMachine() status = %d, want 302", re.StatusCode)
	}
	if leaked.Load() {
		t.Errorf("redirect was followed with the bearer token")
	}
}

func TestHTTPClientTimeoutAndTransport(t *testing.T) {
	var used atomic.Bool
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	c, _ := newTestClient(t, h, nil, &Options{HTTPClient: &http.Client{Transport: rt, Timeout: 50 * time.Millisecond}, MaxRetries: -1})
	_, err := c.GetMachine(context.Background(), machineID1)
	if err == nil {
		t.Fatalf("GetMachine() = nil error, want timeout")
	}
	if !used.Load() {
		t.Errorf("Options.HTTPClient.Transport was not used")
	}
	var re *ResponseError
	if errors.As(err, &re) {
		t.Errorf("GetMachine() = %v, want a transport error", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
