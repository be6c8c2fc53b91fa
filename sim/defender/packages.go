package defender

import (
	"archive/zip"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PackageURILifetime is how long an investigation package link from
// GetPackageUri stays valid, on the simulator's clock. Defender documents
// only that the link "is valid for a short time".
const PackageURILifetime = 10 * time.Minute

// PackagePathPrefix starts the path of every package download link. An
// embedder that checks bearer tokens before ServeHTTP must let requests
// under it through unauthenticated (their signature is their credential),
// or serve PackageHandler elsewhere (see Options.PackageBaseURL).
const PackagePathPrefix = "/packages/"

// packageFileName is the name Defender gives the package file.
const packageFileName = "WDATP_Investigation_Package.zip"

func isPackagePath(p string) bool { return strings.HasPrefix(p, PackagePathPrefix) }

// PackageHandler serves the investigation package links that GetPackageUri
// hands out (GET /packages/{id}?se=...&sig=...), for an embedder that
// serves them on a listener of its own (see Options.PackageBaseURL).
// ServeHTTP serves them too. The links need no bearer token: their
// signature is their credential. A valid link answers 200 with a small zip
// file; an expired or tampered one 403; a link to an action that no longer
// exists (after Reset) 404.
func (s *Server) PackageHandler() http.Handler { return http.HandlerFunc(s.servePackage) }

// packageSignature signs an action ID and an expiry (the se parameter).
func (s *Server) packageSignature(id, se string) string {
	m := hmac.New(sha256.New, s.packageKey)
	m.Write([]byte(id + "\n" + se))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// packageLink returns the signed download link of action id's package,
// valid until now + PackageURILifetime.
func (s *Server) packageLink(r *http.Request, id string, now time.Time) string {
	base := strings.TrimSuffix(s.opts.PackageBaseURL, "/")
	if base == "" {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		base = scheme + "://" + r.Host
	}
	se := now.Add(PackageURILifetime).UTC().Format(time.RFC3339)
	q := url.Values{"se": {se}, "sig": {s.packageSignature(id, se)}}
	return base + PackagePathPrefix + id + "?" + q.Encode()
}

// getPackageURI answers GET /api/machineactions/{id}/GetPackageUri: a link
// for a Succeeded CollectInvestigationPackage action. Documented: a
// collection that exists but is not complete is 404. Undocumented, the
// simulator's choice: a collection that ended otherwise (Failed, TimeOut,
// Cancelled) has no package either, 404; an action of another type is 400
// InvalidInput.
func (s *Server) getPackageURI(w http.ResponseWriter, r *http.Request, id string) *apiError {
	s.mu.RLock()
	a := s.actionByID[strings.ToLower(id)]
	var m MachineAction
	if a != nil {
		m = a.at(s.now())
	}
	s.mu.RUnlock()
	switch {
	case a == nil:
		return errNotFound("MachineAction %s was not found", sanitizePath(id))
	case m.Type != ActionCollectInvestigationPackage:
		return errBadRequest(CodeInvalidInput, "Invalid input: machine action %s is a %s action, not %s", m.ID, m.Type, ActionCollectInvestigationPackage)
	case m.Status != ActionSucceeded:
		return errNotFound("Investigation package of machine action %s was not found (status %s)", m.ID, m.Status)
	}
	writeJSON(w, http.StatusOK, struct {
		Context string `json:"@odata.context"`
		Value   string `json:"value"`
	}{odataContext(r, "Edm.String"), s.packageLink(r, m.ID, s.now())})
	return nil
}

// servePackage answers a package download link.
func (s *Server) servePackage(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, PackagePathPrefix)
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
			message: fmt.Sprintf("The requested resource does not support http method '%s'", sanitizePath(r.Method))})
		return
	}
	q := r.URL.Query()
	se, sig := q.Get("se"), q.Get("sig")
	if se == "" || sig == "" || !hmac.Equal([]byte(sig), []byte(s.packageSignature(id, se))) {
		writeError(w, &apiError{status: http.StatusForbidden, code: CodeForbidden,
			message: "The download link's signature is not valid"})
		return
	}
	expiry, err := time.Parse(time.RFC3339, se)
	now := s.now()
	if err != nil || !now.Before(expiry) {
		writeError(w, &apiError{status: http.StatusForbidden, code: CodeForbidden,
			message: "The download link expired at " + se + "; ask GetPackageUri for a new one"})
		return
	}
	s.mu.RLock()
	a := s.actionByID[id]
	var m MachineAction
	if a != nil {
		m = a.at(now)
	}
	s.mu.RUnlock()
	if a == nil || m.Type != ActionCollectInvestigationPackage || m.Status != ActionSucceeded {
		writeError(w, errNotFound("Investigation package %s was not found", sanitizePath(id)))
		return
	}
	body, err := packageZip(m)
	if err != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, code: CodeInternalServerError, message: "internal error"})
		return
	}
	s.stats.countDownload()
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="`+packageFileName+`"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// packageZip returns a small zip file standing for the investigation
// package of the collection m.
func packageZip(m MachineAction) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, err := zw.CreateHeader(&zip.FileHeader{Name: "Summary.txt", Method: zip.Deflate, Modified: m.LastUpdateDateTimeUTC})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "Simulated Microsoft Defender for Endpoint investigation package\r\nMachine: %s (%s)\r\nMachine action: %s\r\nRequested by: %s\r\nCollected: %s\r\n",
		m.MachineID, m.ComputerDNSName, m.ID, m.Requestor, m.LastUpdateDateTimeUTC.UTC().Format(time.RFC3339))
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
