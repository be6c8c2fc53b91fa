package sim

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault changes how an upstream answers matching requests. Matching is by
// Method and PathPrefix; the earliest injected matching fault applies. The
// fields combine: Latency first, then either Reset, or the answer (the fixed
// Status/Header/Body, else the real one) delivered whole, trickled
// (Trickle) or cut short (CutAfter).
type Fault struct {
	Method     string // "" matches any method
	PathPrefix string // "" matches every path
	// Tenant, when set (GUID or domain), limits the fault to requests for
	// that tenant: the token endpoint path's tenant on Entra, the bearer
	// token's on Defender, the home tenant on every other upstream.
	Tenant string
	// Times limits the fault to the first Times matching requests; 0 keeps
	// it until removed.
	Times int

	Latency time.Duration // wait before answering (abandoned if the client goes away)
	// Status, when non-zero, replaces the real answer by Status, Header and
	// Body (an HTML error page, an empty or malformed body are just bodies).
	Status int
	Header http.Header
	Body   []byte
	// Trickle sends the headers at once, then the body in ten pieces spread
	// over Trickle: a slow body.
	Trickle time.Duration
	// Reset closes the connection (TCP reset) without answering.
	Reset bool
	// CutAfter > 0 sends the headers (with the full Content-Length) and the
	// first CutAfter body bytes, then closes the connection: a truncated body.
	CutAfter int
}

// FaultHandle is an injected fault; Remove takes it out.
type FaultHandle struct {
	s        *Sim
	upstream Upstream
	fault    Fault
	hits     int
	removed  bool
}

// Inject adds a fault to upstream u and returns its handle.
func (s *Sim) Inject(u Upstream, f Fault) *FaultHandle {
	f.Header = f.Header.Clone()
	f.Body = bytes.Clone(f.Body)
	h := &FaultHandle{s: s, upstream: u, fault: f}
	s.mu.Lock()
	s.faults = append(s.faults, h)
	s.mu.Unlock()
	return h
}

// Remove takes the fault out; requests already being delayed complete.
func (h *FaultHandle) Remove() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.removeFaultLocked(h)
}

// Hits returns how many requests the fault has shaped.
func (h *FaultHandle) Hits() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.hits
}

// ClearFaults removes every injected fault. Upstreams taken Down stay down.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.faults {
		h.removed = true
	}
	s.faults = nil
}

func (s *Sim) removeFaultLocked(h *FaultHandle) {
	h.removed = true
	for i, f := range s.faults {
		if f == h {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			return
		}
	}
}

// Throttle returns a fault answering the first n requests with 429 Too Many
// Requests and Retry-After (whole seconds, at least 1), in the Defender
// error shape.
func Throttle(n int, retryAfter time.Duration) Fault {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	return Fault{
		Times:  n,
		Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}, "Content-Type": {"application/json; charset=utf-8"}},
		Body: fmt.Appendf(nil, `{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded. Try again in %d seconds.",`+
			`"target":"%s"}}`, secs, newGUID()),
	}
}

func (s *Sim) matchFault(u Upstream, r *http.Request) (Fault, *Tenant, bool) {
	s.mu.Lock()
	byTenant := false
	for _, h := range s.faults {
		byTenant = byTenant || (h.upstream == u && h.fault.Tenant != "")
	}
	s.mu.Unlock()
	var tenant *Tenant
	if byTenant {
		tenant = s.requestTenant(u, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.faults {
		f := h.fault
		if h.upstream != u || (f.Method != "" && !strings.EqualFold(f.Method, r.Method)) ||
			!strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			continue
		}
		if f.Tenant != "" && (tenant == nil || !(strings.EqualFold(f.Tenant, tenant.id) || strings.EqualFold(f.Tenant, tenant.domain))) {
			continue
		}
		h.hits++
		if f.Times > 0 && h.hits >= f.Times {
			s.removeFaultLocked(h)
		}
		return f, tenant, true
	}
	return Fault{}, nil, false
}

// injectFaults applies the first matching fault of upstream u.
func (s *Sim) injectFaults(u Upstream, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, tenant, ok := s.matchFault(u, r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		noteOf(r).fault = true
		if tenant != nil {
			setTenant(r, tenant.id)
		}
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Reset {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				resetConn(conn)
			}
			return
		}
		if f.Trickle <= 0 && f.CutAfter <= 0 {
			if f.Status == 0 {
				next.ServeHTTP(w, r)
				return
			}
			writeFixed(w, f.Status, f.Header, f.Body)
			return
		}
		status, header, body := f.Status, f.Header.Clone(), f.Body
		if status == 0 {
			rec := &recorder{header: http.Header{}}
			next.ServeHTTP(rec, r)
			status, header, body = rec.code(), rec.header, rec.body.Bytes()
		}
		if header == nil {
			header = http.Header{}
		}
		header.Set("Content-Length", strconv.Itoa(len(body)))
		if f.CutAfter > 0 {
			cut(w, r, status, header, body[:min(f.CutAfter, len(body))])
			return
		}
		trickle(w, r, status, header, body, f.Trickle)
	})
}

func writeFixed(w http.ResponseWriter, status int, header http.Header, body []byte) {
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// cut writes the head and part of the body on the raw connection, then
// closes it, so the client sees a body shorter than its Content-Length.
func cut(w http.ResponseWriter, r *http.Request, status int, header http.Header, part []byte) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	noteOf(r).status = status
	header.Set("Connection", "close")
	fmt.Fprintf(rw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	header.Write(rw)
	rw.WriteString("\r\n")
	rw.Write(part)
	rw.Flush()
}

// trickle writes the head at once and the body in ten pieces over d.
func trickle(w http.ResponseWriter, r *http.Request, status int, header http.Header, body []byte, d time.Duration) {
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	rc.Flush()
	const pieces = 10
	size := max((len(body)+pieces-1)/pieces, 1)
	pause := d / pieces
	for len(body) > 0 {
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		n := min(size, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		rc.Flush()
		body = body[n:]
	}
}

// resetConn closes c with SO_LINGER 0, so the peer gets a TCP reset.
func resetConn(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}

// recorder captures a handler's answer for the faults that rewrite delivery.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
