package tokencheck

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/sim"
)

// FuzzRequest posts hostile tokencheck bodies: the function never panics,
// answers 200 (a report) or 400 invalid_request (or 413 for an oversize
// body), and never echoes the supplied token.
func FuzzRequest(f *testing.F) {
	valid := testSim.IssueToken(sim.TokenSpec{Roles: []string{"Alert.Read.All"}})
	for _, seed := range []string{
		`{"token":"` + valid + `"}`, `{"token":"not.a.token"}`, `{"token":""}`, `{}`, `{"token":42}`,
		`{"token":"eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0."}`, `{"token":"a.b.c","extra":1}`, `[`, ``,
	} {
		f.Add([]byte(seed))
	}
	s := newService(tokenFunc(func(context.Context) (*oauth2.Token, error) {
		return nil, errors.New("no own token in the fuzz test")
	}))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/tokencheck", strings.NewReader(string(body))))
		var in struct {
			Token string `json:"token"`
		}
		supplied := json.Unmarshal(body, &in) == nil && in.Token != ""
		switch w.Code {
		case http.StatusOK:
			var out Result
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Errorf("POST %q = 200 %q: not a report", body, w.Body.String())
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			// The own-token path fails by design here; anything else is a bug.
			if supplied {
				t.Errorf("POST %q = %d %s, want 200 or 400", body, w.Code, w.Body.String())
			}
		}
		if supplied && len(in.Token) >= 20 && strings.Count(in.Token, ".") >= 2 && strings.Contains(w.Body.String(), in.Token) {
			t.Errorf("POST %q: the answer contains the supplied token", body)
		}
	})
}
