package sim

import (
	"bufio"
	"context"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"
)

// Request is one entry of the request log. It never holds a token, a
// secret or a query string.
type Request struct {
	Time     time.Time // simulator clock at arrival
	Upstream Upstream
	Method   string
	Path     string
	Status   int    // 0 when the connection was reset or no answer was written
	ClientID string // client ID / appid of the caller, when known
	Fault    bool   // an injected fault shaped the answer
	Tenant   string // tenant ID the request was for, when known
}

// Stats is a snapshot of the counters since Start or the last ResetStats.
type Stats struct {
	// TokenRequests counts requests that reached the Entra token endpoint or
	// the managed identity endpoint, by client ID (failed ones included;
	// requests answered by an injected fault are not counted here).
	TokenRequests map[string]int
	// VaultReads counts authenticated Key Vault secret GETs (any outcome), by
	// secret name; the unauthenticated challenge round trip is not counted.
	VaultReads map[string]int
	// AWSSecretReads counts GetSecretValue calls that passed the signature
	// check, by the SecretId as sent.
	AWSSecretReads map[string]int
	// Calls counts every request, faulted ones included, by
	// "<upstream> <path>" (e.g. "keyvault /secrets/mde-client-secret").
	Calls map[string]int
}

type stats struct {
	log   []*Request
	token map[string]int
	vault map[string]int
	aws   map[string]int
	calls map[string]int

	tenantTokens, tenantDefender map[string]map[string]int // by tenant ID
}

func (st *stats) reset() {
	*st = stats{token: map[string]int{}, vault: map[string]int{}, aws: map[string]int{}, calls: map[string]int{},
		tenantTokens: map[string]map[string]int{}, tenantDefender: map[string]map[string]int{}}
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		TokenRequests:  maps.Clone(s.stats.token),
		VaultReads:     maps.Clone(s.stats.vault),
		AWSSecretReads: maps.Clone(s.stats.aws),
		Calls:          maps.Clone(s.stats.calls),
	}
}

// TokenRequests returns how many token requests clientID made (see Stats).
func (s *Sim) TokenRequests(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.token[clientID]
}

// VaultReads returns the number of authenticated Key Vault secret reads.
func (s *Sim) VaultReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sum(s.stats.vault)
}

// AWSSecretReads returns the number of Secrets Manager GetSecretValue calls.
func (s *Sim) AWSSecretReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sum(s.stats.aws)
}

// Calls returns how many requests reached upstream u on path (any method).
func (s *Sim) Calls(u Upstream, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.calls[string(u)+" "+path]
}

// Requests returns a copy of the request log, oldest first (bounded by
// Options.RequestLogSize).
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.stats.log))
	for i, r := range s.stats.log {
		out[i] = *r
	}
	return out
}

// ResetStats clears the counters and the request log.
func (s *Sim) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.reset()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (s *Sim) countToken(clientID string) {
	s.mu.Lock()
	s.stats.token[clientID]++
	s.mu.Unlock()
}

// note carries what a handler learned about a request to observe.
type note struct {
	clientID string
	tenant   string
	fault    bool
	status   int // status sent on a hijacked connection
}

type noteKey struct{}

func noteOf(r *http.Request) *note {
	n, _ := r.Context().Value(noteKey{}).(*note)
	if n == nil {
		return &note{}
	}
	return n
}

func setClientID(r *http.Request, id string) { noteOf(r).clientID = id }

func setTenant(r *http.Request, id string) { noteOf(r).tenant = id }

// observe records every request of upstream u in the log and counters.
// The call is counted on arrival; status and client ID are filled in when
// the handler returns (for answers over 4 KiB the client may read the body
// just before that).
func (s *Sim) observe(u Upstream, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := &note{}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, n))
		rec := &Request{Time: s.Now(), Upstream: u, Method: r.Method, Path: r.URL.Path}
		s.mu.Lock()
		s.stats.calls[string(u)+" "+r.URL.Path]++
		s.stats.log = append(s.stats.log, rec)
		if over := len(s.stats.log) - s.opts.RequestLogSize; over > 0 {
			s.stats.log = slices.Delete(s.stats.log, 0, over)
		}
		s.mu.Unlock()

		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)

		s.mu.Lock()
		rec.Status, rec.ClientID, rec.Fault, rec.Tenant = sw.status, n.clientID, n.fault, n.tenant
		if n.status != 0 {
			rec.Status = n.status
		}
		if !sw.hijacked && rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		done := *rec
		s.mu.Unlock()
		if s.opts.Logger != nil {
			s.opts.Logger.Info("sim request", "upstream", string(u), "method", done.Method, "path", done.Path,
				"status", done.Status, "client_id", done.ClientID, "tenant", done.Tenant, "fault", done.Fault)
		}
	})
}

// statusWriter records the status code and keeps Flush and Hijack working.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
