package doctor

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// The diagnoses below turn each failure into what went wrong and the exact
// fix. They read errors by their documented fields; the texts they quote
// never hold a secret (pkg/auth and pkg/atp guarantee it).

// vaultName is the vault's name from its URL (https://<name>.vault.azure.net).
func vaultName(vaultURL string) string {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Hostname() == "" {
		return "<vault>"
	}
	if net.ParseIP(u.Hostname()) != nil {
		return "<vault>"
	}
	name, _, _ := strings.Cut(u.Hostname(), ".")
	return name
}

// vaultPrincipal finds the object ID Key Vault names in a 403 message
// ("... 'appid=...;oid=<id>;iss=...' does not have secrets get permission").
var vaultPrincipal = regexp.MustCompile(`oid=([0-9a-fA-F-]{36})`)

// secretDiagnosis explains a failure to read the stored credential.
func secretDiagnosis(cfg *config.Config, err error) (what, fix string) {
	var se *auth.SecretError
	if !errors.As(err, &se) {
		return err.Error(), "check the credential settings"
	}
	var opErr *net.OpError
	unreachable := errors.As(err, &opErr)
	switch se.Source {
	case string(auth.SourceKeyVault):
		vault := vaultName(cfg.KeyVaultURL)
		switch {
		case se.StatusCode == http.StatusNotFound:
			return fmt.Sprintf("Key Vault %s has no secret %q (%s)", cfg.KeyVaultURL, se.Name, se.Code),
				fmt.Sprintf("create it: az keyvault secret set --vault-name %s --name %s --file <file holding the credential>\n"+
					"or set MDE_SECRET_NAME (or MDE_WEBHOOK_SECRET_NAME) to the name the secret has", vault, se.Name)
		case se.StatusCode == http.StatusForbidden:
			principal := "<principal object ID>"
			if m := vaultPrincipal.FindStringSubmatch(se.Message); m != nil {
				principal = m[1]
			}
			return fmt.Sprintf("the identity reading Key Vault %s may not read secret %q (403 %s)", cfg.KeyVaultURL, se.Name, se.Code),
				fmt.Sprintf("vault with Azure RBAC: az role assignment create --role \"Key Vault Secrets User\" --assignee-object-id %s --assignee-principal-type ServicePrincipal --scope $(az keyvault show --name %s --query id -o tsv)\n"+
					"vault with access policies: az keyvault set-policy --name %s --object-id %s --secret-permissions get\n"+
					"(the principal is the function app's managed identity; on a workstation, the account of az login)", principal, vault, vault, principal)
		case se.StatusCode == http.StatusUnauthorized:
			return fmt.Sprintf("Key Vault %s refused the identity's token (401): %s", cfg.KeyVaultURL, se.Message),
				"sign in to the vault's tenant: in Azure, the function's managed identity must belong to it; on a workstation, az login --tenant <the vault's tenant>"
		case unreachable:
			return fmt.Sprintf("cannot reach Key Vault %s: %s", cfg.KeyVaultURL, se.Message),
				"check MDE_KEYVAULT_URL (https://<name>.vault.azure.net/), DNS, and the vault's Networking settings (allow the function's outbound addresses or use a private endpoint)"
		case se.Code == "AuthenticationFailed" || se.StatusCode == 0:
			return "no identity could get a token for Key Vault: " + se.Message,
				"in Azure, turn on the function app's managed identity (az functionapp identity assign); on a workstation, az login"
		case se.StatusCode == http.StatusTooManyRequests || se.StatusCode >= 500:
			return fmt.Sprintf("Key Vault %s is throttling or failing (%d %s)", cfg.KeyVaultURL, se.StatusCode, se.Code),
				"transient: run mdefn doctor again; a deployment rereads the secret only every MDE_SECRET_TTL"
		}
		return se.Error(), "check MDE_KEYVAULT_URL and MDE_SECRET_NAME"
	case string(auth.SourceAWSSecretsManager):
		switch se.Code {
		case "ResourceNotFoundException":
			return fmt.Sprintf("Secrets Manager has no secret %q in this account and region", se.Name),
				fmt.Sprintf("create it: aws secretsmanager create-secret --name %s --secret-string file://<file holding the credential>\n"+
					"or set MDE_AWS_SECRET_ID to the secret's name or ARN, and AWS_REGION to its region", se.Name)
		case "AccessDeniedException":
			return fmt.Sprintf("the AWS identity may not read secret %q (AccessDeniedException)", se.Name),
				fmt.Sprintf("allow secretsmanager:GetSecretValue on the secret's ARN to the Lambda execution role (template.yaml's policy does this), "+
					"and kms:Decrypt on its key when it is a customer-managed key; on a workstation, use a profile that may read %s", se.Name)
		case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId":
			return "AWS rejected the credentials signing the request (" + se.Code + ")",
				"refresh the AWS credentials: aws sso login, or check AWS_PROFILE / AWS_ACCESS_KEY_ID"
		case "DecryptionFailure":
			return "Secrets Manager could not decrypt secret " + se.Name + " (DecryptionFailure)",
				"allow kms:Decrypt on the secret's KMS key to the execution role"
		}
		if unreachable || se.StatusCode == 0 {
			return "cannot read Secrets Manager: " + se.Message,
				"configure the AWS region and credentials (AWS_REGION, AWS_PROFILE or the execution role) and check the network path to Secrets Manager"
		}
		return se.Error(), "check MDE_AWS_SECRET_ID"
	}
	return se.Error(), "set MDE_CLIENT_SECRET, or better, store the credential in Key Vault or Secrets Manager"
}

// formatFix explains what the secret must hold for mode.
func formatFix(mode auth.Mode) string {
	switch mode {
	case auth.ModeClientCertificate:
		return "store a PEM holding the certificate and its unencrypted RSA private key, or JSON {\"certificate\": \"<that PEM>\"}"
	case auth.ModePassword:
		return "store JSON {\"username\": \"<user principal name>\", \"password\": \"<password>\"} (add \"clientSecret\" for a confidential app)"
	}
	return "store the client secret's Value (not its Secret ID) as the bare secret, or JSON {\"clientSecret\": \"<value>\"}"
}

// entraDiagnosis explains a failure to get a Defender token.
func entraDiagnosis(d *doctor, err error) (what, fix string) {
	cfg := d.cfg
	var se *auth.SecretError
	if errors.As(err, &se) {
		return secretDiagnosis(cfg, err)
	}
	var ee *auth.EntraError
	if !errors.As(err, &ee) {
		if cfg.Auth == auth.ModeManagedIdentity {
			return "no managed identity answered: " + err.Error(),
				"run this where the function's managed identity exists (in the function app: Console, or an Azure VM / Cloud Shell with that identity), " +
					"or use MDE_AUTH=client-secret locally"
		}
		return "cannot reach Entra ID: " + err.Error(),
			fmt.Sprintf("check MDE_AUTHORITY_URL (%s) or MDE_CLOUD, DNS and any outbound proxy (HTTPS_PROXY)", cfg.AuthorityURL)
	}
	code := ee.AADSTS()
	what = fmt.Sprintf("Entra refused the token request: %s", firstLineOf(ee.Description))
	if ee.Description == "" {
		what = fmt.Sprintf("Entra refused the token request: %d %s", ee.StatusCode, ee.Code)
	}
	store := storeName(cfg)
	audienceFrom := "MDE_TOKEN_AUDIENCE"
	if d.getenv("MDE_TOKEN_AUDIENCE") == "" {
		audienceFrom = fmt.Sprintf("MDE_CLOUD=%s (which implies it)", cfg.Cloud)
	}
	switch code {
	case 7000215, 7000222:
		fix = fmt.Sprintf("the stored secret is not a current client secret of app %s: App registrations → %s → Certificates & secrets → New client secret, "+
			"then store its Value (not its Secret ID) in %s", d.clientID, d.clientID, store)
	case 700016:
		fix = fmt.Sprintf("no app %s in tenant %s: check MDE_CLIENT_ID (the Application (client) ID on the app's Overview page), MDE_TENANT_ID, "+
			"and MDE_CLOUD (%s): the app must be registered in that tenant of that cloud", d.clientID, d.tenantID, cfg.Cloud)
	case 90002, 90072:
		fix = fmt.Sprintf("tenant %s is unknown at %s: check MDE_TENANT_ID (Directory (tenant) ID, or the tenant's domain) and MDE_CLOUD (%s) / MDE_AUTHORITY_URL",
			d.tenantID, cfg.AuthorityURL, cfg.Cloud)
	case 50059:
		fix = "set MDE_TENANT_ID to the tenant's GUID or domain, not common or organizations"
	case 500011:
		fix = fmt.Sprintf("Entra knows no API %q in this tenant: the audience comes from %s; for Defender for Endpoint it is "+
			"https://api.securitycenter.microsoft.com (public cloud), https://api-gcc.securitycenter.microsoft.us (gcc) or https://api-gov.securitycenter.microsoft.us (gcc-high, dod). "+
			"If it is right, Defender for Endpoint is not set up in this tenant", cfg.TokenAudience, audienceFrom)
	case 50126:
		fix = fmt.Sprintf("the username or password in %s is wrong: store the user's current password (JSON \"password\")", store)
	case 50034:
		fix = fmt.Sprintf("no such user in tenant %s: correct \"username\" in %s (the user principal name)", d.tenantID, store)
	case 50053, 50055, 50057:
		fix = "the user account is locked, its password expired or it is disabled: fix the account in Entra, then store the new password in " + store
	case 50076, 50079, 53003:
		fix = "the password grant cannot satisfy MFA or Conditional Access: exclude this service account from the policy, " +
			"or use application permissions (MDE_AUTH=client-secret or managed-identity)"
	case 65001:
		fix = fmt.Sprintf("consent missing: App registrations → %s → API permissions → Grant admin consent", d.clientID)
	case 7000218, 7000216:
		fix = fmt.Sprintf("app %s is a confidential client: App registrations → Authentication → Allow public client flows: Yes, "+
			"or add \"clientSecret\" to the JSON in %s", d.clientID, store)
	case 700027, 700024, 700021, 50027:
		thumb := "<thumbprint>"
		if d.cred != nil && d.cred.Thumbprint() != "" {
			thumb = d.cred.Thumbprint()
		}
		fix = fmt.Sprintf("Entra does not accept the certificate (thumbprint %s) for app %s: App registrations → Certificates & secrets → Certificates → Upload certificate "+
			"(the public .cer/.pem), or store the certificate already uploaded there in %s; also check this machine's clock", thumb, d.clientID, store)
	case 0:
		if cfg.Auth == auth.ModeManagedIdentity {
			fix = "the managed identity endpoint refused the request: with MDE_CLIENT_ID set, it must be the client ID of a user-assigned identity " +
				"attached to the function app (az functionapp identity show); unset MDE_CLIENT_ID to use the system-assigned one"
		} else {
			fix = fmt.Sprintf("check MDE_AUTHORITY_URL (%s): it must be the Entra authority of the tenant's cloud", cfg.AuthorityURL)
		}
	default:
		fix = fmt.Sprintf("look up AADSTS%d at https://login.microsoftonline.com/error?code=%d", code, code)
	}
	return what, fix
}

// storeName says where the credential is kept, for fixes.
func storeName(cfg *config.Config) string {
	switch cfg.CredentialSource {
	case auth.SourceKeyVault:
		return fmt.Sprintf("Key Vault secret %s (az keyvault secret set --vault-name %s --name %s ...)", cfg.SecretName, vaultName(cfg.KeyVaultURL), cfg.SecretName)
	case auth.SourceAWSSecretsManager:
		return fmt.Sprintf("Secrets Manager secret %s (aws secretsmanager put-secret-value --secret-id %s ...)", cfg.AWSSecretID, cfg.AWSSecretID)
	case auth.SourceEnvironment:
		return "MDE_CLIENT_SECRET"
	}
	return "the credential store"
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// verifyDiagnosis explains one failed check of the token.
func verifyDiagnosis(d *doctor, c *auth.Claims, problem string) (outcome, string, string) {
	cfg := d.cfg
	switch problem {
	case auth.ProblemAudience:
		return failed, fmt.Sprintf("the token's audience is %s, not MDE_TOKEN_AUDIENCE %s", c.Audience, cfg.TokenAudience),
			"set MDE_TOKEN_AUDIENCE (or MDE_CLOUD) to the audience of the tenant's cloud: https://api.securitycenter.microsoft.com in the public cloud"
	case auth.ProblemIssuer:
		return failed, fmt.Sprintf("the token was issued by %s for tenant %s, not by tenant %s", c.Issuer, c.TenantID, d.tenantID),
			"set MDE_TENANT_ID to the tenant the app is registered in"
	case auth.ProblemSignature:
		return failed, fmt.Sprintf("the token's signature does not match the keys %s publishes for tenant %s", cfg.AuthorityURL, d.tenantID),
			"MDE_AUTHORITY_URL and MDE_CLOUD must name the cloud the tenant lives in; a proxy rewriting tokens would also do this"
	case auth.ProblemExpired, auth.ProblemNotYetValid:
		return warned, "the token is " + problem + " by this machine's clock",
			"set this machine's clock right (NTP); the functions check nothing against the local clock but tokencheck does"
	}
	return failed, "the token is " + problem, "run mdefn doctor again; if it persists, check MDE_AUTHORITY_URL"
}

// isForbidden reports a Defender 403.
func isForbidden(err error) bool {
	var re *atp.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// defenderDiagnosis explains a failed read of the Defender API.
// need is the permission the failed call requires.
func defenderDiagnosis(d *doctor, err error, need string) (outcome, string, string) {
	cfg := d.cfg
	var rl *atp.RateLimitError
	if errors.As(err, &rl) {
		return warned, fmt.Sprintf("throttled, retry after %s", rl.RetryAfter),
			"Defender allows 100 calls a minute and 1,500 an hour per app: something else is using this app's budget"
	}
	var re *atp.ResponseError
	if errors.As(err, &re) {
		answer := fmt.Sprintf("%d %s: %s", re.StatusCode, re.Code, re.Message)
		switch {
		case re.StatusCode == http.StatusForbidden:
			return failed, answer, d.consentFix([]string{need})
		case re.StatusCode == http.StatusUnauthorized:
			return failed, answer, fmt.Sprintf("%s does not accept tokens for %s: MDE_API_URL and MDE_TOKEN_AUDIENCE must belong to the same cloud (MDE_CLOUD); "+
				"public cloud: https://api.security.microsoft.com (or a geo host such as https://eu.api.security.microsoft.com) with https://api.securitycenter.microsoft.com",
				cfg.APIURL, cfg.TokenAudience)
		case re.StatusCode == http.StatusNotFound || re.StatusCode == http.StatusMethodNotAllowed:
			return failed, answer, fmt.Sprintf("MDE_API_URL (%s) is not the Defender for Endpoint API: use https://api.security.microsoft.com or your geo host, without /api", cfg.APIURL)
		case re.StatusCode >= 500:
			return warned, answer, "Defender is failing: try again later; the functions retry such answers"
		}
		return failed, answer, "check MDE_API_URL"
	}
	if errors.Is(err, atp.ErrToken) {
		return failed, err.Error(), "the token could not be renewed: run mdefn doctor again"
	}
	return failed, "cannot reach the Defender API: " + err.Error(),
		fmt.Sprintf("check MDE_API_URL (%s), DNS and any outbound proxy; public cloud: https://api.security.microsoft.com", cfg.APIURL)
}
