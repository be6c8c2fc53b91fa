package functions_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/sim/defender"
)

// The rules every response action shares hold for every registered action
// function, each run with its own registry example against the Defender
// simulator over real HTTP with the real client.

type actionStack struct {
	def      *defender.Server
	handlers map[string]http.Handler
	logs     *bytes.Buffer
}

func newActionStack(t *testing.T, d functions.Deps, principal *defender.Principal) *actionStack {
	t.Helper()
	opts := defender.Options{RateLimits: &defender.RateLimits{}}
	if principal != nil {
		p := *principal
		opts.Authorize = func(*http.Request) (defender.Principal, error) { return p, nil }
	}
	st := &actionStack{def: defender.New(opts), logs: &bytes.Buffer{}}
	srv := httptest.NewServer(st.def)
	t.Cleanup(srv.Close)
	c, err := atp.NewClient(srv.URL, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "test-token"}),
		&atp.Options{CallsPerMinute: -1, CallsPerHour: -1, RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Defender = c
	d.Logger = slog.New(slog.NewJSONHandler(st.logs, nil))
	st.handlers = functions.Build(d)
	return st
}

func (st *actionStack) post(t *testing.T, fn, body string, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/"+fn, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	st.handlers[fn].ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("POST /api/%s answer %q is not JSON: %v", fn, w.Body, err)
	}
	return w.Code, out, w.Header()
}

// posts counts the action POSTs Defender received.
func (st *actionStack) posts() int {
	n := 0
	for k, v := range st.def.Stats().Calls {
		if strings.HasPrefix(k, "POST /api/machines/") {
			n += v
		}
	}
	return n
}

func actionSpecs() []functions.Spec {
	var out []functions.Spec
	for _, s := range functions.All {
		if s.Defender.Action != "" {
			out = append(out, s)
		}
	}
	return out
}

// withBody returns the example's JSON body with fields changed (nil deletes).
func withBody(t *testing.T, spec functions.Spec, machineID string, fields map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(spec.Example.Fill(machineID, defender.UniqueFQDN, "").Body), &m); err != nil {
		t.Fatalf("%s example: %v", spec.Name, err)
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func actionOf(out map[string]any) map[string]any {
	a, _ := out["action"].(map[string]any)
	return a
}

func TestActionRules(t *testing.T) {
	if len(actionSpecs()) < 2 {
		t.Fatalf("only %d action functions registered", len(actionSpecs()))
	}
	for _, spec := range actionSpecs() {
		t.Run(spec.Name, func(t *testing.T) {
			t.Parallel()
			path := "/api/machines/" + defender.UniqueMachineID + "/" + spec.Defender.Action

			t.Run("created then already pending", func(t *testing.T) {
				st := newActionStack(t, functions.Deps{}, nil)
				body := withBody(t, spec, defender.UniqueMachineID, nil)
				status, first, _ := st.post(t, spec.Name, body, nil)
				if status != http.StatusCreated || actionOf(first)["status"] != "Pending" {
					t.Fatalf("POST %s = %d %v, want 201 with a Pending action", spec.Name, status, first)
				}
				status, again, _ := st.post(t, spec.Name, body, nil)
				if status != http.StatusOK || again["alreadyPending"] != true || actionOf(again)["id"] != actionOf(first)["id"] {
					t.Errorf("repeated POST %s = %d %v, want 200 alreadyPending naming action %v", spec.Name, status, again, actionOf(first)["id"])
				}
				if n := st.def.Stats().Calls["POST "+strings.Replace(path, defender.UniqueMachineID, "{id}", 1)]; n > 2 {
					t.Errorf("%s reached Defender %d times, want at most 2", path, n)
				}
				if !strings.Contains(st.logs.String(), `"audit":"mdefn.`+spec.Name+`"`) {
					t.Errorf("no audit line mdefn.%s in %s", spec.Name, st.logs)
				}
			})

			t.Run("dry run sends nothing", func(t *testing.T) {
				for name, deps := range map[string]functions.Deps{"request": {}, "MDE_DRY_RUN": {DryRun: true}} {
					st := newActionStack(t, deps, nil)
					fields := map[string]any{}
					if name == "request" {
						fields["dryRun"] = true
					}
					status, out, _ := st.post(t, spec.Name, withBody(t, spec, defender.UniqueMachineID, fields), nil)
					req, _ := out["request"].(map[string]any)
					if status != http.StatusOK || out["dryRun"] != true || req["path"] != path {
						t.Errorf("%s dry run (%s) = %d %v, want 200 dryRun with request.path %s", spec.Name, name, status, out, path)
					}
					if n := st.posts(); n != 0 {
						t.Errorf("%s dry run (%s): %d POSTs reached Defender, want 0", spec.Name, name, n)
					}
				}
			})

			t.Run("protected devices", func(t *testing.T) {
				st := newActionStack(t, functions.Deps{ProtectedTags: []string{defender.ProtectedTag}}, nil)
				status, out, _ := st.post(t, spec.Name, withBody(t, spec, defender.PayrollMachineID, nil), nil)
				if spec.Defender.Containment {
					if status != http.StatusForbidden || errCode(out) != "protected_device" || st.posts() != 0 {
						t.Errorf("%s on a protected device = %d %v (%d POSTs), want 403 protected_device and no POST", spec.Name, status, out, st.posts())
					}
				} else if status != http.StatusCreated {
					t.Errorf("%s on a protected device = %d %v, want 201: protected tags guard containment only", spec.Name, status, out)
				}
			})

			t.Run("ambiguous name", func(t *testing.T) {
				st := newActionStack(t, functions.Deps{}, nil)
				status, out, _ := st.post(t, spec.Name, withBody(t, spec, "", map[string]any{"machineId": nil, "deviceName": defender.AmbiguousDNSName}), nil)
				e, _ := out["error"].(map[string]any)
				if cands, _ := e["candidates"].([]any); status != http.StatusConflict || len(cands) != 2 || st.posts() != 0 {
					t.Errorf("%s by an ambiguous name = %d %v, want 409 with 2 candidates and no POST", spec.Name, status, out)
				}
			})

			t.Run("bad requests make no call", func(t *testing.T) {
				st := newActionStack(t, functions.Deps{}, nil)
				for name, body := range map[string]string{
					"no comment":    withBody(t, spec, defender.UniqueMachineID, map[string]any{"comment": nil}),
					"two selectors": withBody(t, spec, defender.UniqueMachineID, map[string]any{"ipAddress": "10.1.2.3"}),
					"bad machineId": withBody(t, spec, "zz", nil),
					"unknown field": withBody(t, spec, defender.UniqueMachineID, map[string]any{"colour": "red"}),
					"not an object": `[1]`,
				} {
					status, out, _ := st.post(t, spec.Name, body, nil)
					if status != http.StatusBadRequest || errCode(out) != "invalid_request" {
						t.Errorf("%s with %s = %d %v, want 400 invalid_request", spec.Name, name, status, out)
					}
				}
				if n := st.def.Stats().Total(); n != 0 {
					t.Errorf("bad %s requests made %d Defender calls, want 0", spec.Name, n)
				}
			})

			t.Run("missing role", func(t *testing.T) {
				st := newActionStack(t, functions.Deps{}, &defender.Principal{TenantID: defender.SeedTenantID, AppID: defender.DefaultAppID,
					Roles: []string{"Alert.Read.All"}})
				status, out, _ := st.post(t, spec.Name, withBody(t, spec, defender.UniqueMachineID, nil), nil)
				e, _ := out["error"].(map[string]any)
				msg, _ := e["message"].(string)
				want := spec.Checks[0].Needs.App[0][0]
				if status != http.StatusForbidden || errCode(out) != "forbidden" || !strings.Contains(msg, want) {
					t.Errorf("%s without %s = %d %v, want 403 forbidden naming %s", spec.Name, want, status, out, want)
				}
			})

			t.Run("respond-async", func(t *testing.T) {
				st := newActionStack(t, functions.Deps{}, nil)
				status, out, h := st.post(t, spec.Name, withBody(t, spec, defender.UniqueMachineID, nil), http.Header{"Prefer": {"respond-async"}})
				id, _ := actionOf(out)["id"].(string)
				if status != http.StatusAccepted || id == "" || h.Get("Location") != "http://example.com/api/actions/"+id || h.Get("Retry-After") == "" {
					t.Errorf("%s with Prefer: respond-async = %d Location %q Retry-After %q, want 202, http://example.com/api/actions/%s and a delay",
						spec.Name, status, h.Get("Location"), h.Get("Retry-After"), id)
				}
			})
		})
	}
}
