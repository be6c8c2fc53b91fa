package sim

import (
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// jwk is one published signing key, in the shape Entra's JWKS uses.
type jwk struct {
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	Kid string   `json:"kid"`
	X5t string   `json:"x5t"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	X5c []string `json:"x5c"`
}

// discoveryTenant accepts a served tenant's GUID or domain and the
// multi-tenant aliases for the discovery documents; it returns the tenant to
// print ("{tenantid}" for an alias) and the tenant (nil for an alias).
func (s *Sim) discoveryTenant(seg string) (string, *Tenant, bool) {
	switch strings.ToLower(seg) {
	case "common", "organizations", "consumers":
		return "{tenantid}", nil, true
	}
	if t := s.tenantBySeg(seg); t != nil {
		return t.id, t, true
	}
	return "", nil, false
}

func (s *Sim) serveJWKS(w http.ResponseWriter, r *http.Request) {
	_, t, ok := s.discoveryTenant(r.PathValue("tenant"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + r.PathValue("tenant") + "' not found."})
		return
	}
	// A tenant publishes its own keys; the multi-tenant aliases publish
	// every tenant's.
	s.mu.Lock()
	var published []*signingKey
	if t != nil {
		published = t.keys.published
	} else {
		for _, t := range s.tenants {
			for _, k := range t.keys.published {
				if !slices.Contains(published, k) {
					published = append(published, k)
				}
			}
		}
	}
	keys := make([]jwk, 0, len(published))
	for _, k := range published {
		keys = append(keys, jwk{
			Kty: "RSA", Use: "sig", Kid: k.kid, X5t: k.kid,
			N:   base64.RawURLEncoding.EncodeToString(k.key.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.key.E)).Bytes()),
			X5c: []string{base64.StdEncoding.EncodeToString(k.cert.Raw)},
		})
	}
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "max-age=86400, private")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (s *Sim) serveOpenID(w http.ResponseWriter, r *http.Request) {
	tid, _, ok := s.discoveryTenant(r.PathValue("tenant"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + r.PathValue("tenant") + "' not found."})
		return
	}
	a := s.AuthorityURL()
	seg := tid
	if tid == "{tenantid}" {
		seg = r.PathValue("tenant")
	}
	doc := map[string]any{
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"request_uri_parameter_supported": false,
		"http_logout_supported":           true,
		"frontchannel_logout_supported":   true,
		"tenant_region_scope":             "NA",
		"cloud_instance_name":             "microsoftonline.com",
		"cloud_graph_host_name":           "graph.windows.net",
		"msgraph_host":                    "graph.microsoft.com",
		"rbac_url":                        "https://pas.windows.net",
	}
	if strings.Contains(r.URL.Path, "/v2.0/") {
		doc["issuer"] = a + "/" + tid + "/v2.0"
		doc["token_endpoint"] = a + "/" + seg + "/oauth2/v2.0/token"
		doc["jwks_uri"] = a + "/" + seg + "/discovery/v2.0/keys"
		doc["authorization_endpoint"] = a + "/" + seg + "/oauth2/v2.0/authorize"
		doc["device_authorization_endpoint"] = a + "/" + seg + "/oauth2/v2.0/devicecode"
		doc["end_session_endpoint"] = a + "/" + seg + "/oauth2/v2.0/logout"
		doc["kerberos_endpoint"] = a + "/" + seg + "/kerberos"
		doc["userinfo_endpoint"] = "https://graph.microsoft.com/oidc/userinfo"
		doc["scopes_supported"] = []string{"openid", "profile", "email", "offline_access"}
	} else {
		doc["issuer"] = "https://sts.windows.net/" + tid + "/"
		doc["token_endpoint"] = a + "/" + seg + "/oauth2/token"
		doc["jwks_uri"] = a + "/common/discovery/keys"
		doc["authorization_endpoint"] = a + "/" + seg + "/oauth2/authorize"
		doc["end_session_endpoint"] = a + "/" + seg + "/oauth2/logout"
		doc["kerberos_endpoint"] = a + "/" + seg + "/kerberos"
		doc["userinfo_endpoint"] = a + "/" + seg + "/openid/userinfo"
		doc["scopes_supported"] = []string{"openid"}
		doc["microsoft_multi_refresh_token"] = true
		doc["check_session_iframe"] = a + "/" + seg + "/oauth2/checksession"
	}
	writeJSON(w, http.StatusOK, doc)
}

// serveInstanceDiscovery answers MSAL's instance discovery with this host as
// the only alias, so MSAL-based clients need not disable it.
func (s *Sim) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimPrefix(s.AuthorityURL(), "https://")
	tenant := s.tenantID
	if ep, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if parts := strings.Split(strings.Trim(ep.Path, "/"), "/"); len(parts) > 0 && parts[0] != "" {
			tenant = parts[0]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.AuthorityURL() + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}
