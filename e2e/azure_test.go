package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// binding is one entry of a function.json "bindings" array.
type binding struct {
	Type       string   `json:"type"`
	Direction  string   `json:"direction"`
	Name       string   `json:"name"`
	AuthLevel  string   `json:"authLevel"`
	Methods    []string `json:"methods"`
	Route      string   `json:"route"`
	QueueName  string   `json:"queueName"`
	Connection string   `json:"connection"`
}

// readHostJSON checks the app folder's host.json and returns
// the custom handler's executable path.
func readHostJSON(t *testing.T, app string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(app, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	host := decode[struct {
		Version         string `json:"version"`
		FunctionTimeout string `json:"functionTimeout"`
		Extensions      struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		} `json:"extensions"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
				WorkingDirectory      string `json:"workingDirectory"`
			} `json:"description"`
		} `json:"customHandler"`
	}](t, "host.json", b)
	if host.Version != "2.0" {
		t.Errorf("host.json version = %q, want 2.0", host.Version)
	}
	if p := host.Extensions.HTTP.RoutePrefix; p != nil && *p != "api" {
		t.Errorf("host.json extensions.http.routePrefix = %q, want api (the routes are /api/<name>)", *p)
	}
	// MDE_TIMEOUT (default 30s) must stay below the host's functionTimeout.
	if d, ok := parseTimeSpan(host.FunctionTimeout); !ok || d <= 30*time.Second {
		t.Errorf("host.json functionTimeout = %q, want a time span over 30s (MDE_TIMEOUT's default)", host.FunctionTimeout)
	}
	exe := host.CustomHandler.Description.DefaultExecutablePath
	if exe == "" || filepath.IsAbs(exe) {
		t.Fatalf("host.json customHandler.description.defaultExecutablePath = %q, want a path in the app folder", exe)
	}
	fi, err := os.Stat(filepath.Join(app, exe))
	if err != nil {
		t.Fatalf("the executable host.json names: %v", err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s mode = %v, want 0755", exe, fi.Mode().Perm())
	}
	return exe
}

// parseTimeSpan reads an hh:mm:ss time span as host.json writes them.
func parseTimeSpan(s string) (time.Duration, bool) {
	var h, m, sec int
	if n, err := fmt.Sscanf(s, "%d:%d:%d", &h, &m, &sec); err != nil || n != 3 {
		return 0, false
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, true
}

// readBindings checks each function folder's function.json against what the
// Azure Functions host needs and returns the bindings by folder.
func readBindings(t *testing.T, app string) map[string][]binding {
	t.Helper()
	out := map[string][]binding{}
	var folders []string
	wantMethods := map[string][]string{}
	for _, spec := range functions.All {
		folders = append(folders, spec.Name)
		folders = append(folders, spec.Folders...)
		for _, m := range spec.Methods {
			wantMethods[spec.Name] = append(wantMethods[spec.Name], strings.ToLower(m))
		}
		slices.Sort(wantMethods[spec.Name])
	}
	for _, folder := range folders {
		b, err := os.ReadFile(filepath.Join(app, folder, "function.json"))
		if err != nil {
			t.Errorf("function folder %s: %v", folder, err)
			continue
		}
		fj := decode[struct {
			Bindings []binding `json:"bindings"`
		}](t, folder+"/function.json", b)
		out[folder] = fj.Bindings
	}
	for folder, methods := range wantMethods {
		var trigger, res *binding
		for i, b := range out[folder] {
			switch {
			case b.Type == "httpTrigger" && b.Direction == "in":
				trigger = &out[folder][i]
			case b.Type == "http" && b.Direction == "out":
				res = &out[folder][i]
			}
		}
		if trigger == nil || res == nil {
			t.Errorf("%s/function.json bindings = %+v, want an httpTrigger in and an http out", folder, out[folder])
			continue
		}
		got := slices.Clone(trigger.Methods)
		for i := range got {
			got[i] = strings.ToLower(got[i])
		}
		slices.Sort(got)
		route := folder
		if spec, _ := functions.Lookup(folder); spec.Nested {
			route = folder + "/{*rest}"
		}
		if trigger.AuthLevel != "function" || trigger.Route != route || !slices.Equal(got, methods) || trigger.Name == "" {
			t.Errorf("%s httpTrigger = %+v, want authLevel function, route %s, methods %v, a name", folder, *trigger, route, methods)
		}
		if res.Name != "res" && res.Name != "$return" {
			t.Errorf("%s http output is named %q, want res or $return", folder, res.Name)
		}
	}
	q := out["isolate-queue"]
	if len(q) != 1 || q[0].Type != "queueTrigger" || q[0].Direction != "in" || q[0].QueueName != "mde-isolate" || q[0].Name == "" || q[0].Connection == "" {
		t.Errorf("isolate-queue/function.json bindings = %+v, want one queueTrigger in on queue mde-isolate with a name and a connection", q)
	}
	return out
}

// bindingName returns the name of folder's trigger binding.
func bindingName(t *testing.T, bindings map[string][]binding, folder string) string {
	t.Helper()
	for _, b := range bindings[folder] {
		if b.Direction == "in" && strings.HasSuffix(b.Type, "Trigger") {
			return b.Name
		}
	}
	t.Fatalf("%s/function.json has no trigger binding", folder)
	return ""
}

// azureAnswer is the custom handler's answer to a default-style invocation.
type azureAnswer struct {
	Outputs map[string]struct {
		StatusCode int               `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       string            `json:"body"`
	} `json:"Outputs"`
	Logs        []string        `json:"Logs"`
	ReturnValue json.RawMessage `json:"ReturnValue"`
}

// customHandler is the Azure executable serving as a custom handler.
type customHandler struct {
	base string
	proc *process
}

func (h *customHandler) do(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	checkNoSecret(t, "the custom handler's answer", string(b))
	return resp.StatusCode, b
}

// invoke posts a default-style payload to /<folder> as the host does.
func (h *customHandler) invoke(t *testing.T, folder string, payload []byte) (int, azureAnswer) {
	t.Helper()
	status, b := h.do(t, http.MethodPost, "/"+folder, payload)
	return status, decode[azureAnswer](t, "custom handler answer to "+folder, b)
}

// httpPayload is a default-style HTTP trigger invocation of function.
func httpPayload(t *testing.T, binding, function, method string, query url.Values, body string) []byte {
	q, _ := json.Marshal(flatten(query))
	qs := ""
	if len(query) > 0 {
		qs = "?" + query.Encode()
	}
	return readTestdata(t, "azure_http.json", map[string]string{
		"BINDING": binding, "FUNCTION": function, "METHOD": method,
		"QUERY": string(q), "QUERY_STRING": qs, "BODY": jsonString(body),
	})
}

// flatten is a query as the host sends it: one string per name.
func flatten(q url.Values) map[string]string {
	out := map[string]string{}
	for k, v := range q {
		out[k] = strings.Join(v, ",")
	}
	return out
}

// TestAzureCustomHandler runs the Azure app folder's executable as the
// Functions host does and sends it the host's payloads: HTTP triggers in the
// default style, raw HTTP, queue messages (good, invalid, retryable) and an
// Event Grid event; then stops it with SIGTERM.
func TestAzureCustomHandler(t *testing.T) {
	app := filepath.Join(distDir(t), "azure")
	exe := readHostJSON(t, app)
	bindings := readBindings(t, app)
	if t.Failed() {
		t.FailNow()
	}

	s := startSim(t)
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	// As the host starts it: from the app folder, with the app settings
	// and FUNCTIONS_CUSTOMHANDLER_PORT; the credential is read from Key
	// Vault with the managed identity.
	env := append(baseEnv(), s.Environ(map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": port,
		"MDE_TIMEOUT":                  "20s",
		"FUNCTIONS_WORKER_RUNTIME":     "custom",
		"WEBSITE_SITE_NAME":            "mdefn-prod",
	})...)
	p := startProcess(t, "custom handler "+exe, app, env, filepath.Join(app, exe))
	h := &customHandler{base: "http://127.0.0.1:" + port, proc: p}
	waitDial(t, p, "127.0.0.1:"+port)
	if status, body := h.do(t, http.MethodGet, "/", nil); status != http.StatusOK {
		t.Fatalf("%s", statusError("GET / (readiness)", status, http.StatusOK, body))
	}

	// Every registered function answers its example, raw HTTP as the host
	// forwards it, on a device the tests below leave alone.
	exampleDevice := plainMachines(t, s, 4)[3]
	for _, spec := range functions.All {
		t.Run("example "+spec.Name, func(t *testing.T) {
			ex := example(t, s, spec, exampleDevice)
			path := ex.URL(spec.Name)
			status, body := h.do(t, ex.Method, path, []byte(ex.Body))
			if status < 200 || status > 299 {
				t.Errorf("%s %s (the registry's example) = %d, want 2xx; body %s", ex.Method, path, status, body)
			}
		})
	}

	httpBinding := bindingName(t, bindings, "alerts")
	queueBinding := bindingName(t, bindings, "isolate-queue")
	ms := plainMachines(t, s, 3)

	t.Run("HTTP trigger alerts", func(t *testing.T) {
		status, ans := h.invoke(t, "alerts", httpPayload(t, httpBinding, "alerts", http.MethodGet,
			url.Values{"severity": {"High"}, "status": {"New"}, "top": {"4"}}, ""))
		res, ok := ans.Outputs["res"]
		if status != http.StatusOK || !ok || res.StatusCode != http.StatusOK {
			t.Fatalf("POST /alerts = %d, Outputs.res %+v (present %v), want 200 and statusCode 200", status, res, ok)
		}
		checkAlertsPage(t, s, []byte(res.Body), []string{"High"}, "New", 0, 4)
	})
	t.Run("HTTP trigger alerts POST body", func(t *testing.T) {
		status, ans := h.invoke(t, "alerts", httpPayload(t, httpBinding, "alerts", http.MethodPost, nil, `{"severity":["Medium","Low"],"top":3}`))
		res := ans.Outputs["res"]
		if status != http.StatusOK || res.StatusCode != http.StatusOK {
			t.Fatalf("POST /alerts = %d, Outputs.res.statusCode %d, want 200 and 200; body %s", status, res.StatusCode, res.Body)
		}
		checkAlertsPage(t, s, []byte(res.Body), []string{"Medium", "Low"}, "", 0, 3)
	})
	t.Run("HTTP trigger error", func(t *testing.T) {
		status, ans := h.invoke(t, "alerts", httpPayload(t, httpBinding, "alerts", http.MethodGet, url.Values{"severity": {"Critical"}}, ""))
		res := ans.Outputs["res"]
		env := decode[errorEnvelope](t, "Outputs.res.body", []byte(res.Body))
		if status/100 != 2 || res.StatusCode != http.StatusBadRequest || env.Error.Code != "invalid_request" {
			t.Errorf("POST /alerts severity=Critical = %d, Outputs.res %d %q, want 2xx to the host, 400 invalid_request", status, res.StatusCode, env.Error.Code)
		}
	})
	t.Run("HTTP trigger isolate", func(t *testing.T) {
		status, ans := h.invoke(t, "isolate", httpPayload(t, bindingName(t, bindings, "isolate"), "isolate", http.MethodPost, nil,
			`{"machineId":"`+ms[0].ID+`","comment":"isolated through the host","ticket":"INC0000200"}`))
		res := ans.Outputs["res"]
		if status != http.StatusOK || res.StatusCode != http.StatusCreated {
			t.Fatalf("POST /isolate = %d, Outputs.res.statusCode %d, want 200 and 201; body %s", status, res.StatusCode, res.Body)
		}
		act := checkOneIsolation(t, s, ms[0].ID, "INC0000200")
		if got := decode[isolateAnswer](t, "isolate answer", []byte(res.Body)); got.Action.ID != act.ID {
			t.Errorf("isolate answer action %q, want %q", got.Action.ID, act.ID)
		}
	})
	t.Run("raw HTTP tokencheck", func(t *testing.T) {
		status, body := h.do(t, http.MethodGet, "/api/tokencheck?code=function-key-from-the-host", nil)
		r := decode[struct {
			Valid bool   `json:"valid"`
			AppID string `json:"appId"`
		}](t, "tokencheck answer", body)
		if status != http.StatusOK || !r.Valid || r.AppID != sim.DefaultClientID {
			t.Errorf("GET /api/tokencheck = %d valid %v app %q, want 200, valid, app %s", status, r.Valid, r.AppID, sim.DefaultClientID)
		}
	})
	t.Run("raw HTTP OpenAPI", func(t *testing.T) {
		status, body := h.do(t, http.MethodGet, "/api/openapi.json", nil)
		doc := decode[struct {
			OpenAPI string `json:"openapi"`
		}](t, "OpenAPI document", body)
		if status != http.StatusOK || !strings.HasPrefix(doc.OpenAPI, "3.1") {
			t.Errorf("GET /api/openapi.json = %d openapi %q, want 200 and 3.1", status, doc.OpenAPI)
		}
	})
	t.Run("queue trigger", func(t *testing.T) {
		msg := `{"machineId":"` + ms[1].ID + `","comment":"queued by the SOAR","ticket":"INC0000201","isolationType":"Selective"}`
		status, _ := h.invoke(t, "isolate-queue", readTestdata(t, "azure_queue.json", map[string]string{
			"BINDING": queueBinding, "FUNCTION": "isolate-queue", "MESSAGE": jsonString(msg),
		}))
		if status/100 != 2 {
			t.Fatalf("POST /isolate-queue = %d, want 2xx (message completed)", status)
		}
		if act := checkOneIsolation(t, s, ms[1].ID, "INC0000201"); act.Scope != defender.IsolationSelective {
			t.Errorf("queued isolation scope = %q, want %s", act.Scope, defender.IsolationSelective)
		}
	})
	t.Run("queue trigger invalid message", func(t *testing.T) {
		before := len(s.Defender().Actions())
		for _, msg := range []string{"isolate ws-042 please", `{"machineId":"` + ms[2].ID + `"}`} {
			status, _ := h.invoke(t, "isolate-queue", readTestdata(t, "azure_queue.json", map[string]string{
				"BINDING": queueBinding, "FUNCTION": "isolate-queue", "MESSAGE": jsonString(msg),
			}))
			if status/100 != 2 {
				t.Errorf("POST /isolate-queue with %q = %d, want 2xx (completed, not retried)", msg, status)
			}
		}
		if got := len(s.Defender().Actions()); got != before {
			t.Errorf("machine actions after invalid messages = %d, want %d", got, before)
		}
	})
	t.Run("queue trigger retryable failure", func(t *testing.T) {
		f := s.Inject(sim.Defender, sim.Fault{
			Method:     http.MethodPost,
			PathPrefix: "/api/machines/" + ms[2].ID + "/isolate",
			Status:     http.StatusServiceUnavailable,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       []byte(`{"error":{"code":"ServiceUnavailable","message":"try later","target":"6e8c3b5d-0000-4000-8000-000000000000"}}`),
		})
		defer f.Remove()
		msg := `{"machineId":"` + ms[2].ID + `","comment":"queued during an outage"}`
		status, _ := h.invoke(t, "isolate-queue", readTestdata(t, "azure_queue.json", map[string]string{
			"BINDING": queueBinding, "FUNCTION": "isolate-queue", "MESSAGE": jsonString(msg),
		}))
		if status/100 == 2 {
			t.Errorf("POST /isolate-queue during a Defender outage = %d, want non-2xx so that the host retries", status)
		}
		if f.Hits() == 0 {
			t.Errorf("the injected Defender 503 shaped no request")
		}
		if acts := actionsOn(s, ms[2].ID); len(acts) != 0 {
			t.Errorf("actions on the machine behind the outage = %+v, want none", acts)
		}
	})
	t.Run("Event Grid trigger", func(t *testing.T) {
		data := `{"deviceName":"` + defender.UniqueHostLabel + `","comment":"Event Grid subscription contain-host","ticket":"INC0000202"}`
		status, _ := h.invoke(t, "isolate-eventgrid", readTestdata(t, "azure_eventgrid.json", map[string]string{
			"FUNCTION": "isolate-eventgrid", "DATA": data,
		}))
		if status/100 != 2 {
			t.Fatalf("POST /isolate-eventgrid = %d, want 2xx", status)
		}
		checkOneIsolation(t, s, defender.UniqueMachineID, "INC0000202")
	})
	t.Run("Event Grid trigger, CloudEvents schema", func(t *testing.T) {
		before := s.Defender().Stats().Calls["GET /api/alerts"]
		status, ans := h.invoke(t, "alerts-cloudevents", readTestdata(t, "azure_cloudevent.json", map[string]string{
			"FUNCTION": "alerts-cloudevents", "DATA": `{"severity":["High"],"since":"7d","top":1}`,
		}))
		if status/100 != 2 {
			t.Fatalf("POST /alerts-cloudevents = %d (logs %v), want 2xx", status, ans.Logs)
		}
		if got := s.Defender().Stats().Calls["GET /api/alerts"]; got != before+1 {
			t.Errorf("Defender alert listings = %d, want %d (the event ran alerts once)", got, before+1)
		}
	})
	t.Run("unknown folder", func(t *testing.T) {
		status, _ := h.do(t, http.MethodPost, "/nosuchfunction", readTestdata(t, "azure_queue.json", map[string]string{
			"BINDING": queueBinding, "FUNCTION": "nosuchfunction", "MESSAGE": "{}",
		}))
		if status/100 == 2 {
			t.Errorf("POST /nosuchfunction = %d, want non-2xx (no such function)", status)
		}
	})

	// One process: the secret read once from Key Vault through the managed
	// identity, one Defender token.
	if got := s.VaultReads(); got != 1 {
		t.Errorf("Key Vault reads = %d, want 1 (MDE_SECRET_TTL 5m)", got)
	}
	if got := s.Stats().VaultReads[sim.DefaultSecretName]; got != 1 {
		t.Errorf("Key Vault reads of %q = %d, want 1 (stats %v)", sim.DefaultSecretName, got, s.Stats().VaultReads)
	}
	if got := s.TokenRequests(s.SystemIdentity().ClientID); got != 1 {
		t.Errorf("managed identity token requests = %d, want 1", got)
	}
	if got := s.TokenRequests(sim.DefaultClientID); got != 1 {
		t.Errorf("token requests of the app = %d, want exactly 1 per process", got)
	}
	if got := s.AWSSecretReads(); got != 0 {
		t.Errorf("Secrets Manager reads = %d, want 0", got)
	}

	// The host stops a custom handler with SIGTERM: it exits cleanly.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("custom handler after SIGTERM: %v, want exit status 0", p.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("custom handler still running 10s after SIGTERM")
	}
	checkNoSecret(t, "the custom handler's logs", p.output.String())
}
