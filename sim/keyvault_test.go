package sim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// vaultClient returns the real azsecrets client authenticated with the real
// azidentity managed identity credential against the simulator. clientID
// selects a user-assigned identity ("" = system-assigned).
func vaultClient(t *testing.T, s *Sim, clientID string) *azsecrets.Client {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", s.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", s.IdentityHeader())
	opts := azcore.ClientOptions{Transport: s.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}}
	miOpts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
	if clientID != "" {
		miOpts.ID = azidentity.ClientID(clientID)
	}
	cred, err := azidentity.NewManagedIdentityCredential(miOpts)
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	c, err := azsecrets.NewClient(s.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: opts,
		DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatalf("azsecrets.NewClient: %v", err)
	}
	return c
}

func TestKeyVaultWithManagedIdentity(t *testing.T) {
	s := newSim(t, nil)
	c := vaultClient(t, s, "")
	ctx := context.Background()

	got, err := c.GetSecret(ctx, DefaultSecretName, "", nil)
	if err != nil {
		t.Fatalf("GetSecret(%q) error: %v", DefaultSecretName, err)
	}
	if *got.Value != DefaultClientSecret {
		t.Errorf("GetSecret(%q) value mismatch", DefaultSecretName)
	}
	firstVersion := got.ID.Version()
	if got.Attributes == nil || got.Attributes.Enabled == nil || !*got.Attributes.Enabled || got.ID.Name() != DefaultSecretName {
		t.Errorf("GetSecret(%q) = id %q attributes %+v, want enabled and named", DefaultSecretName, *got.ID, got.Attributes)
	}

	v2 := s.SetSecret(DefaultSecretName, "rotated-value")
	got, err = c.GetSecret(ctx, DefaultSecretName, "", nil)
	if err != nil || *got.Value != "rotated-value" || got.ID.Version() != v2 {
		t.Errorf("after SetSecret, GetSecret latest = version %q (error %v), want version %q with the new value", got.ID.Version(), err, v2)
	}
	got, err = c.GetSecret(ctx, DefaultSecretName, firstVersion, nil)
	if err != nil || *got.Value != DefaultClientSecret {
		t.Errorf("GetSecret(%q, %q) error %v, want the first value", DefaultSecretName, firstVersion, err)
	}

	// One token request for the whole session (the SDK caches the token);
	// reads counted without the challenge round trip.
	if n := s.TokenRequests(DefaultManagedIdentityClientID); n > 1 {
		t.Errorf("TokenRequests(managed identity) = %d, want at most 1", n)
	}
	if n := s.VaultReads(); n != 3 {
		t.Errorf("VaultReads() = %d, want 3", n)
	}
}

func TestKeyVaultErrors(t *testing.T) {
	s := newSim(t, nil)
	mi := s.AddManagedIdentity(ManagedIdentity{VaultAccess: true})
	c := vaultClient(t, s, mi.ClientID)
	ctx := context.Background()

	if _, err := c.GetSecret(ctx, "no-such-secret", "", nil); responseCode(err) != "SecretNotFound" || responseStatus(err) != 404 {
		t.Errorf("GetSecret(no-such-secret) error = %v, want 404 SecretNotFound", err)
	}
	if _, err := c.GetSecret(ctx, DefaultSecretName, "00000000000000000000000000000000", nil); responseCode(err) != "SecretNotFound" {
		t.Errorf("GetSecret(unknown version) error = %v, want SecretNotFound", err)
	}
	s.SetVaultAccess(mi.ClientID, false)
	if _, err := c.GetSecret(ctx, DefaultSecretName, "", nil); responseCode(err) != "Forbidden" || responseStatus(err) != 403 {
		t.Errorf("GetSecret without access error = %v, want 403 Forbidden", err)
	}
}

func responseCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func responseStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestKeyVaultChallengeAndTokenChecks(t *testing.T) {
	s := newSim(t, nil)
	secretURL := s.VaultURL() + "/secrets/" + DefaultSecretName + "?api-version=7.5"
	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"no token", "", 401, "Unauthorized"},
		{"defender audience", s.IssueToken(TokenSpec{}), 401, "Unauthorized"},
		{"expired", s.IssueToken(TokenSpec{Audience: VaultAudience, ExpiresAt: s.Now().Add(-time1)}), 401, "Unauthorized"},
		{"unpublished key", s.IssueToken(TokenSpec{Audience: VaultAudience, Unpublished: true}), 401, "Unauthorized"},
		{"other tenant", s.IssueToken(TokenSpec{Audience: VaultAudience, TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"}), 401, "Unauthorized"},
		{"valid, trailing slash audience", s.IssueToken(TokenSpec{Audience: VaultAudience + "/"}), 200, ""},
		{"valid app without access", s.IssueToken(TokenSpec{Audience: VaultAudience, AppID: DefaultPublicClientID}), 403, "Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("Authorization", "Bearer "+tt.token)
			}
			var body struct {
				Value string
				Error struct {
					Code       string
					Innererror struct{ Code string }
				}
			}
			req, _ := http.NewRequest(http.MethodGet, secretURL, nil)
			req.Header = h
			resp, err := s.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			decode(t, resp, &body)
			if resp.StatusCode != tt.status || body.Error.Code != tt.code {
				t.Errorf("GET secret = %d %q, want %d %q", resp.StatusCode, body.Error.Code, tt.status, tt.code)
			}
			if tt.status == 401 {
				want := `Bearer authorization="` + s.AuthorityURL() + "/" + s.TenantID() + `", resource="https://vault.azure.net"`
				if got := resp.Header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
			}
			if tt.status == 403 && body.Error.Innererror.Code != "AccessDenied" {
				t.Errorf("403 innererror code = %q, want AccessDenied", body.Error.Innererror.Code)
			}
			if tt.status == 200 && body.Value != DefaultClientSecret {
				t.Errorf("GET secret value mismatch")
			}
			if strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.token) && tt.token != "" {
				t.Errorf("challenge echoes the token")
			}
		})
	}
}

// The vault also works with azidentity's client secret credential against
// the simulated authority (MSAL reads the OpenID configuration first and
// adds OpenID scopes). Instance discovery must be disabled: MSAL asks
// login.microsoftonline.com about any authority host it does not know.
func TestKeyVaultWithClientSecretCredential(t *testing.T) {
	s := newSim(t, nil)
	opts := azcore.ClientOptions{Transport: s.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1},
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.AuthorityURL() + "/"}}
	cred, err := azidentity.NewClientSecretCredential(s.TenantID(), DefaultClientID, DefaultClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(s.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: opts,
		DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSecret(context.Background(), DefaultSecretName, "", nil)
	if err != nil || *got.Value != DefaultClientSecret {
		t.Errorf("GetSecret with ClientSecretCredential error = %v, want the default secret", err)
	}
}
