package sim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxForm bounds every request body the simulator reads.
const maxForm = 1 << 20

// resource kinds the directory knows.
type resourceKind int

const (
	resUnknown resourceKind = iota
	resDefender
	resVault
)

// resourceOf maps a resource / audience (any case, with or without a
// trailing slash, or the resource app's GUID) to its kind and canonical URI.
func (s *Sim) resourceOf(res string) (resourceKind, string) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(res)), "/")
	switch n {
	case "":
		return resUnknown, ""
	case strings.TrimSuffix(strings.ToLower(s.audience), "/"),
		"https://api.securitycenter.microsoft.com",
		"https://api.security.microsoft.com",
		"https://securitycenter.onmicrosoft.com/windowsatpservice",
		"fc780465-2017-40d4-a0c5-307022471b92":
		return resDefender, s.audience
	case VaultAudience, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093":
		return resVault, VaultAudience
	}
	return resUnknown, ""
}

func (s *Sim) entraHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/token", s.serveToken)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.serveToken)
	mux.HandleFunc("GET /{tenant}/discovery/keys", s.serveJWKS)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.serveJWKS)
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", s.serveOpenID)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.serveOpenID)
	mux.HandleFunc("GET /common/discovery/instance", s.serveInstanceDiscovery)
	return mux
}

// entraFailure is an error answer of the token endpoint.
type entraFailure struct {
	status int
	code   string // OAuth error
	aadsts int
	msg    string
}

func (s *Sim) writeEntraError(w http.ResponseWriter, r *http.Request, f *entraFailure) {
	trace := newGUID()
	corr := r.Header.Get("client-request-id")
	if len(corr) != 36 {
		corr = newGUID()
	}
	ts := s.Now().UTC().Format("2006-01-02 15:04:05Z")
	body := map[string]any{
		"error": f.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			f.aadsts, f.msg, trace, corr, ts),
		"error_codes":    []int{f.aadsts},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      s.AuthorityURL() + "/error?code=" + strconv.Itoa(f.aadsts),
	}
	w.Header().Set("x-ms-request-id", trace)
	w.Header().Set("client-request-id", corr)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, f.status, body)
}

func (s *Sim) serveToken(w http.ResponseWriter, r *http.Request) {
	v2 := strings.HasSuffix(r.URL.Path, "/v2.0/token")
	tenant := r.PathValue("tenant")
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.writeEntraError(w, r, &entraFailure{400, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'."})
		return
	}
	form := r.PostForm
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
		if u, err := url.QueryUnescape(id); err == nil {
			id = u
		}
		if u, err := url.QueryUnescape(sec); err == nil {
			sec = u
		}
		if clientID == "" {
			clientID = id
		}
		if secret == "" && strings.EqualFold(clientID, id) {
			secret = sec
		}
	}
	setClientID(r, clientID)
	s.countToken(clientID)

	t := s.tenantBySeg(tenant)
	if t == nil {
		f := &entraFailure{400, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have "+
			"the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, "+
			"this may happen if there are no active subscriptions for the tenant.", tenant)}
		if strings.EqualFold(tenant, "common") || strings.EqualFold(tenant, "organizations") {
			f = &entraFailure{400, "invalid_request", 50059, "No tenant-identifying information found in either the " +
				"request or implied by any provided credentials."}
		}
		s.writeEntraError(w, r, f)
		return
	}
	setTenant(r, t.id)
	s.countTenant(false, t.id, clientID)
	req := tokenRequest{v2: v2, tenantSeg: tenant, tenant: t, clientID: clientID, secret: secret, form: form}
	var (
		res *tokenResult
		f   *entraFailure
	)
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
		res, f = s.clientCredentials(&req)
	case "password":
		res, f = s.passwordGrant(&req)
	case "":
		f = &entraFailure{400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."}
	default:
		f = &entraFailure{400, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt)}
	}
	if f != nil {
		s.writeEntraError(w, r, f)
		return
	}
	s.writeTokenResponse(w, v2, res)
}

type tokenRequest struct {
	v2        bool
	tenantSeg string
	tenant    *Tenant
	clientID  string
	secret    string
	form      url.Values
}

type tokenResult struct {
	token    string
	iat, exp time.Time
	resource string // v1 "resource" field
	scope    string // "scope" field, delegated tokens only
}

// requestedResource reads the resource of a v1 (resource=) or v2 (scope=)
// request. For client_credentials a v2 scope must be one "<resource>/.default".
func (s *Sim) requestedResource(req *tokenRequest, clientCredentials bool) (resourceKind, string, *entraFailure) {
	if !req.v2 {
		res := req.form.Get("resource")
		if res == "" {
			return 0, "", &entraFailure{400, "invalid_request", 900144, "The request body must contain the following parameter: 'resource'."}
		}
		kind, _ := s.resourceOf(res)
		if kind == resUnknown {
			return 0, "", s.unknownResource(res, req.tenant.domain)
		}
		return kind, res, nil
	}
	scope := strings.TrimSpace(req.form.Get("scope"))
	if scope == "" {
		return 0, "", &entraFailure{400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."}
	}
	// OpenID scopes (MSAL adds them to every request) are ignored, as Entra does.
	var scopes []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		scopes = append(scopes, sc)
	}
	if clientCredentials && (len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default")) {
		return 0, "", &entraFailure{400, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. "+
			"Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
	}
	var picked string
	if len(scopes) > 0 {
		picked = scopes[0]
	}
	i := strings.LastIndex(picked, "/")
	if i <= 0 {
		return 0, "", &entraFailure{400, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)}
	}
	res := picked[:i]
	kind, canonical := s.resourceOf(res)
	if kind == resUnknown {
		return 0, "", s.unknownResource(res, req.tenant.domain)
	}
	return kind, canonical, nil
}

func (s *Sim) unknownResource(res, domain string) *entraFailure {
	return &entraFailure{400, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the "+
		"tenant named %s. This can happen if the application has not been installed by the administrator of the tenant "+
		"or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
		res, domain)}
}

func (s *Sim) unknownApp(clientID, domain string) *entraFailure {
	return &entraFailure{400, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in "+
		"the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant "+
		"or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
		clientID, domain)}
}

func badSecret(clientID string) *entraFailure {
	return &entraFailure{401, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret "+
		"being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
}

// lookupApp returns a copy of the app registration, or nil.
func (s *Sim) lookupApp(clientID string) *App {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.dir.apps[strings.ToLower(clientID)]
	if !ok {
		return nil
	}
	c := *a
	return &c
}

// authenticateClient checks the client's secret or assertion and returns
// the appidacr value ("1" secret, "2" certificate).
func (s *Sim) authenticateClient(req *tokenRequest, app *App) (string, *entraFailure) {
	if assertion := req.form.Get("client_assertion"); assertion != "" {
		if t := req.form.Get("client_assertion_type"); t != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			return "", &entraFailure{400, "invalid_request", 90058, fmt.Sprintf("The request body must contain the following parameter: "+
				"'client_assertion_type'. The value '%s' is not supported.", t)}
		}
		if f := s.verifyAssertion(req, app, assertion); f != nil {
			return "", f
		}
		return "2", nil
	}
	if req.secret != "" {
		if app.Secret == "" || subtle.ConstantTimeCompare([]byte(req.secret), []byte(app.Secret)) != 1 {
			return "", badSecret(app.ClientID)
		}
		return "1", nil
	}
	return "", nil
}

func (s *Sim) clientCredentials(req *tokenRequest) (*tokenResult, *entraFailure) {
	if req.clientID == "" {
		return nil, &entraFailure{400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."}
	}
	app := s.lookupApp(req.clientID)
	if app == nil {
		return nil, s.unknownApp(req.clientID, req.tenant.domain)
	}
	// A multi-tenant app signs in to a tenant that consented to it.
	roles, consented := req.tenant.rolesOf(app)
	if !consented {
		return nil, s.unknownApp(req.clientID, req.tenant.domain)
	}
	acr, f := s.authenticateClient(req, app)
	if f != nil {
		return nil, f
	}
	if acr == "" {
		return nil, &entraFailure{401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required " +
			"for the 'client_credentials' grant type."}
	}
	kind, aud, f := s.requestedResource(req, true)
	if f != nil {
		return nil, f
	}
	spec := TokenSpec{Audience: aud, TenantID: req.tenant.id, AppID: app.ClientID, AppIDACR: acr, ObjectID: app.ObjectID}
	if kind == resDefender {
		spec.Roles = roles
	}
	return s.issueResult(spec, "")
}

func (s *Sim) passwordGrant(req *tokenRequest) (*tokenResult, *entraFailure) {
	if req.clientID == "" {
		return nil, &entraFailure{400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."}
	}
	app := s.lookupApp(req.clientID)
	if app == nil {
		return nil, s.unknownApp(req.clientID, req.tenant.domain)
	}
	acr, f := s.authenticateClient(req, app)
	if f != nil {
		return nil, f
	}
	if acr == "" {
		if !app.Public {
			return nil, &entraFailure{401, "invalid_client", 7000218, "The request body must contain the following parameter: " +
				"'client_assertion' or 'client_secret'."}
		}
		acr = "0"
	}
	upn, password := req.form.Get("username"), req.form.Get("password")
	if upn == "" || password == "" {
		p := "username"
		if upn != "" {
			p = "password"
		}
		return nil, &entraFailure{400, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p)}
	}
	s.mu.Lock()
	u, ok := s.dir.users[strings.ToLower(upn)]
	ok = ok && req.tenant.home // users are the home tenant's
	var user User
	if ok {
		user = *u
	}
	s.mu.Unlock()
	if !ok {
		return nil, &entraFailure{400, "invalid_grant", 50034, fmt.Sprintf("The user account {EmailHidden} does not exist in the %s "+
			"directory. To sign into this application, the account must be added to the directory.", req.tenant.domain)}
	}
	if user.Password == "" || subtle.ConstantTimeCompare([]byte(password), []byte(user.Password)) != 1 {
		return nil, &entraFailure{400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."}
	}
	kind, aud, f := s.requestedResource(req, false)
	if f != nil {
		return nil, f
	}
	scopes := []string{"user_impersonation"}
	if kind == resDefender {
		scopes = user.Scopes
	}
	spec := TokenSpec{Audience: aud, AppID: app.ClientID, AppIDACR: acr, ObjectID: user.ObjectID, UPN: user.UPN, Scopes: scopes}
	return s.issueResult(spec, strings.Join(scopes, " "))
}

func (s *Sim) issueResult(spec TokenSpec, scope string) (*tokenResult, *entraFailure) {
	spec.IssuedAt = s.Now()
	tok, err := s.issue(spec)
	if err != nil {
		return nil, &entraFailure{500, "server_error", 90033, "A transient error has occurred. Please try again."}
	}
	return &tokenResult{token: tok, iat: spec.IssuedAt, exp: spec.IssuedAt.Add(s.lifetime), resource: spec.Audience, scope: scope}, nil
}

func (s *Sim) writeTokenResponse(w http.ResponseWriter, v2 bool, res *tokenResult) {
	secs := int64(res.exp.Sub(res.iat) / time.Second)
	body := map[string]any{"token_type": "Bearer", "access_token": res.token}
	if v2 {
		body["expires_in"] = secs
		body["ext_expires_in"] = secs
	} else {
		body["expires_in"] = strconv.FormatInt(secs, 10)
		body["ext_expires_in"] = strconv.FormatInt(secs, 10)
		body["expires_on"] = strconv.FormatInt(res.exp.Unix(), 10)
		body["not_before"] = strconv.FormatInt(res.iat.Unix(), 10)
		body["resource"] = res.resource
	}
	if res.scope != "" {
		body["scope"] = res.scope
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
