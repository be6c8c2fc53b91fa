package faults_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/internal/httpguard"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// TestLeakCanary runs every function, in every credential mode, through
// successes and failures (refused token, upstream errors, bad input, a bad
// webhook signature, a supplied token), and asserts that no canary (client
// secret, password, private key, webhook secret, any issued token) appears
// in any answer, header or log line.
func TestLeakCanary(t *testing.T) {
	t.Parallel()
	pwJSON, _ := json.Marshal(map[string]string{"username": canaryUserUPN, "password": canaryUserPassword})
	modes := []struct {
		name string
		env  map[string]string
	}{
		{"client-secret", nil},
		{"password", map[string]string{"MDE_AUTH": "password", "MDE_CLIENT_ID": sim.DefaultPublicClientID, "MDE_CLIENT_SECRET": string(pwJSON)}},
		{"client-certificate", map[string]string{"MDE_AUTH": "client-certificate", "MDE_CLIENT_ID": canaryCertClientID, "MDE_CLIENT_SECRET": canaryCertPEM + canaryKeyPEM}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, nil)
			env := simEnv(s, m.env)
			env["MDE_WEBHOOK_SECRET"] = canaryWebhook
			env["MDE_PROTECTED_TAGS"] = defender.ProtectedTag
			st := newStack(t, s, env)

			for _, fn := range functions.Names() {
				if a := st.call(fn); a.status/100 != 2 {
					t.Errorf("%s in %s mode = %v, want a success", fn, m.name, a)
				}
			}
			supplied := s.IssueToken(sim.TokenSpec{ExpiresAt: s.Now().Add(-2 * time.Hour), IssuedAt: s.Now().Add(-3 * time.Hour)})
			if a := st.do(http.MethodPost, tokenPath, `{"token":"`+supplied+`"}`); a.status != 200 || a.json()["valid"] != false {
				t.Errorf("tokencheck of an expired token = %v, want 200 valid false", a)
			}
			failures := []struct {
				name string
				do   func() answer
			}{
				{"bad input", func() answer { return st.do(http.MethodGet, "/api/alerts?top=abc&since="+canaryClientSecret, "") }},
				{"protected device", func() answer { return st.do(http.MethodPost, isolatePath, isolateBody(defender.DCMachineID)) }},
				{"unsigned", func() answer {
					req, _ := http.NewRequest(http.MethodPost, st.srv.URL+isolatePath, strings.NewReader(isolateBody(defender.UniqueMachineID)))
					req.Header.Set("X-Hub-Signature-256", httpguard.Sign([]byte("wrong"), []byte("x")))
					return st.send(req)
				}},
				{"Defender 500", func() answer {
					h := s.Inject(sim.Defender, sim.Fault{Status: 500, Body: []byte(`{"error":{"code":"InternalServerError","message":"boom"}}`)})
					defer h.Remove()
					return st.call("alerts")
				}},
				{"Defender 401", func() answer {
					h := s.Inject(sim.Defender, sim.Fault{Status: 401, Body: []byte(`{"error":{"code":"Unauthorized","message":"bad token"}}`)})
					defer h.Remove()
					return st.call("isolate")
				}},
			}
			for _, f := range failures {
				if a := f.do(); a.status < 400 {
					t.Errorf("%s in %s mode = %v, want a failure", f.name, m.name, a)
				}
			}
			// A refused token: a fresh stack has no token cached.
			s.Inject(sim.Entra, sim.Fault{Method: http.MethodPost, Status: 401, Header: jsonHeader(),
				Body: []byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)})
			st2 := newStack(t, s, env)
			for _, fn := range functions.Names() {
				if a := st2.call(fn); a.code() != "token_acquisition_failed" {
					t.Errorf("%s with Entra refusing in %s mode = %v, want token_acquisition_failed", fn, m.name, a)
				}
			}
			checkLeaks(t, st.answers.String()+st.logs.String()+st2.answers.String()+st2.logs.String())
			if strings.Contains(st.answers.String()+st.logs.String(), supplied[len(supplied)-20:]) {
				t.Errorf("the supplied token's signature appears in an answer or a log line")
			}
		})
	}
}

// TestWebhookHardening: through the HTTP surface, a missing or invalid
// signature, a wrong prefix, a body altered after signing and an oversize
// body are refused (401 or 413) before any upstream call.
func TestWebhookHardening(t *testing.T) {
	t.Parallel()
	s := newSim(t, nil)
	env := simEnv(s, map[string]string{"MDE_WEBHOOK_SECRET": canaryWebhook})
	st := newStack(t, s, env)
	body := isolateBody(defender.UniqueMachineID)
	good := httpguard.Sign([]byte(canaryWebhook), []byte(body))
	big := `{"comment":"` + strings.Repeat("x", 1<<20) + `"}`
	cases := []struct {
		name, body, sig string
		status          int
	}{
		{"missing", body, "", 401},
		{"invalid", body, "sha256=" + strings.Repeat("0", 64), 401},
		{"wrong prefix", body, "sha1=" + strings.TrimPrefix(good, "sha256="), 401},
		{"no prefix", body, strings.TrimPrefix(good, "sha256="), 401},
		{"altered body", strings.Replace(body, "fault matrix", "fault matrjx", 1), good, 401},
		{"oversize", big, httpguard.Sign([]byte(canaryWebhook), []byte(big)), 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.ResetStats()
			req, _ := http.NewRequest(http.MethodPost, st.srv.URL+isolatePath, strings.NewReader(c.body))
			if c.sig != "" {
				req.Header.Set("X-Hub-Signature-256", c.sig)
			}
			a := st.send(req)
			if a.status != c.status {
				t.Errorf("POST isolate with %s signature = %v, want %d", c.name, a, c.status)
			}
			if n := len(s.Requests()); n != 0 {
				t.Errorf("POST isolate with %s signature made %d upstream calls, want 0", c.name, n)
			}
		})
	}
	st.checkLeaks(t)
}
