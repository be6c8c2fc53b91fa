package alerts

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

var base = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func newService(t *testing.T, faults http.Handler) (*Service, *defender.Server) {
	t.Helper()
	def := defender.New(defender.Options{Now: func() time.Time { return base }, RateLimits: &defender.RateLimits{}})
	h := http.Handler(def)
	if faults != nil {
		h = faults
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &Service{Client: c, Now: func() time.Time { return base }}, def
}

type page struct {
	Value    []map[string]any `json:"value"`
	Count    int              `json:"count"`
	NextSkip *int             `json:"nextSkip"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func get(t *testing.T, s *Service, method, target, body string) (int, page) {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(method, target, strings.NewReader(body)))
	var p page
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", method, target, w.Body, err)
	}
	return w.Code, p
}

func TestAlerts(t *testing.T) {
	s, def := newService(t, nil)
	all := def.Alerts()
	count := func(keep func(defender.Alert) bool) int {
		n := 0
		for _, a := range all {
			if keep(a) {
				n++
			}
		}
		return n
	}
	highNew := count(func(a defender.Alert) bool { return a.Severity == "High" && a.Status == "New" })
	highOrMedium := count(func(a defender.Alert) bool { return a.Severity == "High" || a.Severity == "Medium" })
	day := count(func(a defender.Alert) bool { return !a.AlertCreationTime.Before(base.Add(-24 * time.Hour)) })
	if highNew == 0 || highOrMedium == 0 || day == 0 {
		t.Fatalf("seed data too small: %d High/New, %d High|Medium, %d in a day", highNew, highOrMedium, day)
	}
	tests := []struct {
		name      string
		method    string
		target    string
		body      string
		wantCount int
		check     func(map[string]any) bool
	}{
		{"GET lists", "GET", "/api/alerts?severity=High&status=New&top=10000", "", highNew,
			func(a map[string]any) bool { return a["severity"] == "High" && a["status"] == "New" }},
		{"GET comma list", "GET", "/api/alerts?severity=High,Medium&top=10000", "", highOrMedium,
			func(a map[string]any) bool { return a["severity"] == "High" || a["severity"] == "Medium" }},
		{"GET repeated list", "GET", "/api/alerts?severity=High&severity=medium&top=10000", "", highOrMedium, nil},
		{"GET since duration", "GET", "/api/alerts?since=24h&top=10000", "", day, nil},
		{"GET since days", "GET", "/api/alerts?since=1d&top=10000", "", day, nil},
		{"GET since RFC 3339", "GET", "/api/alerts?since=" + url.QueryEscape(base.Add(-24*time.Hour).Format(time.RFC3339)) + "&top=10000", "", day, nil},
		{"POST arrays", "POST", "/api/alerts", `{"severity":["High"],"status":["New"],"top":10000}`, highNew, nil},
		{"POST single strings and string numbers", "POST", "/api/alerts", `{"severity":"High","status":"New","top":"10000"}`, highNew, nil},
		{"POST empty body", "POST", "/api/alerts", ``, min(len(all), DefaultTop), nil},
		{"machine", "GET", "/api/alerts?machineId=" + defender.KnownIPMachineID + "&top=10000", "",
			count(func(a defender.Alert) bool { return a.MachineID == defender.KnownIPMachineID }),
			func(a map[string]any) bool { return a["machineId"] == defender.KnownIPMachineID }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, p := get(t, s, tt.method, tt.target, tt.body)
			if status != 200 {
				t.Fatalf("%s %s = %d %+v, want 200", tt.method, tt.target, status, p.Error)
			}
			if p.Count != tt.wantCount || len(p.Value) != tt.wantCount {
				t.Errorf("count = %d (%d values), want %d", p.Count, len(p.Value), tt.wantCount)
			}
			for _, a := range p.Value {
				if tt.check != nil && !tt.check(a) {
					t.Errorf("alert %v does not match the filter", a["id"])
				}
				if ev, _ := a["evidence"].([]any); len(ev) > 0 {
					t.Errorf("alert %v has evidence without evidence=true", a["id"])
				}
			}
		})
	}
}

func TestPaging(t *testing.T) {
	s, def := newService(t, nil)
	total := def.AlertCount()
	seen := map[string]bool{}
	skip := 0
	for pages := 0; ; pages++ {
		if pages > total {
			t.Fatal("paging does not end")
		}
		status, p := get(t, s, "GET", "/api/alerts?top=97&skip="+itoa(skip), "")
		if status != 200 {
			t.Fatalf("page at skip %d = %d", skip, status)
		}
		for _, a := range p.Value {
			id := a["id"].(string)
			if seen[id] {
				t.Fatalf("alert %s seen twice", id)
			}
			seen[id] = true
		}
		if p.Count < 97 {
			if p.NextSkip != nil {
				t.Errorf("last page has nextSkip %d", *p.NextSkip)
			}
			break
		}
		if p.NextSkip == nil || *p.NextSkip != skip+97 {
			t.Fatalf("nextSkip = %v, want %d", p.NextSkip, skip+97)
		}
		skip = *p.NextSkip
	}
	if len(seen) != total {
		t.Errorf("paged through %d alerts, want %d", len(seen), total)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestEvidenceAndRaw(t *testing.T) {
	s, _ := newService(t, nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/api/alerts?machineId="+defender.KnownIPMachineID+"&evidence=true&top=10000", nil))
	var p struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || len(p.Value) == 0 {
		t.Fatalf("answer %s: %v", w.Body, err)
	}
	found := false
	for _, raw := range p.Value {
		var a map[string]any
		_ = json.Unmarshal(raw, &a)
		if a["id"] == defender.SampleAlertID {
			found = true
			if ev, _ := a["evidence"].([]any); len(ev) == 0 {
				t.Errorf("sample alert has no evidence with evidence=true")
			}
		}
	}
	if !found {
		t.Errorf("sample alert %s not listed for its machine", defender.SampleAlertID)
	}
}

func TestBadRequests(t *testing.T) {
	s, def := newService(t, nil)
	tests := []struct{ method, target, body string }{
		{"GET", "/api/alerts?severity=Critical", ""},
		{"GET", "/api/alerts?status=Open", ""},
		{"GET", "/api/alerts?top=0", ""},
		{"GET", "/api/alerts?top=10001", ""},
		{"GET", "/api/alerts?top=ten", ""},
		{"GET", "/api/alerts?skip=-1", ""},
		{"GET", "/api/alerts?since=yesterday", ""},
		{"GET", "/api/alerts?since=-5h", ""},
		{"GET", "/api/alerts?updatedSince=2024-13-01", ""},
		{"GET", "/api/alerts?machineId=abc", ""},
		{"GET", "/api/alerts?machineId=" + strings.Repeat("g", 40), ""},
		{"GET", "/api/alerts?evidence=maybe", ""},
		{"GET", "/api/alerts?sevrity=High", ""},
		{"POST", "/api/alerts", `{"severity":["High"],"bogus":1}`},
		{"POST", "/api/alerts", `{"severity":[1]}`},
		{"POST", "/api/alerts", `{"top":1.5}`},
		{"POST", "/api/alerts", `{"top":20000}`},
		{"POST", "/api/alerts", `{"severity":"High"} {"x":1}`},
		{"POST", "/api/alerts", `not json`},
		{"POST", "/api/alerts", `"High"`},
	}
	for _, tt := range tests {
		status, p := get(t, s, tt.method, tt.target, tt.body)
		if status != 400 || p.Error == nil || p.Error.Code != "invalid_request" {
			t.Errorf("%s %s %s = %d %+v, want 400 invalid_request", tt.method, tt.target, tt.body, status, p.Error)
		}
	}
	if n := def.Stats().Total(); n != 0 {
		t.Errorf("bad requests made %d Defender calls, want 0", n)
	}
	status, _ := get(t, s, "DELETE", "/api/alerts", "")
	if status != 405 {
		t.Errorf("DELETE = %d, want 405", status)
	}
}

func TestUpstreamFailure(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		wantCode string
		want     int
	}{
		{403, `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: Alert.Read.All","target":"c-1"}}`, "forbidden", 403},
		{500, `<html>oops</html>`, "upstream_error", 502},
		{200, `{"value":[{"id":1},`, "upstream_error", 502},
	} {
		s, _ := newService(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			w.Write([]byte(tc.body))
		}))
		status, p := get(t, s, "GET", "/api/alerts", "")
		if status != tc.want || p.Error == nil || p.Error.Code != tc.wantCode {
			t.Errorf("Defender %d %q → %d %+v, want %d %s", tc.status, tc.body, status, p.Error, tc.want, tc.wantCode)
		}
		if tc.wantCode == "forbidden" && !strings.Contains(p.Error.Message, "Alert.Read.All") {
			t.Errorf("forbidden message %q does not name the role", p.Error.Message)
		}
	}
}

func TestDo(t *testing.T) {
	s, _ := newService(t, nil)
	res, err := s.Do(t.Context(), Request{Severity: []string{"High"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, raw := range res.Value {
		var a struct{ ID, Severity string }
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("Do kept a corrupted alert %q: %v", raw, err)
		}
		if a.Severity != "High" || seen[a.ID] {
			t.Errorf("Do kept alert %s (%s) twice or of the wrong severity", a.ID, a.Severity)
		}
		seen[a.ID] = true
	}
	if res.Count != len(res.Value) || res.Count == 0 {
		t.Errorf("Do count = %d with %d values", res.Count, len(res.Value))
	}
}
