package wiring

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdefn/mdefn/pkg/auth"
)

// preconnector lets the first invocation open the TLS connections to Entra
// and Defender while it reads the secret from the vault, instead of one
// after the other once each is needed: of a cold start's dependent round
// trips (docs/performance.md), the TCP and TLS handshakes to those two hosts
// are four that need nothing from the vault. It is the dialer of one
// http.Transport that every client of the process shares; warm dials and
// parks a connection, and the transport's next dial to that address takes
// it (or waits for the one being opened) instead of dialing again. No
// request is sent: nothing reaches Entra or Defender before the invocation
// needs it, and nothing at all before the first invocation.
type preconnector struct {
	transport *http.Transport
	tlsConfig *tls.Config
	dialer    net.Dialer

	// roots are the trusted roots (systemRoots, loaded once, in the
	// background from the start); nil leaves them to crypto/x509.
	roots func() *x509.CertPool

	mu     sync.Mutex
	parked map[string]*parkedConn // by host:port

	once sync.Once

	warmed, used atomic.Int64 // connections opened ahead, and taken
}

// parkedConn is a connection opened ahead, or being opened (done not yet
// closed).
type parkedConn struct {
	done   chan struct{}
	conn   net.Conn
	err    error
	opened time.Time
}

// parkedLife is how long a connection opened ahead is handed out; later it
// is closed and a new one dialed (servers close idle connections).
var parkedLife = 30 * time.Second

// newPreconnector returns the preconnector and the client (Go's default
// transport settings: proxy from the environment, HTTP/2, timeouts; the
// system roots, so SSL_CERT_FILE works) that all the process's SDK clients
// share.
func newPreconnector() (*preconnector, *http.Client) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	p := &preconnector{transport: t, parked: map[string]*parkedConn{},
		dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
	p.tlsConfig = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	p.roots = sync.OnceValue(func() *x509.CertPool {
		pool, ok := systemRoots()
		if !ok {
			return nil
		}
		return pool
	})
	t.DialTLSContext = p.dialTLS
	return p, &http.Client{Transport: t}
}

// warmOnce opens, in the background, a connection to each https URL's host
// the first time it is called.
func (p *preconnector) warmOnce(urls ...string) {
	p.once.Do(func() {
		for _, raw := range urls {
			p.warm(raw)
		}
	})
}

// warm opens a connection to the https URL's host in the background, unless
// one is parked or the host is reached through a proxy (the transport then
// dials the proxy, not the host).
func (p *preconnector) warm(raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return
	}
	if proxy, err := p.transport.Proxy(&http.Request{URL: u}); err != nil || proxy != nil {
		return
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	p.mu.Lock()
	if _, ok := p.parked[addr]; ok {
		p.mu.Unlock()
		return
	}
	pc := &parkedConn{done: make(chan struct{})}
	p.parked[addr] = pc
	p.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pc.conn, pc.err = p.dial(ctx, addr)
		pc.opened = time.Now()
		if pc.err == nil {
			p.warmed.Add(1)
		}
		close(pc.done)
		// Not taken in time (the invocation failed before needing it):
		// closed, and the next dial opens its own.
		time.AfterFunc(parkedLife, func() {
			p.mu.Lock()
			stale := p.parked[addr] == pc
			if stale {
				delete(p.parked, addr)
			}
			p.mu.Unlock()
			if stale && pc.conn != nil {
				pc.conn.Close()
			}
		})
	}()
}

// dialTLS is the transport's DialTLSContext: the connection opened ahead for
// addr when there is one (waiting for it while it is being opened), else a
// new one.
func (p *preconnector) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	pc := p.parked[addr]
	delete(p.parked, addr)
	p.mu.Unlock()
	if pc != nil {
		select {
		case <-pc.done:
			if pc.err == nil && time.Since(pc.opened) < parkedLife {
				p.used.Add(1)
				return pc.conn, nil
			}
			if pc.conn != nil {
				pc.conn.Close()
			}
		case <-ctx.Done():
			go func() { // the conn being opened is nobody's now
				<-pc.done
				if pc.conn != nil {
					pc.conn.Close()
				}
			}()
			return nil, ctx.Err()
		}
	}
	return p.dial(ctx, addr)
}

// dial opens a TLS connection to addr, verified against the system roots
// for its host name.
func (p *preconnector) dial(ctx context.Context, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := p.tlsConfig.Clone()
	cfg.ServerName = host
	if cfg.RootCAs == nil {
		cfg.RootCAs = p.roots()
	}
	d := &tls.Dialer{NetDialer: &p.dialer, Config: cfg}
	return d.DialContext(ctx, "tcp", addr)
}

// warmingCreds is a CredentialProvider that, on its first call, has the
// preconnector open the connections to Entra and Defender while the call
// reads the secret.
type warmingCreds struct {
	auth.CredentialProvider
	p    *preconnector
	urls []string
}

func (w *warmingCreds) Credential(ctx context.Context) (*auth.Credential, error) {
	w.p.warmOnce(w.urls...)
	return w.CredentialProvider.Credential(ctx)
}

// Invalidate passes on to the wrapped provider's, so that a rejected secret
// is read again (auth.TokenSource looks for it).
func (w *warmingCreds) Invalidate() {
	if inv, ok := w.CredentialProvider.(interface{ Invalidate() }); ok {
		inv.Invalidate()
	}
}
