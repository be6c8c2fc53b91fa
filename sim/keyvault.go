package sim

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// vaultName is the simulated vault's name in error messages.
const vaultName = "mdefnsim"

type vaultVersion struct {
	id      string
	value   string
	created time.Time
}

// SetSecret stores value as a new version of the vault secret name (names
// are case-insensitive, as in Key Vault) and returns the version ID. A GET
// without a version returns the latest.
func (s *Sim) SetSecret(name, value string) string {
	v := vaultVersion{id: randomHex(16), value: value, created: s.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(name)
	s.vault[k] = append(s.vault[k], v)
	return v.id
}

// DeleteSecret removes every version of the vault secret name.
func (s *Sim) DeleteSecret(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.vault, strings.ToLower(name))
}

// vaultError writes the Key Vault error shape.
func vaultError(w http.ResponseWriter, status int, code, msg, inner string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// VaultError returns a fault answering with a Key Vault error body, e.g.
// VaultError(429, "Throttled", "Request was not processed because too many
// requests were received.").
func VaultError(status int, code, message string) Fault {
	return Fault{Status: status, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body: fmt.Appendf(nil, `{"error":{"code":%q,"message":%q}}`, code, message)}
}

func (s *Sim) vaultChallenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`,
		s.AuthorityURL(), s.tenantID, VaultAudience))
}

// serveVault serves GET /secrets/{name}[/{version}]?api-version=7.x with
// Key Vault's challenge authentication.
func (s *Sim) serveVault(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-request-id", newGUID())
	w.Header().Set("x-ms-keyvault-service-version", "1.9.1.0")
	w.Header().Set("x-ms-keyvault-region", "westeurope")
	raw := bearer(r.Header.Get("Authorization"))
	if raw == "" {
		s.vaultChallenge(w)
		vaultError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", "")
		return
	}
	tok, err := s.verifyToken(raw, func(aud string) bool { k, _ := s.resourceOf(aud); return k == resVault })
	if err == nil && !strings.EqualFold(tok.TenantID, s.tenantID) {
		err = errTokenIssuer // the vault is the home tenant's
	}
	if err != nil {
		msg := "AKV10000: Request is missing a valid Bearer or PoP token. " + upperFirst(err.Error()) + "."
		switch {
		case errors.Is(err, errTokenAudience):
			msg = "AKV10022: Invalid audience. Expected " + VaultAudience + "."
		case errors.Is(err, errTokenIssuer):
			msg = "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/" + s.tenantID + "/."
		case errors.Is(err, errTokenExpired):
			msg = "AKV10013: The access token has expired."
		}
		s.vaultChallenge(w)
		vaultError(w, http.StatusUnauthorized, "Unauthorized", msg, "")
		return
	}
	setClientID(r, tok.AppID)

	if v := r.URL.Query().Get("api-version"); !validVaultAPIVersion(v) {
		vaultError(w, http.StatusBadRequest, "BadParameter", "The specified api-version '"+v+"' is not valid.", "")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" || parts[1] == "" {
		vaultError(w, http.StatusNotFound, "NotFound", "The requested resource was not found.", "")
		return
	}
	if r.Method != http.MethodGet {
		vaultError(w, http.StatusMethodNotAllowed, "BadParameter", "The method "+r.Method+" is not supported by the simulator.", "")
		return
	}
	name, version := parts[1], ""
	if len(parts) == 3 {
		version = parts[2]
	}

	s.mu.Lock()
	s.stats.vault[strings.ToLower(name)]++
	allowed := s.dir.vault[strings.ToLower(tok.AppID)]
	versions := s.vault[strings.ToLower(name)]
	var found *vaultVersion
	for i := len(versions) - 1; i >= 0 && allowed; i-- {
		if version == "" || strings.EqualFold(versions[i].id, version) {
			v := versions[i]
			found = &v
			break
		}
	}
	s.mu.Unlock()

	if !allowed {
		vaultError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("The user, group or application 'appid=%s;oid=%s;iss=%s' "+
			"does not have secrets get permission on key vault '%s;location=westeurope'. For help resolving this issue, "+
			"please see https://go.microsoft.com/fwlink/?linkid=2125287", tok.AppID, tok.ObjectID, s.Issuer(), vaultName), "AccessDenied")
		return
	}
	if found == nil {
		id := name
		if version != "" {
			id += "/" + version
		}
		vaultError(w, http.StatusNotFound, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key "+
			"vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. "+
			"For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id), "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"value": found.value,
		"id":    s.VaultURL() + "/secrets/" + name + "/" + found.id,
		"attributes": map[string]any{
			"enabled": true, "created": found.created.Unix(), "updated": found.created.Unix(),
			"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
		},
		"tags": map[string]string{},
	})
}

// validVaultAPIVersion accepts 7.x versions and the date versions
// (2025-07-01, 2026-04-01, ...-preview) newer SDKs send.
func validVaultAPIVersion(v string) bool {
	if strings.HasPrefix(v, "7.") && len(v) > 2 {
		return true
	}
	_, err := time.Parse("2006-01-02", strings.TrimSuffix(v, "-preview"))
	return err == nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
