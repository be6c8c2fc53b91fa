package restrict

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

// TestRelease: release lifts a restriction with unrestrictCodeExecution, and
// is never refused for a protected device (only restricting is).
func TestRelease(t *testing.T) {
	def := defender.New(defender.Options{RateLimits: &defender.RateLimits{}})
	srv := httptest.NewServer(def)
	defer srv.Close()
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Client: c, Runner: &action.Runner{Client: c, Settings: action.Settings{ProtectedTags: []string{defender.ProtectedTag}}}}
	post := func(body string) (int, map[string]any) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/restrict", strings.NewReader(body)))
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	status, out := post(`{"machineId":"` + defender.PayrollMachineID + `","comment":"lift","release":true}`)
	a, _ := out["action"].(map[string]any)
	if status != http.StatusCreated || a["type"] != string(atp.ActionUnrestrictCodeExecution) {
		t.Errorf("release on a protected device = %d %v, want 201 UnrestrictCodeExecution", status, out)
	}
	status, out = post(`{"machineId":"` + defender.PayrollMachineID + `","comment":"contain"}`)
	if status != http.StatusForbidden {
		t.Errorf("restrict on a protected device = %d %v, want 403", status, out)
	}
	status, out = post(`{"machineId":"` + defender.UniqueMachineID + `","comment":"dry","release":"true","dryRun":true}`)
	req, _ := out["request"].(map[string]any)
	if status != http.StatusOK || req["path"] != "/api/machines/"+defender.UniqueMachineID+"/unrestrictCodeExecution" {
		t.Errorf("dry-run release = %d %v, want the unrestrictCodeExecution path", status, out)
	}
}
