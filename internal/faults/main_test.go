package faults_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/httpguard"
	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// Canary values: every credential the suite hands the functions. None of them
// may ever appear in an answer, an error or a log line.
const (
	canaryClientID     = "c0ffee00-1111-4222-8333-444455556666"
	canaryClientSecret = "CANARY~client~secret~7f3a9b2e4d6c8a0e"
	canaryCertClientID = "c0ffee00-7777-4888-9999-aaaabbbbcccc"
	canaryUserUPN      = "canary.user@mdefnsim.onmicrosoft.com"
	canaryUserPassword = "CANARY-Passw0rd!-5e1d3c9b"
	canaryWebhook      = "CANARY-webhook-secret-2b8d4f6a"
	// matrixTimeout is MDE_TIMEOUT in the fault matrix: every answer must
	// come before it (plus scheduling slack).
	matrixTimeout = 1500 * time.Millisecond
	slack         = 1200 * time.Millisecond
)

var (
	// shared is the one simulator whose Key Vault (through the managed
	// identity endpoint) and Secrets Manager the process environment points
	// at: azidentity and the AWS SDK read that environment process-wide.
	shared *sim.Sim
	// canaryKeyPEM / canaryCertPEM are the client-certificate credential.
	canaryKeyPEM, canaryCertPEM string
	canaryCert                  *x509.Certificate
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if err := makeCanaryCertificate(); err != nil {
		return 0, err
	}
	// Rate limits are the throttling tests' concern, on their own simulators.
	s, err := sim.Start(&sim.Options{Defender: defender.Options{RateLimits: &defender.RateLimits{}}})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	shared = s
	registerCanaries(s)
	// The process environment azidentity and the AWS SDK read. The AWS SDK
	// refuses a custom HTTP client while AWS_CA_BUNDLE is set: trust the
	// simulator's CA through it instead.
	env := s.Env(nil)
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AWS_REGION", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_CA_BUNDLE"} {
		if err := os.Setenv(k, env[k]); err != nil {
			return 0, err
		}
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
		"MSI_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	return m.Run(), nil
}

// makeCanaryCertificate makes the client-certificate credential.
func makeCanaryCertificate() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mdefn canary"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if canaryCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	canaryCertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	canaryKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	return nil
}

// registerCanaries registers the canary app, certificate app and user on s.
func registerCanaries(s *sim.Sim) {
	s.AddApp(sim.App{ClientID: canaryClientID, Secret: canaryClientSecret, Roles: sim.ApplicationRoles(), DisplayName: "canary"})
	s.AddApp(sim.App{ClientID: canaryCertClientID, Certificate: canaryCert, Roles: sim.ApplicationRoles(), DisplayName: "canary-cert"})
	s.AddUser(sim.User{UPN: canaryUserUPN, Password: canaryUserPassword, Scopes: sim.DelegatedScopes()})
}

// canaries are the values no answer or log line may contain, with the name
// each is reported by.
func canaries() map[string]string {
	// The key's base64 body, without the PEM armour, is what would leak.
	keyBody := strings.Join(strings.Split(canaryKeyPEM, "\n")[1:4], "")
	return map[string]string{
		"client secret":        canaryClientSecret,
		"default secret":       sim.DefaultClientSecret,
		"password":             canaryUserPassword,
		"default password":     sim.DefaultUserPassword,
		"private key":          keyBody,
		"webhook secret":       canaryWebhook,
		"a JWT (issued token)": "eyJ",
	}
}

// syncBuffer collects log lines written concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is the functions built by wiring.Build against a simulator, served over
// real HTTP.
type stack struct {
	sim  *sim.Sim
	c    *wiring.Components
	cfg  *config.Config
	srv  *httptest.Server
	logs *syncBuffer
	// answers records every answer body, for the leak canary.
	answers *syncBuffer
}

// simEnv is the configuration of the canary app on s with its client secret
// in plain environment; extra wins ("" removes a setting).
func simEnv(s *sim.Sim, extra map[string]string) map[string]string {
	env := map[string]string{
		"MDE_TENANT_ID":      s.TenantID(),
		"MDE_CLIENT_ID":      canaryClientID,
		"MDE_CLIENT_SECRET":  canaryClientSecret,
		"MDE_AUTHORITY_URL":  s.AuthorityURL(),
		"MDE_API_URL":        s.DefenderURL(),
		"MDE_TOKEN_AUDIENCE": s.Audience(),
		"MDE_TIMEOUT":        matrixTimeout.String(),
		"MDE_LOG_LEVEL":      "debug",
		"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "true",
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

// newStack builds the functions from env against s.
func newStack(t testing.TB, s *sim.Sim, env map[string]string) *stack {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	st := &stack{sim: s, cfg: cfg, logs: &syncBuffer{}, answers: &syncBuffer{}}
	st.c, err = wiring.Build(cfg, &wiring.Options{HTTPClient: s.HTTPClient(), Logger: wiring.NewLogger(st.logs, cfg.LogLevel)})
	if err != nil {
		t.Fatalf("wiring.Build: %v", err)
	}
	st.srv = httptest.NewServer(st.c.App.HTTPHandler())
	t.Cleanup(st.srv.Close)
	return st
}

// newSim starts a simulator of the test's own, with the canaries registered.
func newSim(t testing.TB, opts *sim.Options) *sim.Sim {
	t.Helper()
	s, err := sim.Start(opts)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(s.Close)
	registerCanaries(s)
	return s
}

// answer is one response of the functions.
type answer struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
	err     error
}

// code returns the error envelope's code, or "".
func (a answer) code() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &env)
	return env.Error.Code
}

// json decodes the body into a map.
func (a answer) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(a.body, &m)
	return m
}

func (a answer) String() string {
	b := a.body
	if len(b) > 300 {
		b = append(b[:300:300], "…"...)
	}
	return fmt.Sprintf("%d %s (%v)", a.status, b, a.elapsed.Round(time.Millisecond))
}

// do sends one request to the stack, signing it when a webhook secret is
// configured.
func (st *stack) do(method, path, body string) answer {
	req, err := http.NewRequest(method, st.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if st.cfg.WebhookSecret != "" {
		req.Header.Set("X-Hub-Signature-256", httpguard.Sign([]byte(st.cfg.WebhookSecret), []byte(body)))
	}
	return st.send(req)
}

func (st *stack) send(req *http.Request) answer {
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	a := answer{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(start), err: err}
	st.answers.Write(b)
	st.answers.Write([]byte("\n"))
	for k, vs := range resp.Header {
		fmt.Fprintf(st.answers, "%s: %s\n", k, strings.Join(vs, ","))
	}
	return a
}

// checkLeaks fails t when a canary appears in any answer or log line of st.
func (st *stack) checkLeaks(t testing.TB) {
	t.Helper()
	checkLeaks(t, st.answers.String()+st.logs.String())
}

func checkLeaks(t testing.TB, text string) {
	t.Helper()
	for name, v := range canaries() {
		if i := strings.Index(text, v); i >= 0 {
			t.Errorf("the %s appears in an answer or a log line: …%s…", name, text[max(0, i-80):min(len(text), i+80)])
		}
	}
}

// Requests of each function used throughout the suite.
const (
	alertsPath  = "/api/alerts?severity=High&top=5"
	isolatePath = "/api/isolate"
	tokenPath   = "/api/tokencheck"
)

func isolateBody(machineID string) string {
	return `{"machineId":"` + machineID + `","comment":"fault matrix","ticket":"INC42"}`
}

// call runs function fn once with its standard request.
// It is the registry's example of fn, on the device the suite acts on.
func (st *stack) call(fn string) answer {
	spec, ok := functions.Lookup(fn)
	if !ok {
		return answer{err: fmt.Errorf("no function %q in the registry", fn)}
	}
	var actionID string
	if spec.Example.NeedsAction() {
		a, ok := st.sim.Defender().AddAction(defender.MachineAction{MachineID: defender.UniqueMachineID,
			Type: defender.ActionCollectInvestigationPackage, Requestor: "analyst@contoso.example"})
		if !ok {
			return answer{err: fmt.Errorf("no device %s for %s's example action", defender.UniqueMachineID, fn)}
		}
		actionID = a.ID
	}
	ex := spec.Example.Fill(defender.UniqueMachineID, defender.UniqueFQDN, actionID)
	return st.do(ex.Method, ex.URL(fn), ex.Body)
}
