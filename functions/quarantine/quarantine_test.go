package quarantine

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

const (
	sha1A = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
	sha1B = "0123456789abcdef0123456789abcdef01234567"
)

func TestCheckSha1(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"machineId":"` + defender.UniqueMachineID + `","comment":"c","sha1":"` + sha1A + `"}`:                  true,
		`{"machineId":"` + defender.UniqueMachineID + `","comment":"c","sha1":"` + strings.ToUpper(sha1A) + `"}`: true,
		`{"machineId":"` + defender.UniqueMachineID + `","comment":"c","sha1":"` + sha1A[:39] + `"}`:             false,
		`{"machineId":"` + defender.UniqueMachineID + `","comment":"c","sha1":"` + sha1A[:39] + `g"}`:            false,
		`{"machineId":"` + defender.UniqueMachineID + `","comment":"c"}`:                                         false,
		`{"machineId":"` + defender.UniqueMachineID + `","comment":"c","sha1":"` + sha1A + `0000000000000000"}`:  false,
	} {
		var r Request
		err := decode.JSON([]byte(body), &r)
		var got string
		if err == nil {
			_, got, err = r.check()
		}
		var e *envelope.Error
		if ok && (err != nil || got != sha1A) {
			t.Errorf("check(%s) = %q, %v; want %s", body, got, err, sha1A)
		}
		if !ok && (!errors.As(err, &e) || e.Code != envelope.InvalidRequest) {
			t.Errorf("check(%s) error %v, want invalid_request", body, err)
		}
	}
}

// TestOtherFilePending: while a quarantine of one file is pending on a
// device, a quarantine of another file is not "already pending": Defender
// refused it, and the answer says so.
func TestOtherFilePending(t *testing.T) {
	def := defender.New(defender.Options{RateLimits: &defender.RateLimits{}})
	srv := httptest.NewServer(def)
	defer srv.Close()
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Client: c, Runner: &action.Runner{Client: c}}
	post := func(sha1 string) (int, map[string]any) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/quarantine",
			strings.NewReader(`{"machineId":"`+defender.UniqueMachineID+`","comment":"c","sha1":"`+sha1+`"}`)))
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	if status, out := post(sha1A); status != http.StatusCreated {
		t.Fatalf("first quarantine = %d %v, want 201", status, out)
	}
	if status, out := post(sha1A); status != http.StatusOK || out["alreadyPending"] != true {
		t.Errorf("same file again = %d %v, want 200 alreadyPending", status, out)
	}
	status, out := post(sha1B)
	e, _ := out["error"].(map[string]any)
	if status == http.StatusOK || status == http.StatusCreated || out["alreadyPending"] == true {
		t.Errorf("another file while one is pending = %d %v, want a failure, not the other file's action", status, out)
	} else if msg, _ := e["message"].(string); !strings.Contains(msg, "StopAndQuarantineFile") {
		t.Errorf("another file while one is pending: message %q does not name the pending action", msg)
	}

}

// FuzzRequest: hostile quarantine bodies never panic; an accepted one has a
// valid lower-case SHA-1.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"machineId":"` + defender.UniqueMachineID + `","comment":"c","sha1":"` + sha1A + `"}`, `{"sha1":1}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		err := decode.JSON(body, &r)
		var sha1 string
		if err == nil {
			_, sha1, err = r.check()
		}
		var e *envelope.Error
		if err != nil {
			if !errors.As(err, &e) || e.Code != envelope.InvalidRequest {
				t.Errorf("%q: error %v, want invalid_request", body, err)
			}
			return
		}
		if !atp.ValidSHA1(sha1) || strings.ToLower(sha1) != sha1 {
			t.Errorf("%q: accepted sha1 %q", body, sha1)
		}
	})
}
