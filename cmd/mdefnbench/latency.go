package main

import (
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/mdefn/mdefn/sim"
)

// latencyProxy is a TCP proxy on loopback that puts a network round trip
// between a function and one upstream: every chunk read from one side is
// written to the other half a round trip later, in both directions, and
// the first chunk a client sends waits one more round trip, the TCP
// handshake a real network charges before a client may send (loopback
// completes it at once). TLS passes through untouched, so the client
// verifies the upstream's own certificate.
type latencyProxy struct {
	ln     net.Listener
	target string
	rtt    time.Duration

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startLatencyProxy(target string, rtt time.Duration) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{ln: ln, target: target, rtt: rtt, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// addr is the proxy's host:port.
func (p *latencyProxy) addr() string { return p.ln.Addr().String() }

func (p *latencyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *latencyProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *latencyProxy) handle(client net.Conn) {
	defer p.wg.Done()
	accepted := time.Now()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(up, true)
	defer func() {
		client.Close()
		up.Close()
		p.track(client, false)
		p.track(up, false)
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(up, client, accepted.Add(p.rtt)) }()
	go func() { defer wg.Done(); p.pipe(client, up, time.Time{}) }()
	wg.Wait()
}

// chunk is bytes read at a time, due on the other side at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk half a round trip after it was read
// and none before notBefore + half a round trip.
func (p *latencyProxy) pipe(dst, src net.Conn, notBefore time.Time) {
	half := p.rtt / 2
	ch := make(chan chunk, 256)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				now := time.Now()
				if now.Before(notBefore) {
					now = notBefore
				}
				ch <- chunk{buf[:n], now.Add(half)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	for range ch {
	}
	// src ended: pass the end on.
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}

func (p *latencyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// proxiedURL is raw (an http or https URL) with its host:port replaced by
// addr, the path kept.
func proxiedURL(raw, addr string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Host = addr
	return u.String(), nil
}

// latencyEnv starts a latency proxy of rtt before each network upstream of
// the cold path (Key Vault, Entra, Defender) and returns a function
// environment pointing at the proxies, and a stop for them. The managed
// identity endpoint is left direct: App Service serves it on the host
// itself, so its round trips cost next to nothing in production too.
func latencyEnv(s *sim.Sim, rtt time.Duration) ([]string, func(), error) {
	var proxies []*latencyProxy
	stop := func() {
		for _, p := range proxies {
			p.close()
		}
	}
	overrides := map[string]string{}
	for name, raw := range map[string]string{
		"MDE_KEYVAULT_URL":  s.VaultURL(),
		"MDE_AUTHORITY_URL": s.AuthorityURL(),
		"MDE_API_URL":       s.DefenderURL(),
	} {
		u, err := url.Parse(raw)
		if err != nil {
			stop()
			return nil, nil, err
		}
		p, err := startLatencyProxy(u.Host, rtt)
		if err != nil {
			stop()
			return nil, nil, err
		}
		proxies = append(proxies, p)
		if overrides[name], err = proxiedURL(raw, p.addr()); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return childEnvWith(s, overrides), stop, nil
}
