package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// rieBinary returns the Lambda Runtime Interface Emulator: MDEFN_RIE, else
// aws-lambda-rie on PATH or in $GOPATH/bin (where `make tools` installs it).
func rieBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MDEFN_RIE"); p != "" {
		return p
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("aws-lambda-rie not found: run `make tools` or set MDEFN_RIE")
	return ""
}

// lambdaFunction is one bootstrap running under the emulator.
type lambdaFunction struct {
	url  string
	proc *process
}

// startLambda runs dist/lambda/<function>/bootstrap under the emulator with
// the simulator's environment, the credential read from Secrets Manager
// through the standard AWS configuration chain (no Key Vault, no managed
// identity).
func startLambda(t *testing.T, dist string, s *sim.Sim, function string, extra ...map[string]string) *lambdaFunction {
	t.Helper()
	bootstrap := filepath.Join(dist, "lambda", function, "bootstrap")
	if _, err := os.Stat(bootstrap); err != nil {
		t.Fatalf("the build has no bootstrap for %s: %v", function, err)
	}
	rie := rieBinary(t)
	overrides := map[string]string{
		"MDE_KEYVAULT_URL":  "",
		"MDE_SECRET_NAME":   "",
		"IDENTITY_ENDPOINT": "",
		"IDENTITY_HEADER":   "",
		"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "",
		// Trust through Go's defaults (SSL_CERT_FILE), as the contract
		// says, not through the AWS SDK's own AWS_CA_BUNDLE.
		"AWS_CA_BUNDLE":               "",
		"MDE_AWS_SECRET_ID":           sim.DefaultAWSSecretID,
		"AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
		"AWS_LAMBDA_FUNCTION_NAME":    "mdefn-" + function,
	}
	for _, m := range extra {
		for k, v := range m {
			overrides[k] = v
		}
	}
	env := append(baseEnv(), s.Environ(overrides)...)
	addr, apiAddr := freeAddr(t), freeAddr(t)
	p := startProcess(t, "aws-lambda-rie "+function, filepath.Dir(bootstrap), env, rie,
		"--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, bootstrap)
	waitDial(t, p, addr)
	return &lambdaFunction{url: "http://" + addr + "/2015-03-31/functions/function/invocations", proc: p}
}

// lambdaError is a function error as the emulator returns it.
type lambdaError struct {
	ErrorType    string `json:"errorType"`
	ErrorMessage string `json:"errorMessage"`
}

// invoke sends one event and returns the function's answer and, for a
// function error, its errorType and errorMessage (else nil).
func (f *lambdaFunction) invoke(t *testing.T, event []byte) ([]byte, *lambdaError) {
	t.Helper()
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Post(f.url, "application/json", bytes.NewReader(event))
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("invoke: reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s", statusError("invoke", resp.StatusCode, http.StatusOK, body))
	}
	checkNoSecret(t, "the invocation's answer", string(body))
	// The emulator sets no X-Amz-Function-Error header: a function error
	// is recognised by its shape.
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil && fields["errorType"] != nil {
		for k := range fields {
			if k != "errorType" && k != "errorMessage" && k != "stackTrace" {
				return body, nil
			}
		}
		return body, ptr(decode[lambdaError](t, "function error", body))
	}
	return body, nil
}

func ptr[T any](v T) *T { return &v }

// httpResponse is the answer to a Function URL or HTTP API event.
type httpResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

// invokeHTTP sends an HTTP event and returns the status and decoded body.
func (f *lambdaFunction) invokeHTTP(t *testing.T, event []byte) (int, []byte) {
	t.Helper()
	out, fnErr := f.invoke(t, event)
	if fnErr != nil {
		t.Fatalf("HTTP event answered a function error %+v, want an HTTP response", *fnErr)
	}
	res := decode[httpResponse](t, "HTTP event answer", out)
	body := []byte(res.Body)
	if res.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(res.Body); err != nil {
			t.Fatalf("HTTP event answer body: %v", err)
		}
	}
	return res.StatusCode, body
}

// apiGatewayPost is an HTTP API (payload 2.0) POST /api/<function> event with
// body base64 encoded.
func apiGatewayPost(t *testing.T, function, body string) []byte {
	return readTestdata(t, "lambda_apigw_v2_post.json", map[string]string{
		"FUNCTION":    function,
		"BODY_B64":    base64.StdEncoding.EncodeToString([]byte(body)),
		"BODY_LENGTH": strconv.Itoa(len(body)),
	})
}

// checkColdStart checks what one warm bootstrap cost upstream: the secret
// read once from Secrets Manager (never from Key Vault) and one token.
func checkColdStart(t *testing.T, s *sim.Sim, f *lambdaFunction) {
	t.Helper()
	if got := s.AWSSecretReads(); got != 1 {
		t.Errorf("Secrets Manager reads = %d, want 1 (one per cold start, MDE_SECRET_TTL 5m)", got)
	}
	if got := s.Stats().AWSSecretReads[sim.DefaultAWSSecretID]; got != 1 {
		t.Errorf("Secrets Manager reads of %q = %d, want 1 (stats %v)", sim.DefaultAWSSecretID, got, s.Stats().AWSSecretReads)
	}
	if got := s.VaultReads(); got != 0 {
		t.Errorf("Key Vault reads = %d, want 0 (the Lambda reads Secrets Manager)", got)
	}
	if got := s.TokenRequests(sim.DefaultClientID); got != 1 {
		t.Errorf("token requests of the app = %d, want exactly 1 per cold process", got)
	}
	checkNoSecret(t, "the function's logs", f.proc.output.String())
}

// TestLambdaAlerts runs the alerts bootstrap under the emulator: Function URL
// and HTTP API events, the OpenAPI document and a direct invoke.
func TestLambdaAlerts(t *testing.T) {
	dist := distDir(t)
	s := startSim(t)
	f := startLambda(t, dist, s, "alerts")

	t.Run("function URL GET with a query", func(t *testing.T) {
		status, body := f.invokeHTTP(t, readTestdata(t, "lambda_url_alerts_get.json", map[string]string{"SEVERITY": "High,Medium"}))
		if status != http.StatusOK {
			t.Fatalf("%s", statusError("GET /api/alerts?severity=High,Medium&status=New&top=5", status, http.StatusOK, body))
		}
		checkAlertsPage(t, s, body, []string{"High", "Medium"}, "New", 0, 5)
	})
	t.Run("HTTP API POST with a base64 body", func(t *testing.T) {
		status, body := f.invokeHTTP(t, apiGatewayPost(t, "alerts", `{"severity":["Low"],"top":3,"skip":2}`))
		if status != http.StatusOK {
			t.Fatalf("%s", statusError("POST /api/alerts", status, http.StatusOK, body))
		}
		checkAlertsPage(t, s, body, []string{"Low"}, "", 2, 3)
	})
	t.Run("invalid severity", func(t *testing.T) {
		status, body := f.invokeHTTP(t, readTestdata(t, "lambda_url_alerts_get.json", map[string]string{"SEVERITY": "Critical"}))
		env := decode[errorEnvelope](t, "error answer", body)
		if status != http.StatusBadRequest || env.Error.Code != "invalid_request" {
			t.Errorf("GET /api/alerts?severity=Critical = %d %q, want 400 invalid_request", status, env.Error.Code)
		}
	})
	t.Run("OpenAPI document", func(t *testing.T) {
		status, body := f.invokeHTTP(t, readTestdata(t, "lambda_url_get.json", map[string]string{"RAW_PATH": "/api/openapi.json"}))
		doc := decode[struct {
			OpenAPI string         `json:"openapi"`
			Paths   map[string]any `json:"paths"`
		}](t, "OpenAPI document", body)
		if status != http.StatusOK || !strings.HasPrefix(doc.OpenAPI, "3.1") || doc.Paths["/api/alerts"] == nil {
			t.Errorf("GET /api/openapi.json = %d openapi %q with %d paths, want 200, 3.1 and /api/alerts", status, doc.OpenAPI, len(doc.Paths))
		}
	})
	t.Run("direct invoke", func(t *testing.T) {
		out, fnErr := f.invoke(t, []byte(`{"severity":"High","top":2}`))
		if fnErr != nil {
			t.Fatalf("direct invoke = function error %+v, want the alerts page", *fnErr)
		}
		checkAlertsPage(t, s, out, []string{"High"}, "", 0, 2)
	})
	checkColdStart(t, s, f)
}

// TestLambdaIsolate runs the isolate bootstrap under the emulator: an HTTP API
// event, an SQS batch with good, malformed and retryable records, an
// EventBridge event and failing direct invokes, checking the actions the
// simulated Defender holds afterwards.
func TestLambdaIsolate(t *testing.T) {
	dist := distDir(t)
	s := startSim(t)
	f := startLambda(t, dist, s, "isolate")
	ms := plainMachines(t, s, 3)
	httpMachine, good, retry := ms[0], ms[1], ms[2]

	t.Run("HTTP API POST", func(t *testing.T) {
		status, body := f.invokeHTTP(t, apiGatewayPost(t, "isolate",
			`{"machineId":"`+httpMachine.ID+`","comment":"isolated over HTTP","ticket":"INC0000100"}`))
		if status != http.StatusCreated {
			t.Fatalf("%s", statusError("POST /api/isolate", status, http.StatusCreated, body))
		}
		ans := decode[isolateAnswer](t, "isolate answer", body)
		act := checkOneIsolation(t, s, httpMachine.ID, "INC0000100")
		if ans.Action.ID != act.ID || ans.Machine.ID != httpMachine.ID {
			t.Errorf("isolate answer action %q machine %q, want action %q machine %q", ans.Action.ID, ans.Machine.ID, act.ID, httpMachine.ID)
		}
	})

	t.Run("SQS batch", func(t *testing.T) {
		h := s.Inject(sim.Defender, sim.Fault{
			Method:     http.MethodPost,
			PathPrefix: "/api/machines/" + retry.ID + "/isolate",
			Status:     http.StatusServiceUnavailable,
			Header:     http.Header{"Content-Type": {"application/json"}},
			Body:       []byte(`{"error":{"code":"ServiceUnavailable","message":"try later","target":"5d7b2a4c-0000-4000-8000-000000000000"}}`),
		})
		defer h.Remove()
		event := readTestdata(t, "lambda_sqs_isolate.json", map[string]string{"GOOD_MACHINE_ID": good.ID, "RETRY_MACHINE_ID": retry.ID})
		out, fnErr := f.invoke(t, event)
		if fnErr != nil {
			t.Fatalf("SQS batch = function error %+v, want a batch response", *fnErr)
		}
		type failure struct {
			ItemIdentifier string `json:"itemIdentifier"`
		}
		got := decode[struct {
			BatchItemFailures []failure `json:"batchItemFailures"`
		}](t, "SQS batch answer", out)
		// Only the record meeting the outage is retried; the malformed one
		// and the one without a comment are permanent: logged and dropped.
		want := []failure{{ItemIdentifier: "7b8e0c3a-2d4f-4a5b-9c9d-3e4f5a6b7c8d"}}
		if diff := cmp.Diff(want, got.BatchItemFailures); diff != "" {
			t.Errorf("SQS batchItemFailures mismatch (-want +got):\n%s", diff)
		}
		if h.Hits() == 0 {
			t.Errorf("the injected Defender 503 shaped no request")
		}
		checkOneIsolation(t, s, good.ID, "INC0000101")
		if acts := actionsOn(s, retry.ID); len(acts) != 0 {
			t.Errorf("actions on the machine behind the outage = %+v, want none", acts)
		}

		// A second delivery of the good record is a success and creates no
		// second action.
		var batch struct {
			Records []json.RawMessage `json:"Records"`
		}
		if err := json.Unmarshal(event, &batch); err != nil {
			t.Fatal(err)
		}
		again, _ := json.Marshal(map[string]any{"Records": batch.Records[:1]})
		out, fnErr = f.invoke(t, again)
		if fnErr != nil {
			t.Fatalf("SQS redelivery = function error %+v", *fnErr)
		}
		got = decode[struct {
			BatchItemFailures []failure `json:"batchItemFailures"`
		}](t, "SQS redelivery answer", out)
		if len(got.BatchItemFailures) != 0 {
			t.Errorf("SQS redelivery batchItemFailures = %v, want none", got.BatchItemFailures)
		}
		checkOneIsolation(t, s, good.ID, "INC0000101")
	})

	t.Run("EventBridge", func(t *testing.T) {
		out, fnErr := f.invoke(t, readTestdata(t, "lambda_eventbridge_isolate.json", map[string]string{"DEVICE_NAME": defender.UniqueFQDN}))
		if fnErr != nil {
			t.Fatalf("EventBridge = function error %+v, want the isolate answer", *fnErr)
		}
		ans := decode[isolateAnswer](t, "EventBridge answer", out)
		act := checkOneIsolation(t, s, defender.UniqueMachineID, "INC0000102")
		if ans.Action.ID != act.ID {
			t.Errorf("EventBridge answer action %q, want %q", ans.Action.ID, act.ID)
		}
	})

	t.Run("direct invoke of an unknown machine", func(t *testing.T) {
		unknown := strings.Repeat("0123456789", 4)
		_, fnErr := f.invoke(t, []byte(`{"machineId":"`+unknown+`","comment":"direct"}`))
		if fnErr == nil || fnErr.ErrorType != "not_found" || fnErr.ErrorMessage == "" {
			t.Errorf("direct invoke of an unknown machine = %+v, want function error not_found with a message", fnErr)
		}
		if acts := actionsOn(s, unknown); len(acts) != 0 {
			t.Errorf("actions on an unknown machine = %+v, want none", acts)
		}
	})

	t.Run("direct invoke that is not an object", func(t *testing.T) {
		_, fnErr := f.invoke(t, []byte(`["not","a","request"]`))
		if fnErr == nil || fnErr.ErrorType != "invalid_request" {
			t.Errorf("direct invoke of an array = %+v, want function error invalid_request", fnErr)
		}
	})

	if got := len(s.Defender().Actions()); got != 3 {
		t.Errorf("machine actions = %d, want 3 (HTTP, SQS, EventBridge)", got)
	}
	checkColdStart(t, s, f)
}

// TestLambdaEveryFunction runs each registered function's bootstrap under
// the emulator and sends it the registry's example, as a Function URL event
// and, for a POST, as a direct invoke (Step Functions).
func TestLambdaEveryFunction(t *testing.T) {
	dist := distDir(t)
	s := startSim(t)
	for _, spec := range functions.All {
		t.Run(spec.Name, func(t *testing.T) {
			f := startLambda(t, dist, s, spec.Name)
			m, _ := s.Defender().Machine(defender.UniqueMachineID)
			ex := example(t, s, spec, m)
			var event []byte
			if ex.Method == http.MethodGet {
				event = readTestdata(t, "lambda_url_query.json", map[string]string{"RAW_PATH": "/api/" + spec.Name + ex.Path, "RAW_QUERY": jsonString(ex.Query)})
			} else {
				event = apiGatewayPost(t, spec.Name, ex.Body)
			}
			if status, body := f.invokeHTTP(t, event); status < 200 || status > 299 {
				t.Errorf("%s %s (the registry's example) = %d, want 2xx; body %s", ex.Method, ex.URL(spec.Name), status, body)
			}
			if ex.Method == http.MethodPost {
				if _, fnErr := f.invoke(t, []byte(ex.Body)); fnErr != nil {
					t.Errorf("direct invoke with the registry's example = function error %+v", *fnErr)
				}
			}
		})
	}
}

// TestLambdaTokenCheck runs the tokencheck bootstrap under the emulator: its
// own token by direct invoke and Function URL, and a supplied expired token.
func TestLambdaTokenCheck(t *testing.T) {
	dist := distDir(t)
	s := startSim(t)
	f := startLambda(t, dist, s, "tokencheck")

	type report struct {
		Valid     bool     `json:"valid"`
		Problems  []string `json:"problems"`
		TokenType string   `json:"tokenType"`
		TenantID  string   `json:"tenantId"`
		AppID     string   `json:"appId"`
		Roles     []string `json:"roles"`
		Functions map[string]struct {
			Allowed bool     `json:"allowed"`
			Missing []string `json:"missing"`
		} `json:"functions"`
	}
	checkOwn := func(t *testing.T, r report) {
		t.Helper()
		if !r.Valid || len(r.Problems) != 0 || r.TokenType != "application" || r.AppID != sim.DefaultClientID || r.TenantID != s.TenantID() {
			t.Errorf("tokencheck = valid %v problems %v type %q app %q tenant %q, want valid application token of %s in %s",
				r.Valid, r.Problems, r.TokenType, r.AppID, r.TenantID, sim.DefaultClientID, s.TenantID())
		}
		for _, c := range functions.Checks() {
			fn := c.Name
			if p, ok := r.Functions[fn]; !ok || !p.Allowed {
				t.Errorf("tokencheck functions[%s] = %+v (present %v), want allowed", fn, p, ok)
			}
		}
		if !slices.Contains(r.Roles, defender.RoleMachineIsolate) {
			t.Errorf("tokencheck roles = %v, want %s among them", r.Roles, defender.RoleMachineIsolate)
		}
	}

	t.Run("direct invoke", func(t *testing.T) {
		out, fnErr := f.invoke(t, []byte(`{}`))
		if fnErr != nil {
			t.Fatalf("direct invoke = function error %+v", *fnErr)
		}
		checkOwn(t, decode[report](t, "tokencheck answer", out))
	})
	t.Run("function URL GET", func(t *testing.T) {
		status, body := f.invokeHTTP(t, readTestdata(t, "lambda_url_get.json", map[string]string{"RAW_PATH": "/api/tokencheck"}))
		if status != http.StatusOK {
			t.Fatalf("%s", statusError("GET /api/tokencheck", status, http.StatusOK, body))
		}
		checkOwn(t, decode[report](t, "tokencheck answer", body))
	})
	t.Run("direct invoke with an expired token", func(t *testing.T) {
		issued := s.Now().Add(-3 * time.Hour)
		token := s.IssueToken(sim.TokenSpec{IssuedAt: issued, ExpiresAt: issued.Add(time.Hour), Roles: sim.ApplicationRoles()})
		req, _ := json.Marshal(map[string]string{"token": token})
		out, fnErr := f.invoke(t, req)
		if fnErr != nil {
			t.Fatalf("direct invoke = function error %+v", *fnErr)
		}
		if bytes.Contains(out, []byte(token)) {
			t.Errorf("tokencheck answer holds the supplied token")
		}
		r := decode[report](t, "tokencheck answer", out)
		if r.Valid || !slices.Contains(r.Problems, "expired") {
			t.Errorf("tokencheck of an expired token = valid %v problems %v, want invalid with %q", r.Valid, r.Problems, "expired")
		}
	})
	checkColdStart(t, s, f)
}

// TestLambdaStepFunctionsLoop is the Step Functions pattern: a direct invoke
// of scan returns the action's id; direct invokes of actions with {"id"}
// answer pending: true until the action ends, then the action as Defender
// has it; cancelling an ended action is a function error invalid_request.
func TestLambdaStepFunctionsLoop(t *testing.T) {
	dist := distDir(t)
	s := startSim(t)
	s.Defender().SetActionTimings(defender.ActionTimings{InProgressAfter: 100 * time.Millisecond, CompletedAfter: 300 * time.Millisecond})
	scan := startLambda(t, dist, s, "scan")
	acts := startLambda(t, dist, s, "actions")
	out, fnErr := scan.invoke(t, []byte(`{"machineId":"`+defender.UniqueMachineID+`","comment":"after isolation","ticket":"INC9"}`))
	if fnErr != nil {
		t.Fatalf("scan direct invoke = function error %+v", *fnErr)
	}
	var started struct {
		Action struct {
			ID string `json:"id"`
		} `json:"action"`
	}
	if err := json.Unmarshal(out, &started); err != nil || started.Action.ID == "" {
		t.Fatalf("scan result %s has no action id (%v)", out, err)
	}
	type status struct {
		Pending bool `json:"pending"`
		Action  struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"action"`
	}
	var st status
	polls := 0
	for deadline := time.Now().Add(10 * time.Second); ; polls++ {
		out, fnErr := acts.invoke(t, []byte(`{"id":"`+started.Action.ID+`"}`))
		if fnErr != nil {
			t.Fatalf("actions direct invoke = function error %+v", *fnErr)
		}
		st = status{}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("actions result %s: %v", out, err)
		}
		if !st.Pending || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Pending || st.Action.ID != started.Action.ID || st.Action.Status != "Succeeded" || polls == 0 {
		t.Errorf("after %d polls: %+v, want the action Succeeded and not pending, after at least one pending poll", polls, st)
	}
	_, fnErr = acts.invoke(t, []byte(`{"id":"`+started.Action.ID+`","cancel":true,"comment":"too late"}`))
	if fnErr == nil || fnErr.ErrorType != "invalid_request" {
		t.Errorf("cancel of an ended action = %+v, want function error invalid_request", fnErr)
	}
}

// TestLambdaTenants runs the isolate bootstrap for two tenants, each with
// its own secret in Secrets Manager (MDE_AWS_SECRET_ID with {tenant}): a
// request for fabrikam reads fabrikam's secret, gets a fabrikam token and
// isolates in fabrikam's Defender alone; a tenant not served is refused
// before any upstream call.
func TestLambdaTenants(t *testing.T) {
	dist := distDir(t)
	s := startSim(t)
	fab, err := s.AddTenant(sim.TenantSpec{Name: "fabrikam"})
	if err != nil {
		t.Fatal(err)
	}
	s.SetAWSSecret("mde/home/client", sim.DefaultClientSecret)
	s.SetAWSSecret("mde/fabrikam/client", sim.DefaultClientSecret)
	f := startLambda(t, dist, s, "isolate", map[string]string{
		"MDE_TENANTS":       "home=" + s.TenantID() + ",fabrikam=" + fab.ID(),
		"MDE_AWS_SECRET_ID": "mde/{tenant}/client",
	})
	s.ResetStats()
	status, body := f.invokeHTTP(t, apiGatewayPost(t, "isolate",
		`{"tenant":"fabrikam","machineId":"`+defender.UniqueMachineID+`","comment":"customer ticket","ticket":"FAB-7"}`))
	if status != http.StatusCreated {
		t.Fatalf("%s", statusError("POST /api/isolate for fabrikam", status, http.StatusCreated, body))
	}
	if acts := fab.Defender().Actions(); len(acts) != 1 || acts[0].MachineID != defender.UniqueMachineID {
		t.Errorf("fabrikam's actions = %+v, want the one isolation", acts)
	}
	if acts := s.Defender().Actions(); len(acts) != 0 {
		t.Errorf("the home tenant's actions = %+v, want none", acts)
	}
	st := s.Stats()
	if st.AWSSecretReads["mde/fabrikam/client"] != 1 || st.AWSSecretReads["mde/home/client"] != 0 {
		t.Errorf("Secrets Manager reads = %v, want fabrikam's secret once", st.AWSSecretReads)
	}
	if n := fab.Stats().TokenRequests[sim.DefaultClientID]; n != 1 {
		t.Errorf("fabrikam token requests = %d, want 1", n)
	}
	if n := s.Home().Stats().TokenRequests[sim.DefaultClientID]; n != 0 {
		t.Errorf("home token requests = %d, want 0", n)
	}

	s.ResetStats()
	status, body = f.invokeHTTP(t, apiGatewayPost(t, "isolate",
		`{"tenant":"northwind","machineId":"`+defender.UniqueMachineID+`","comment":"x"}`))
	if status != http.StatusForbidden || !strings.Contains(string(body), "tenant_not_allowed") {
		t.Errorf("%s", statusError("POST /api/isolate for a tenant not served", status, http.StatusForbidden, body))
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("a tenant not served made %d upstream requests, want 0", n)
	}
	audits := 0
	for _, line := range strings.Split(f.proc.output.String(), "\n") {
		if strings.Contains(line, `"audit":"mdefn.isolate"`) {
			audits++
			if !strings.Contains(line, `"tenant":"fabrikam"`) {
				t.Errorf("an audit line does not name fabrikam: %s", line)
			}
		}
	}
	if audits == 0 {
		t.Errorf("no audit line in the function's logs:\n%s", f.proc.output.String())
	}
}
