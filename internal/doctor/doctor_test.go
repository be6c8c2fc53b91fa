package doctor

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mdefn/mdefn/sim"
)

// doctorGetenv is the simulator's MDE_* configuration with overrides (""
// removes a setting), as a getenv function: no os.Setenv for MDE_*.
func doctorGetenv(overrides map[string]string) func(string) string {
	env := map[string]string{}
	for k, v := range testSim.Env(nil) {
		if strings.HasPrefix(k, "MDE_") {
			env[k] = v
		}
	}
	for k, v := range overrides {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return func(k string) string { return env[k] }
}

// useSDKEnv points the SDKs that read the process environment themselves
// (azidentity's managed identity, the AWS SDK) at the simulator. Without
// AWS_CA_BUNDLE the AWS SDK uses the injected HTTP client.
func useSDKEnv(t *testing.T) {
	t.Helper()
	env := testSim.Env(nil)
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(k, env[k])
	}
	t.Setenv("AWS_CA_BUNDLE", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
}

// newTestGUID returns a random GUID for apps the simulator does not know.
func newTestGUID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// selfSigned returns a certificate and the PEM of it with its private key.
func selfSigned(t *testing.T, cn string) (*x509.Certificate, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&b, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return cert, b.String()
}

const wrongSecret = "canary~WrongSecret-doctor-0123456789"

func TestDoctor(t *testing.T) {
	useSDKEnv(t)
	s := testSim
	mi := s.SystemIdentity()
	userPassword := `{"username":"` + sim.DefaultUserUPN + `","password":"` + sim.DefaultUserPassword + `"}`
	_, certPEM := selfSigned(t, "doctor-stored")
	uploaded, _ := selfSigned(t, "doctor-uploaded")

	tests := []struct {
		name  string
		env   map[string]string
		setup func(t *testing.T) map[string]string // sim changes, extra settings
		ok    bool
		want  []string // in the report, in this order
	}{
		{name: "healthy Key Vault", ok: true,
			want: []string{"✓ configuration", "✓ credential", "keyvault:mde-client-secret: a client secret", "✓ token", "✓ verification",
				"✓ permissions", "every function is allowed", "✓ defender", "summary: "}},
		{name: "plain environment secret", ok: true,
			env:  map[string]string{"MDE_KEYVAULT_URL": "", "MDE_CLIENT_SECRET": sim.DefaultClientSecret},
			want: []string{"! configuration", "MDE_CLIENT_SECRET holds", "fix: store the credential in Key Vault", "✓ defender"}},
		{name: "AWS Secrets Manager", ok: true,
			env:  map[string]string{"MDE_KEYVAULT_URL": "", "MDE_AWS_SECRET_ID": sim.DefaultAWSSecretID},
			want: []string{"✓ credential", "aws-secrets-manager:" + sim.DefaultAWSSecretID, "✓ defender"}},
		{name: "AWS secret missing",
			env:  map[string]string{"MDE_KEYVAULT_URL": "", "MDE_AWS_SECRET_ID": "mde/not-there"},
			want: []string{"✗ credential", "no secret \"mde/not-there\"", "aws secretsmanager create-secret --name mde/not-there", "- token", "skipped"}},
		{name: "AWS access denied",
			env: map[string]string{"MDE_KEYVAULT_URL": "", "MDE_AWS_SECRET_ID": sim.DefaultAWSSecretID},
			setup: func(t *testing.T) map[string]string {
				s.SetAWSAccess(sim.DefaultAWSAccessKeyID, false)
				t.Cleanup(func() { s.SetAWSAccess(sim.DefaultAWSAccessKeyID, true) })
				return nil
			},
			want: []string{"✗ credential", "AccessDeniedException", "secretsmanager:GetSecretValue"}},
		{name: "wrong client secret",
			env:  map[string]string{"MDE_KEYVAULT_URL": "", "MDE_CLIENT_SECRET": wrongSecret},
			want: []string{"✓ credential", "✗ token", "AADSTS7000215", "New client secret", "Value (not its Secret ID)", "- verification"}},
		{name: "wrong secret in the vault",
			setup: func(t *testing.T) map[string]string {
				s.SetSecret("doctor-wrong", wrongSecret)
				t.Cleanup(func() { s.DeleteSecret("doctor-wrong") })
				return map[string]string{"MDE_SECRET_NAME": "doctor-wrong"}
			},
			want: []string{"✗ token", "AADSTS7000215", "az keyvault secret set --vault-name"}},
		{name: "unknown app",
			setup: func(t *testing.T) map[string]string {
				return map[string]string{"MDE_CLIENT_ID": newTestGUID(t)}
			},
			want: []string{"✗ token", "AADSTS700016", "check MDE_CLIENT_ID"}},
		{name: "unknown tenant",
			env:  map[string]string{"MDE_TENANT_ID": "0b0b0b0b-1c1c-4d2d-8e3e-4f4f4f4f4f4f"},
			want: []string{"✗ token", "AADSTS90002", "check MDE_TENANT_ID"}},
		{name: "no vault access",
			setup: func(t *testing.T) map[string]string {
				s.SetVaultAccess(mi.ClientID, false)
				t.Cleanup(func() { s.SetVaultAccess(mi.ClientID, true) })
				return nil
			},
			want: []string{"✗ credential", "may not read secret", "Key Vault Secrets User", "--assignee-object-id " + mi.ObjectID,
				"az keyvault set-policy", "- token"}},
		{name: "secret missing",
			env:  map[string]string{"MDE_SECRET_NAME": "not-there"},
			want: []string{"✗ credential", "has no secret \"not-there\"", "az keyvault secret set", "--name not-there", "MDE_SECRET_NAME"}},
		{name: "vault down",
			setup: func(t *testing.T) map[string]string {
				if err := s.Down(sim.KeyVault); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Up(sim.KeyVault) })
				return nil
			},
			want: []string{"✗ credential", "cannot reach Key Vault", "check MDE_KEYVAULT_URL"}},
		{name: "Entra down",
			env: map[string]string{"MDE_KEYVAULT_URL": "", "MDE_CLIENT_SECRET": sim.DefaultClientSecret},
			setup: func(t *testing.T) map[string]string {
				if err := s.Down(sim.Entra); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Up(sim.Entra) })
				return nil
			},
			want: []string{"✗ token", "cannot reach Entra ID", "check MDE_AUTHORITY_URL"}},
		{name: "webhook secret missing",
			env:  map[string]string{"MDE_WEBHOOK_SECRET_NAME": "no-webhook-secret"},
			want: []string{"✗ webhook", "MDE_WEBHOOK_SECRET_NAME", "az keyvault secret set", "✓ defender"}},
		{name: "app without Machine.Isolate",
			setup: func(t *testing.T) map[string]string {
				app := s.AddApp(sim.App{Secret: wrongSecret, Roles: []string{"Alert.Read.All", "Machine.Read.All"}})
				t.Cleanup(func() { s.RemoveApp(app.ClientID) })
				return map[string]string{"MDE_KEYVAULT_URL": "", "MDE_CLIENT_ID": app.ClientID, "MDE_CLIENT_SECRET": wrongSecret}
			},
			want: []string{"✓ token", "✗ permissions", "missing Machine.Isolate", "isolate by machineId needs Machine.Isolate",
				"Application permissions: Machine.Isolate", "Grant admin consent", "✓ defender"}},
		{name: "app with no roles",
			setup: func(t *testing.T) map[string]string {
				app := s.AddApp(sim.App{Secret: wrongSecret})
				t.Cleanup(func() { s.RemoveApp(app.ClientID) })
				return map[string]string{"MDE_KEYVAULT_URL": "", "MDE_CLIENT_ID": app.ClientID, "MDE_CLIENT_SECRET": wrongSecret}
			},
			want: []string{"✗ permissions", "admin consent is missing", "Grant admin consent", "✗ defender", "403", "Alert.Read.All"}},
		{name: "budget without Machine.Read.All",
			setup: func(t *testing.T) map[string]string {
				app := s.AddApp(sim.App{Secret: wrongSecret, Roles: []string{"Alert.Read.All", "Machine.Isolate"}})
				t.Cleanup(func() { s.RemoveApp(app.ClientID) })
				return map[string]string{"MDE_KEYVAULT_URL": "", "MDE_CLIENT_ID": app.ClientID, "MDE_CLIENT_SECRET": wrongSecret,
					"MDE_MAX_ISOLATIONS_PER_HOUR": "5"}
			},
			want: []string{"✗ permissions", "isolate by machineId (with MDE_MAX_ISOLATIONS_PER_HOUR or MDE_PROTECTED_TAGS) needs Machine.Read.All",
				"✓ defender", "GET /api/alerts", "✗ defender", "GET /api/machines", "Machine.Read.All"}},
		{name: "wrong audience",
			env:  map[string]string{"MDE_TOKEN_AUDIENCE": "https://graph.microsoft.com"},
			want: []string{"✗ token", "AADSTS500011", "the audience comes from MDE_TOKEN_AUDIENCE"}},
		{name: "wrong cloud",
			env:  map[string]string{"MDE_CLOUD": "gcc", "MDE_TOKEN_AUDIENCE": ""},
			want: []string{"! configuration", "different clouds", "✗ token", "AADSTS500011", "MDE_CLOUD=gcc (which implies it)"}},
		{name: "API URL unreachable",
			env:  map[string]string{"MDE_API_URL": "https://127.0.0.1:9"},
			want: []string{"✓ permissions", "✗ defender", "cannot reach the Defender API", "check MDE_API_URL (https://127.0.0.1:9)"}},
		{name: "API URL of another service",
			setup: func(t *testing.T) map[string]string {
				return map[string]string{"MDE_API_URL": s.VaultURL()}
			},
			want: []string{"✗ defender", "401", "does not accept tokens for", "MDE_API_URL and MDE_TOKEN_AUDIENCE must belong to the same cloud"}},
		{name: "API URL not an API",
			setup: func(t *testing.T) map[string]string {
				return map[string]string{"MDE_API_URL": s.AuthorityURL()}
			},
			want: []string{"✗ defender", "404", "is not the Defender for Endpoint API"}},
		{name: "bad config value",
			env:  map[string]string{"MDE_CLOUD": "mars"},
			want: []string{"✗ configuration", "MDE_CLOUD", "fix: correct MDE_CLOUD", "- credential", "- defender"}},
		{name: "tenant missing",
			env:  map[string]string{"MDE_TENANT_ID": ""},
			want: []string{"✗ configuration", "MDE_TENANT_ID", "- token"}},
		{name: "certificate mode with a bare secret",
			env:  map[string]string{"MDE_AUTH": "client-certificate"},
			want: []string{"✗ credential", "holds no valid client-certificate credential", "PEM holding the certificate"}},
		{name: "certificate not uploaded",
			setup: func(t *testing.T) map[string]string {
				app := s.AddApp(sim.App{Certificate: uploaded, Roles: sim.ApplicationRoles()})
				s.SetSecret("doctor-cert", certPEM)
				t.Cleanup(func() { s.RemoveApp(app.ClientID); s.DeleteSecret("doctor-cert") })
				return map[string]string{"MDE_AUTH": "client-certificate", "MDE_CLIENT_ID": app.ClientID, "MDE_SECRET_NAME": "doctor-cert"}
			},
			want: []string{"✓ credential", "a certificate (thumbprint", "✗ token", "AADSTS700027", "Upload certificate"}},
		{name: "certificate uploaded", ok: true,
			setup: func(t *testing.T) map[string]string {
				cert, pemText := selfSigned(t, "doctor-good")
				app := s.AddApp(sim.App{Certificate: cert, Roles: sim.ApplicationRoles()})
				s.SetSecret("doctor-cert-ok", pemText)
				t.Cleanup(func() { s.RemoveApp(app.ClientID); s.DeleteSecret("doctor-cert-ok") })
				return map[string]string{"MDE_AUTH": "client-certificate", "MDE_CLIENT_ID": app.ClientID, "MDE_SECRET_NAME": "doctor-cert-ok"}
			},
			want: []string{"✓ token", "✓ defender"}},
		{name: "delegated user", ok: true,
			env: map[string]string{"MDE_AUTH": "password", "MDE_CLIENT_ID": sim.DefaultPublicClientID, "MDE_KEYVAULT_URL": "",
				"MDE_CLIENT_SECRET": userPassword},
			want: []string{"the password of " + sim.DefaultUserUPN, "✓ token", "delegated token", "Active remediation actions", "✓ defender"}},
		{name: "delegated user with a wrong password",
			env: map[string]string{"MDE_AUTH": "password", "MDE_CLIENT_ID": sim.DefaultPublicClientID, "MDE_KEYVAULT_URL": "",
				"MDE_CLIENT_SECRET": `{"username":"` + sim.DefaultUserUPN + `","password":"` + wrongSecret + `"}`},
			want: []string{"✗ token", "AADSTS50126", "store the user's current password"}},
		{name: "managed identity", ok: true,
			env:  map[string]string{"MDE_AUTH": "managed-identity", "MDE_CLIENT_ID": "", "MDE_KEYVAULT_URL": ""},
			want: []string{"system-assigned managed identity", "✓ token", "✓ permissions", "✓ defender"}},
		{name: "managed identity without Machine.Isolate",
			setup: func(t *testing.T) map[string]string {
				id := s.AddManagedIdentity(sim.ManagedIdentity{Roles: []string{"Alert.Read.All", "Machine.Read.All"}})
				return map[string]string{"MDE_AUTH": "managed-identity", "MDE_CLIENT_ID": id.ClientID, "MDE_KEYVAULT_URL": ""}
			},
			want: []string{"user-assigned managed identity", "✗ permissions", "missing Machine.Isolate", "appRoleAssignments"}},
		{name: "unknown user-assigned identity",
			setup: func(t *testing.T) map[string]string {
				return map[string]string{"MDE_AUTH": "managed-identity", "MDE_CLIENT_ID": newTestGUID(t), "MDE_KEYVAULT_URL": ""}
			},
			want: []string{"✗ token", "user-assigned identity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.setup != nil {
				for k, v := range tt.setup(t) {
					env[k] = v
				}
			}
			var out bytes.Buffer
			ok := Run(&out, doctorGetenv(env), s.HTTPClient())
			report := out.String()
			if ok != tt.ok {
				t.Errorf("Run() = %v, want %v; report:\n%s", ok, tt.ok, report)
			}
			rest := report
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("report lacks %q (in order); report:\n%s", w, report)
					break
				}
				rest = rest[i+len(w):]
			}
			if want := "✗"; !tt.ok && !strings.Contains(report, want) {
				t.Errorf("a failing report has no %s line:\n%s", want, report)
			}
			for name, secret := range map[string]string{"client secret": sim.DefaultClientSecret, "wrong secret": wrongSecret,
				"password": sim.DefaultUserPassword, "private key": "PRIVATE KEY", "token": "eyJ"} {
				if strings.Contains(report, secret) {
					t.Errorf("the %s appears in the report:\n%s", name, report)
				}
			}
		})
	}
}
