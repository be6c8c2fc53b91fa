package sim

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// serveIdentity is the App Service managed identity endpoint:
// GET <IDENTITY_ENDPOINT>?api-version=2019-08-01&resource=...[&client_id=|
// object_id=|principal_id=|mi_res_id=] with the X-IDENTITY-HEADER secret.
func (s *Sim) serveIdentity(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": newGUID()})
	}
	if r.Method != http.MethodGet {
		fail(http.StatusMethodNotAllowed, "The requested method is not supported.")
		return
	}
	if r.URL.Path != "/msi/token" {
		fail(http.StatusNotFound, "The requested resource was not found.")
		return
	}
	h := r.Header.Get("X-IDENTITY-HEADER")
	if h == "" {
		fail(http.StatusBadRequest, "The request is missing the X-IDENTITY-HEADER header.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(h), []byte(s.identityHeader)) != 1 {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER value is not valid.")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != "2019-08-01" {
		fail(http.StatusBadRequest, "The api-version '"+v+"' is not supported. Use 2019-08-01.")
		return
	}
	resource := strings.TrimSuffix(q.Get("resource"), "/.default")
	if resource == "" {
		fail(http.StatusBadRequest, "The resource parameter is required.")
		return
	}

	var selector, value string
	for _, k := range []string{"client_id", "object_id", "principal_id", "mi_res_id", "msi_res_id"} {
		if v := q.Get(k); v != "" {
			selector, value = k, v
			break
		}
	}
	s.mu.Lock()
	mi := s.findIdentityLocked(selector, value)
	var id ManagedIdentity
	if mi != nil {
		id = *mi
		id.Roles = slices.Clone(mi.Roles)
	}
	s.mu.Unlock()
	if mi == nil {
		setClientID(r, value)
		s.countToken(value)
		setTenant(r, s.tenantID)
		s.countTenant(false, s.tenantID, value)
		fail(http.StatusBadRequest, "Unable to load the proper Managed Identity.")
		return
	}
	setClientID(r, id.ClientID)
	s.countToken(id.ClientID)
	setTenant(r, s.tenantID)
	s.countTenant(false, s.tenantID, id.ClientID)

	kind, _ := s.resourceOf(resource)
	if kind == resUnknown {
		f := s.unknownResource(resource, s.domain)
		fail(http.StatusBadRequest, "AADSTS"+strconv.Itoa(f.aadsts)+": "+f.msg)
		return
	}
	spec := TokenSpec{Audience: resource, AppID: id.ClientID, AppIDACR: "2", ObjectID: id.ObjectID, IssuedAt: s.Now(),
		Extra: map[string]any{"idtyp": "app", "xms_mirid": id.ResourceID}}
	if kind == resDefender {
		spec.Roles = id.Roles
	}
	tok, err := s.issue(spec)
	if err != nil {
		fail(http.StatusInternalServerError, "An unexpected error occurred.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(spec.IssuedAt.Add(s.lifetime).Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    id.ClientID,
	})
}
