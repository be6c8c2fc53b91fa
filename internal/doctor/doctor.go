// Package doctor is `mdefn doctor`: it checks a set of MDE_* settings
// against the real vault, Entra ID and Defender, with the components a
// deployment would build (internal/wiring, with short retries), and prints
// the exact fix for each problem.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/functions/tokencheck"
	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// doctorStepTimeout bounds each network check, so a silent upstream is a
// finding rather than a hang.
const doctorStepTimeout = wiring.StepTimeout

// Command is `mdefn doctor`: it checks the configuration in the process
// environment and returns the exit code: 0, or 1 when something would fail
// in production, 2 for a usage error.
func Command(args []string) int {
	var tenant string
	all := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--all-tenants" || a == "-all-tenants":
			all = true
		case (a == "--tenant" || a == "-tenant") && i+1 < len(args):
			tenant = args[i+1]
			i++
		case strings.HasPrefix(a, "--tenant="):
			tenant = strings.TrimPrefix(a, "--tenant=")
		default:
			fmt.Fprintf(os.Stderr, "usage: mdefn doctor [--tenant <name or ID> | --all-tenants]; it reads the MDE_* settings from the environment\n")
			return 2
		}
	}
	if all && tenant != "" {
		fmt.Fprintf(os.Stderr, "mdefn doctor: --tenant and --all-tenants exclude each other\n")
		return 2
	}
	ok := true
	if all {
		ok = RunAll(os.Stdout, os.Getenv, nil)
	} else {
		ok = RunTenant(os.Stdout, os.Getenv, nil, tenant)
	}
	if !ok {
		return 1
	}
	return 0
}

// RunAll runs RunTenant for every tenant the configuration serves
// (MDE_TENANT_ID and MDE_TENANTS), one report each, and reports whether all
// passed.
func RunAll(w io.Writer, getenv func(string) string, httpClient *http.Client) bool {
	cfg, err := config.Load(getenv)
	if err != nil {
		return RunTenant(w, getenv, httpClient, "") // reports the configuration error
	}
	ok := true
	for i, t := range cfg.AllTenants() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== tenant %s (%s)\n", t.Label(), t.ID)
		ok = RunTenant(w, getenv, httpClient, t.ID) && ok
	}
	return ok
}

// Run checks, in order, the configuration getenv describes, the
// stored credential, token acquisition, the token's verification and
// permissions, and a live read of the Defender API, writing one line per
// check with the exact fix for each problem. A check whose prerequisite
// failed is skipped with a note. httpClient (nil = Go's defaults) carries
// every outbound call. It reports whether nothing would fail in
// production. The report never contains a secret, a password, a private
// key or a token.
func Run(w io.Writer, getenv func(string) string, httpClient *http.Client) bool {
	return RunTenant(w, getenv, httpClient, "")
}

// RunTenant is Run for one tenant of MDE_TENANTS (its name or ID; "" for
// the default, MDE_TENANT_ID), checked as a deployment serving it alone.
func RunTenant(w io.Writer, getenv func(string) string, httpClient *http.Client, tenant string) bool {
	d := &doctor{
		tenant: tenant,
		r:      &report{w: w},
		getenv: getenv,
		http:   httpClient,
		log:    slog.New(slog.DiscardHandler),
	}
	fmt.Fprintln(w, "mdefn doctor: what a deployment with these MDE_* settings would do")
	fmt.Fprintln(w)
	d.run()
	d.r.summary()
	return d.r.ok()
}

// doctor holds what each check hands to the next.
type doctor struct {
	r      *report
	tenant string // --tenant, "" for the default
	getenv func(string) string
	http   *http.Client
	log    *slog.Logger

	cfg      *config.Config
	raw      string           // the stored credential's value (never printed)
	cred     *auth.Credential // parsed raw; nil in managed-identity mode
	tenantID string           // effective: the secret's JSON overrides the environment
	clientID string
	tokens   *auth.TokenSource
	claims   *auth.Claims
	// comps are the deployment's components, built by the same wiring
	// with short retries: first with the configured credential source,
	// then (for the token and the Defender calls) serving the value read.
	comps *wiring.Components
}

// build builds the components as a deployment would, with short retries;
// secrets, when set, replaces the credential source.
func (d *doctor) build(secrets auth.SecretSource) (*wiring.Components, error) {
	return wiring.Build(d.cfg, &wiring.Options{HTTPClient: d.http, Logger: d.log, ShortRetries: true, Secrets: secrets})
}

func (d *doctor) run() {
	if !d.checkConfig() {
		for _, c := range []string{"credential", "token", "verification", "permissions", "defender"} {
			d.r.skip(c, "the configuration is invalid")
		}
		return
	}
	d.checkWebhook()
	if !d.checkCredential() {
		for _, c := range []string{"token", "verification", "permissions", "defender"} {
			d.r.skip(c, "no credential to sign in with")
		}
		return
	}
	tok, ok := d.checkToken()
	if !ok {
		for _, c := range []string{"verification", "permissions", "defender"} {
			d.r.skip(c, "no token")
		}
		return
	}
	d.checkVerification(tok)
	d.checkPermissions()
	d.checkDefender()
}

// checkConfig loads the configuration as a deployment would.
func (d *doctor) checkConfig() bool {
	cfg, err := config.Load(d.getenv)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			d.r.add(failed, "configuration", ce.Error(),
				fmt.Sprintf("correct %s as the message says; the settings are listed in the README (Configuration)", ce.Setting))
		} else {
			d.r.add(failed, "configuration", err.Error(), "correct the setting the message names")
		}
		return false
	}
	if d.tenant != "" || cfg.MultiTenant() {
		t, ok := cfg.DefaultTenant()
		if d.tenant != "" {
			t, ok = cfg.LookupTenant(d.tenant)
		}
		if !ok {
			what := fmt.Sprintf("tenant %q is not served: it is neither MDE_TENANT_ID nor in MDE_TENANTS", d.tenant)
			if d.tenant == "" {
				what = "MDE_TENANTS is set without MDE_TENANT_ID: there is no default tenant to check"
			}
			d.r.add(failed, "configuration", what, "name a served tenant with --tenant, or check them all with --all-tenants")
			return false
		}
		cfg = cfg.Only(t) // as a deployment serving t alone
	}
	d.cfg, d.tenantID, d.clientID = cfg, cfg.TenantID, cfg.ClientID
	client := cfg.ClientID
	if client == "" {
		client = "(system-assigned identity)"
	}
	source := string(cfg.CredentialSource)
	switch cfg.CredentialSource {
	case auth.SourceKeyVault:
		source = fmt.Sprintf("Key Vault %s, secret %q", cfg.KeyVaultURL, cfg.SecretName)
	case auth.SourceAWSSecretsManager:
		source = fmt.Sprintf("Secrets Manager secret %q", cfg.AWSSecretID)
	case auth.SourceEnvironment:
		source = "MDE_CLIENT_SECRET"
	case config.SourceNone:
		source = "none (managed identity)"
	}
	d.r.add(passed, "configuration", fmt.Sprintf("MDE_AUTH=%s, tenant %s, client %s, cloud %s", cfg.Auth, cfg.TenantID, client, cfg.Cloud), "",
		"credential: "+source,
		"Entra:     "+cfg.AuthorityURL,
		"audience:  "+cfg.TokenAudience,
		"Defender:  "+cfg.APIURL)
	for _, warning := range cfg.Warnings {
		d.r.add(warned, "configuration", warning, warningFix(warning))
	}
	if cfg.DryRun {
		d.r.add(warned, "configuration", "MDE_DRY_RUN=true: isolations are validated but never sent to Defender",
			"unset MDE_DRY_RUN (or set it to false) when the deployment should act")
	}
	if gov(cfg.APIURL) != gov(cfg.TokenAudience) {
		d.r.add(warned, "configuration", fmt.Sprintf("MDE_API_URL (%s) and MDE_TOKEN_AUDIENCE (%s) belong to different clouds", cfg.APIURL, cfg.TokenAudience),
			"set MDE_CLOUD to the tenant's cloud and unset the explicit MDE_API_URL / MDE_TOKEN_AUDIENCE that disagree with it")
	}
	return true
}

// gov reports whether a URL is on a US Government cloud host.
func gov(u string) bool {
	host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	return strings.HasSuffix(host, ".us")
}

func warningFix(w string) string {
	switch {
	case strings.HasPrefix(w, "MDE_CLIENT_SECRET holds"):
		return "store the credential in Key Vault (MDE_KEYVAULT_URL, MDE_SECRET_NAME) or Secrets Manager (MDE_AWS_SECRET_ID) and unset MDE_CLIENT_SECRET"
	case strings.HasPrefix(w, "MDE_WEBHOOK_SECRET holds"):
		return "store the webhook secret in the vault and name it with MDE_WEBHOOK_SECRET_NAME; unset MDE_WEBHOOK_SECRET"
	case strings.Contains(w, " is ignored"):
		name, _, _ := strings.Cut(w, " ")
		return "unset " + name + " so the configuration says what the deployment uses"
	}
	return ""
}

// checkWebhook reads the webhook signing secret when one is stored, since a
// missing one fails every HTTP request.
func (d *doctor) checkWebhook() {
	if d.cfg.WebhookSecretName == "" {
		return
	}
	src, err := d.cfg.WebhookSecretSource(d.http, nil)
	if err != nil {
		d.r.add(failed, "webhook", "cannot build the webhook secret source: "+err.Error(), "check MDE_WEBHOOK_SECRET_NAME and the vault settings")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), doctorStepTimeout)
	defer cancel()
	if _, err := src.Secret(ctx); err != nil {
		what, fix := secretDiagnosis(d.cfg, err)
		d.r.add(failed, "webhook", "MDE_WEBHOOK_SECRET_NAME: "+what, fix)
		return
	}
	d.r.add(passed, "webhook", fmt.Sprintf("read the webhook secret %s (requests must carry X-Hub-Signature-256)", src.Name()), "")
}

// checkCredential reads and parses the stored credential.
func (d *doctor) checkCredential() bool {
	if d.cfg.Auth == auth.ModeManagedIdentity && d.cfg.CredentialSource == config.SourceNone {
		who := "the system-assigned managed identity"
		if d.cfg.ClientID != "" {
			who = "the user-assigned managed identity " + d.cfg.ClientID
		}
		d.r.add(passed, "credential", "none stored: "+who+" signs in", "")
		return true
	}
	comps, err := d.build(nil)
	if err != nil {
		d.r.add(failed, "credential", "cannot build the credential source: "+err.Error(), "check the credential settings (MDE_KEYVAULT_URL, MDE_AWS_SECRET_ID)")
		return false
	}
	src := comps.Secrets
	ctx, cancel := context.WithTimeout(context.Background(), doctorStepTimeout)
	defer cancel()
	raw, err := src.Secret(ctx)
	if err != nil {
		what, fix := secretDiagnosis(d.cfg, err)
		d.r.add(failed, "credential", what, fix)
		return false
	}
	cred, err := auth.ParseCredential(raw, d.cfg.Auth)
	if err != nil {
		d.r.add(failed, "credential", fmt.Sprintf("%s holds no valid %s credential: %s", src.Name(), d.cfg.Auth, strings.TrimPrefix(err.Error(), "auth: ")),
			formatFix(d.cfg.Auth))
		return false
	}
	d.raw, d.cred = raw, cred
	var notes []string
	if cred.TenantID != "" && cred.TenantID != d.tenantID {
		notes = append(notes, "tenantId "+cred.TenantID+" from the secret's JSON replaces MDE_TENANT_ID")
		d.tenantID = cred.TenantID
	}
	if cred.ClientID != "" && cred.ClientID != d.clientID {
		notes = append(notes, "clientId "+cred.ClientID+" from the secret's JSON replaces MDE_CLIENT_ID")
		d.clientID = cred.ClientID
	}
	d.r.add(passed, "credential", "read "+src.Name()+": "+describeCredential(cred), "", notes...)
	return true
}

func describeCredential(c *auth.Credential) string {
	var parts []string
	if c.ClientSecret != "" {
		parts = append(parts, "a client secret")
	}
	if len(c.Certificate) > 0 {
		parts = append(parts, "a certificate (thumbprint "+c.Thumbprint()+") and its key")
	}
	if c.Username != "" {
		parts = append(parts, "the password of "+c.Username)
	}
	if len(parts) == 0 {
		return "a credential"
	}
	return strings.Join(parts, ", ")
}

// checkToken acquires a Defender token exactly as the functions do.
func (d *doctor) checkToken() (string, bool) {
	var stored auth.SecretSource
	if d.cred != nil {
		// Serve the value already read: one vault read per run.
		stored = auth.NewEnvSecretSource("stored credential", d.raw)
	}
	comps, err := d.build(stored)
	if err != nil {
		d.r.add(failed, "token", "cannot build the token source: "+err.Error(), "check MDE_AUTH and the credential settings")
		return "", false
	}
	d.comps = comps
	ts := comps.Tokens
	ctx, cancel := context.WithTimeout(context.Background(), doctorStepTimeout)
	defer cancel()
	tok, err := ts.TokenContext(ctx)
	if err != nil {
		what, fix := entraDiagnosis(d, err)
		d.r.add(failed, "token", what, fix)
		return "", false
	}
	d.tokens = ts
	d.r.add(passed, "token", fmt.Sprintf("Entra issued a token for %s (expires %s)", d.cfg.TokenAudience, tok.Expiry.UTC().Format(time.RFC3339)), "")
	return tok.AccessToken, true
}

// checkVerification verifies the token as tokencheck does: signature against
// the tenant's published keys, issuer, audience, lifetime.
func (d *doctor) checkVerification(token string) {
	// The deployment's verifier follows the tenant the credential signs in
	// to (a tenantId in the secret's JSON governs).
	v := d.comps.Verifier
	ctx, cancel := context.WithTimeout(context.Background(), doctorStepTimeout)
	defer cancel()
	claims, problems, err := v.Verify(ctx, token)
	if err != nil {
		d.r.add(warned, "verification", "cannot fetch the tenant's signing keys: "+err.Error(),
			fmt.Sprintf("tokencheck needs %s/%s/discovery/v2.0/keys: check MDE_AUTHORITY_URL and MDE_TENANT_ID", d.cfg.AuthorityURL, d.tenantID))
		d.claims, _ = auth.ParseUnverified(token)
		return
	}
	d.claims = claims
	if len(problems) == 0 {
		d.r.add(passed, "verification", fmt.Sprintf("signature, issuer, audience and lifetime check out (%s token of app %s)", claims.TokenType(), claims.AppID), "")
		return
	}
	for _, p := range problems {
		o, what, fix := verifyDiagnosis(d, claims, p)
		d.r.add(o, "verification", what, fix)
	}
}

// checkPermissions tells, per function, what the token allows.
func (d *doctor) checkPermissions() {
	c := d.claims
	if c == nil {
		d.r.skip("permissions", "the token could not be read")
		return
	}
	delegated := c.TokenType() == auth.TokenDelegated
	if len(c.Roles) == 0 && len(c.Scopes) == 0 {
		d.r.add(failed, "permissions", "the token carries no Defender permissions at all: admin consent is missing", d.consentFix(nil))
		return
	}
	held := c.Roles
	kind := "application permissions"
	if delegated {
		held, kind = c.Scopes, "delegated permissions"
	}
	// Every tokencheck entry of the registry, with the reads the settings
	// add: the protected tags read the device (and its tags) before a
	// containment action even by machineId, the isolation budget reads the
	// machine actions before an isolation.
	type entry struct {
		label  string
		access auth.Access
	}
	var entries []entry
	for _, spec := range functions.All {
		extra := (len(d.cfg.ProtectedTags) > 0 && spec.Defender.Containment) ||
			(d.cfg.MaxIsolationsPerHour > 0 && slices.Contains(spec.PermanentCodes, envelope.IsolationBudgetExceeded))
		for _, chk := range spec.Checks {
			if len(chk.Needs.App) == 0 && len(chk.Needs.Delegated) == 0 {
				continue
			}
			label, needs := chk.Name, chk.Needs
			switch byName := chk.Name + "ByName"; {
			case strings.HasSuffix(chk.Name, "ByName"):
				label = strings.TrimSuffix(chk.Name, "ByName") + " by deviceName or ipAddress"
			case slices.ContainsFunc(spec.Checks, func(o tokencheck.Check) bool { return o.Name == byName }):
				label = chk.Name + " by machineId"
				if extra {
					i := slices.IndexFunc(spec.Checks, func(o tokencheck.Check) bool { return o.Name == byName })
					needs = spec.Checks[i].Needs
					label += " (with MDE_MAX_ISOLATIONS_PER_HOUR or MDE_PROTECTED_TAGS)"
				}
			}
			entries = append(entries, entry{label, c.Check(needs)})
		}
	}
	var missing, allowed, denied []string
	for _, e := range entries {
		if e.access.Allowed {
			allowed = append(allowed, e.label)
			continue
		}
		denied = append(denied, fmt.Sprintf("%s needs %s", e.label, strings.Join(e.access.Missing, " and ")))
		for _, m := range e.access.Missing {
			if !slices.Contains(missing, m) {
				missing = append(missing, m)
			}
		}
	}
	heldLine := fmt.Sprintf("the token holds %s: %s", kind, strings.Join(held, ", "))
	if len(missing) == 0 {
		d.r.add(passed, "permissions", fmt.Sprintf("every function is allowed (the %d entries of tokencheck's functions)", len(allowed)), "", heldLine)
	} else {
		d.r.add(failed, "permissions", "missing "+strings.Join(missing, ", "), d.consentFix(missing), append(denied, heldLine)...)
	}
	if delegated {
		d.r.add(warned, "permissions", "delegated token: Defender also checks the user's own role at each action",
			"give "+c.UPN+" a Defender role with \"Active remediation actions\" (Microsoft Defender portal → Settings → Endpoints → Roles) for isolation, and \"View data\" for alerts")
	}
}

// consentFix names how to grant the missing permissions (nil: a sensible
// set) for the identity the deployment signs in with.
func (d *doctor) consentFix(missing []string) string {
	if missing == nil {
		missing = []string{"Alert.Read.All", "Machine.Read.All", "Machine.Isolate"}
		if d.claims != nil && d.claims.TokenType() == auth.TokenDelegated {
			missing = []string{"Alert.Read", "Machine.Read", "Machine.Isolate"}
		}
	}
	list := strings.Join(missing, ", ")
	if d.cfg.Auth == auth.ModeManagedIdentity {
		return fmt.Sprintf("assign the WindowsDefenderATP app roles %s to the managed identity with Microsoft Graph appRoleAssignments\n"+
			"(docs/onboarding.md, \"Secretless: the function's managed identity\"); the function picks them up with its next token (up to an hour, or restart it)", list)
	}
	kind := "Application permissions"
	if d.cfg.Auth == auth.ModePassword {
		kind = "Delegated permissions"
	}
	return fmt.Sprintf("Entra admin center → App registrations → %s → API permissions → Add a permission → APIs my organization uses →\n"+
		"WindowsDefenderATP → %s: %s, then press \"Grant admin consent\"; tokens issued before keep their old permissions (up to an hour, or restart the function)",
		d.clientID, kind, list)
}

// checkDefender makes the cheap reads the functions depend on.
func (d *doctor) checkDefender() {
	client := d.comps.Defender
	delegated := d.claims != nil && d.claims.TokenType() == auth.TokenDelegated
	probes := []struct {
		what       string
		app, deleg string // the least privileged permission the call needs
		call       func(ctx context.Context) (int, error)
	}{
		{"GET /api/alerts?$top=1 (alerts)", "Alert.Read.All", "Alert.Read", func(ctx context.Context) (int, error) {
			a, err := client.ListAlerts(ctx, &atp.ListAlertsOptions{Top: 1})
			return len(a), err
		}},
		{"GET /api/machines?$top=1 (isolate by name or IP)", "Machine.Read.All", "Machine.Read", func(ctx context.Context) (int, error) {
			m, err := client.ListMachines(ctx, &atp.ListMachinesOptions{Top: 1})
			return len(m), err
		}},
	}
	for _, p := range probes {
		ctx, cancel := context.WithTimeout(context.Background(), doctorStepTimeout)
		n, err := p.call(ctx)
		cancel()
		if err == nil {
			d.r.add(passed, "defender", fmt.Sprintf("%s answered (%s)", p.what, plural(n, "item")), "")
			continue
		}
		need := p.app
		if delegated {
			need = p.deleg
		}
		o, what, fix := defenderDiagnosis(d, err, need)
		d.r.add(o, "defender", p.what+": "+what, fix)
		if o == failed && !isForbidden(err) {
			// Connection and authentication failures repeat for every call.
			return
		}
	}
}
