// Package devserver is `mdefn dev`: the embedded simulator (Entra ID,
// managed identity, Key Vault, Secrets Manager, Defender) with the functions
// wired to it through the real configuration path, and the scripted demo.
package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// The tenants mdefn dev serves: the simulator's own (the default) and a
// customer tenant, as a managed security provider's deployment would.
const (
	homeName = "mdefnsim"
	// FabrikamName and FabrikamTenantID name the second tenant; the default
	// app is consented there with every Defender role (one multi-tenant
	// app, one secret).
	FabrikamName     = "fabrikam"
	FabrikamTenantID = "2a7d9e41-3c5b-4f68-9d0e-1b2c3d4e5f60"
)

// devTenants adds the fabrikam tenant to s unless it is there, and returns
// the MDE_TENANTS value serving both.
func devTenants(s *sim.Sim) (string, error) {
	if s.Tenant(FabrikamTenantID) == nil {
		if _, err := s.AddTenant(sim.TenantSpec{ID: FabrikamTenantID, Name: FabrikamName}); err != nil {
			return "", err
		}
	}
	return homeName + "=" + s.TenantID() + "," + FabrikamName + "=" + FabrikamTenantID, nil
}

// devEnv points the real configuration path at a running simulator: the
// client secret is read from the simulator's Key Vault with the simulator's
// managed identity, exactly as in Azure; the simulator's tenant is the
// default and fabrikam is served too (tenants is MDE_TENANTS).
func devEnv(s *sim.Sim, caFile, addr, tenants string) map[string]string {
	return map[string]string{
		"MDE_TENANT_ID":      s.TenantID(),
		"MDE_TENANTS":        tenants,
		"MDE_CLIENT_ID":      sim.DefaultClientID,
		"MDE_AUTH":           "client-secret",
		"MDE_KEYVAULT_URL":   s.VaultURL(),
		"MDE_SECRET_NAME":    sim.DefaultSecretName,
		"MDE_AUTHORITY_URL":  s.AuthorityURL(),
		"MDE_API_URL":        s.DefenderURL(),
		"MDE_TOKEN_AUDIENCE": s.Audience(),
		"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "true",
		"MDE_LISTEN_ADDR":   addr,
		"IDENTITY_ENDPOINT": s.IdentityEndpoint(),
		"IDENTITY_HEADER":   s.IdentityHeader(),
		"SSL_CERT_FILE":     caFile,
	}
}

// Command is `mdefn dev`: the embedded simulator and every function on
// -addr, with curl lines to paste, until interrupted; or, with -demo, a
// short scripted walk through the functions.
func Command(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7071", "address of the functions")
	demo := fs.Bool("demo", false, "run a short scripted walk (alerts, isolate, release, tokencheck) and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logOut := io.Writer(os.Stdout)
	if *demo {
		logOut = io.Discard
	}
	d, err := startDev(*addr, logOut, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	if *demo {
		return runDemo(os.Stdout, d.base, d.sim, d.cfg)
	}
	printBanner(os.Stderr, d.base, d.sim, d.cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nmdefn dev: stopped")
	return nil
}

// devStack is a running simulator with the functions wired to it.
type devStack struct {
	base string
	sim  *sim.Sim
	c    *wiring.Components
	cfg  *config.Config
	srv  *http.Server
	own  bool // the stack started the simulator and closes it
}

// startDev starts the simulator (or uses s), points the process's
// configuration at it (os.Setenv) and serves the functions on addr. Go reads
// SSL_CERT_FILE once per process, so one process serves one simulator.
func startDev(addr string, logOut io.Writer, s *sim.Sim) (d *devStack, err error) {
	d = &devStack{sim: s}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.sim == nil {
		if d.sim, err = sim.Start(nil); err != nil {
			return nil, fmt.Errorf("start simulator: %w", err)
		}
		d.own = true
	}
	caFile, err := d.sim.CAFile()
	if err != nil {
		return nil, err
	}
	// The functions' own settings (MDE_PROTECTED_TAGS, MDE_DRY_RUN,
	// MDE_WEBHOOK_SECRET, ...) are the caller's; only the connection
	// settings point at the simulator.
	tenants, err := devTenants(d.sim)
	if err != nil {
		return nil, err
	}
	for k, v := range devEnv(d.sim, caFile, addr, tenants) {
		os.Setenv(k, v)
	}
	for _, k := range []string{"AWS_LAMBDA_RUNTIME_API", "FUNCTIONS_CUSTOMHANDLER_PORT", "MDE_AWS_SECRET_ID", "MDE_CLIENT_SECRET"} {
		os.Unsetenv(k)
	}
	if d.cfg, err = config.Load(os.Getenv); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if d.c, err = wiring.Build(d.cfg, &wiring.Options{Logger: wiring.NewLogger(logOut, d.cfg.LogLevel)}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another mdefn dev running? use -addr)", addr, err)
	}
	d.srv = &http.Server{Handler: d.c.App.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	go d.srv.Serve(ln)
	d.base = "http://" + ln.Addr().String()
	return d, nil
}

// Close stops the functions and the simulator.
func (d *devStack) Close() {
	if d.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = d.srv.Shutdown(ctx)
		cancel()
	}
	if d.sim != nil && d.own {
		d.sim.Close()
	}
}

// sample asks the running functions for a real device to put in the curl lines.
func sample(base string, cfg *config.Config) (machineID, deviceName string) {
	body, status, err := call(base, cfg, http.MethodGet, "/api/alerts?severity=High&top=1", nil)
	if err != nil || status != http.StatusOK {
		return strings.Repeat("0", 40), "host.contoso.com"
	}
	var page struct {
		Value []struct {
			MachineID       string `json:"machineId"`
			ComputerDNSName string `json:"computerDnsName"`
		} `json:"value"`
	}
	if json.Unmarshal(body, &page) != nil || len(page.Value) == 0 {
		return strings.Repeat("0", 40), "host.contoso.com"
	}
	return page.Value[0].MachineID, page.Value[0].ComputerDNSName
}

func printBanner(w io.Writer, base string, s *sim.Sim, cfg *config.Config) {
	id, name := sample(base, cfg)
	sig := func(body string) string {
		if !cfg.WebhookEnabled() {
			return ""
		}
		return fmt.Sprintf(" -H 'X-Hub-Signature-256: %s'", sign(cfg, []byte(body)))
	}
	line := func(method, path, body string) string {
		if method == http.MethodGet {
			return fmt.Sprintf("    curl -s '%s%s'%s\n", base, path, sig(""))
		}
		return fmt.Sprintf("    curl -s -X POST %s%s -H 'Content-Type: application/json'%s -d '%s'\n", base, path, sig(body), body)
	}
	// One line per registered function: its registry example on a real
	// device of the simulator. The actions line names a collection the
	// simulator records as finished an hour ago.
	var actionID string
	if a, ok := s.Defender().AddAction(defender.MachineAction{MachineID: id, Type: defender.ActionCollectInvestigationPackage,
		Requestor: "analyst@" + s.TenantID(), RequestorComment: "INC0012000: earlier collection"}); ok {
		actionID = a.ID
	}
	var lines strings.Builder
	for _, spec := range functions.All {
		if spec.Example.NeedsAction() && actionID == "" {
			continue
		}
		ex := spec.Example.Fill(id, name, actionID)
		lines.WriteString(line(ex.Method, ex.URL(spec.Name), ex.Body))
		if spec.Name == "actions" {
			lines.WriteString(line(http.MethodGet, ex.URL(spec.Name)+"/package", ""))
		}
	}
	// A release of a device that starts isolated in the simulator, and the
	// alerts query as a POST body.
	lines.WriteString(line(http.MethodPost, "/api/isolate",
		fmt.Sprintf(`{"deviceName":"%s","comment":"cleared by IR","ticket":"INC0012345","release":true}`, defender.IsolatedDNSName)))
	lines.WriteString(line(http.MethodPost, "/api/alerts", `{"severity":["High"],"top":2,"evidence":true}`))
	lines.WriteString(line(http.MethodGet, "/api/openapi.json", ""))
	// Each served tenant by name: its own alerts, its own token.
	var tenantLines strings.Builder
	for _, name := range []string{homeName, FabrikamName} {
		tenantLines.WriteString(line(http.MethodGet, "/api/alerts?tenant="+name+"&severity=High&top=2", ""))
		tenantLines.WriteString(line(http.MethodGet, "/api/tokencheck?tenant="+name, ""))
	}
	fmt.Fprintf(w, `mdefn dev: the functions are serving on %[1]s/api/...

  simulator (HTTPS, CA written for this run only)
    Entra ID        %[2]s/%[3]s/oauth2/v2.0/token
    Key Vault       %[4]s  (secret %[5]q, read with the simulated managed identity)
    Secrets Manager %[6]s
    Defender API    %[7]s/api/...
    identity        %[8]s

  try (paste into another terminal; action answers carry action.id for /api/actions/<id>):
%[9]s

  tenants (MDE_TENANTS=%[10]s; %[11]s is the default; "tenant" in a body or ?tenant= picks one):
%[12]s

  go run ./cmd/mdefn dev --demo walks through isolate → scan → collect → wait → package link.
  Ctrl-C stops everything.
`, base, s.AuthorityURL(), s.TenantID(), s.VaultURL(), sim.DefaultSecretName, s.SecretsManagerURL(), s.DefenderURL(),
		s.IdentityEndpoint(), strings.TrimRight(lines.String(), "\n"), tenantsSpec(cfg), homeName,
		strings.TrimRight(tenantLines.String(), "\n"))
}

// tenantsSpec writes cfg's MDE_TENANTS back as name=ID pairs.
func tenantsSpec(cfg *config.Config) string {
	var parts []string
	for _, t := range cfg.Tenants {
		if t.Name != "" {
			parts = append(parts, t.Name+"="+t.ID)
		} else {
			parts = append(parts, t.ID)
		}
	}
	return strings.Join(parts, ",")
}

// call sends one request to the running functions, signed when a webhook
// secret is configured.
func call(base string, cfg *config.Config, method, path string, body []byte) ([]byte, int, error) {
	b, status, _, err := callWith(base, cfg, method, path, body, nil)
	return b, status, err
}

// callWith is call with extra request headers, returning the answer's.
func callWith(base string, cfg *config.Config, method, path string, body []byte, header http.Header) ([]byte, int, http.Header, error) {
	target := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		target = base + path
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return nil, 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.WebhookEnabled() {
		req.Header.Set("X-Hub-Signature-256", sign(cfg, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return b, resp.StatusCode, resp.Header, err
}

var errDemo = errors.New("demo step failed")
