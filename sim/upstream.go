package sim

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Upstream names one of the simulated services, each on its own listener.
type Upstream string

// The simulated upstreams.
const (
	Entra          Upstream = "entra"          // Entra ID authority (HTTPS)
	KeyVault       Upstream = "keyvault"       // Azure Key Vault (HTTPS)
	SecretsManager Upstream = "secretsmanager" // AWS Secrets Manager (HTTPS)
	Defender       Upstream = "defender"       // Defender for Endpoint API (HTTPS)
	Identity       Upstream = "identity"       // App Service managed identity endpoint (HTTP)
)

// upstream is one loopback listener and the server behind it. Its address
// is fixed by the first listen so that Up after Down reuses the port.
type upstream struct {
	name    Upstream
	tls     bool
	handler http.Handler

	mu   sync.Mutex
	addr string
	srv  *http.Server
	ln   net.Listener
}

func (u *upstream) url() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	scheme := "http://"
	if u.tls {
		scheme = "https://"
	}
	return scheme + u.addr
}

// up starts serving; a no-op when already up.
func (u *upstream) up(cfg *tls.Config) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		return nil
	}
	addr := u.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	u.addr = ln.Addr().String()
	if u.tls {
		ln = tls.NewListener(ln, cfg)
	}
	srv := &http.Server{
		Handler:           u.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1 only, so that faults can hijack the connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	u.srv, u.ln = srv, ln
	go srv.Serve(ln)
	return nil
}

// down closes the listener and every open connection; a no-op when down.
func (u *upstream) down() {
	u.mu.Lock()
	srv, ln := u.srv, u.ln
	u.srv, u.ln = nil, nil
	u.mu.Unlock()
	if srv != nil {
		// Closing the listener here, not only through srv, makes the port
		// refuse connections at once even if Serve has not started yet.
		ln.Close()
		srv.Close()
	}
}
