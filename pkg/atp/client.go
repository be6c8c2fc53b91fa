package atp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Version is the client's version, sent in the default User-Agent
// ("mdefn/<Version>"). Builds may set it with -ldflags "-X".
var Version = "dev"

// Defaults applied for zero Options fields.
const (
	DefaultCallsPerMinute = 100       // Defender's documented per-minute limit
	DefaultCallsPerHour   = 1500      // Defender's documented per-hour limit
	DefaultMaxBodyBytes   = 256 << 20 // 256 MiB: a 10,000-alert page with evidence fits
	DefaultMaxRetries     = 4         // retries after the first attempt
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 10 * time.Second
)

// maxWait is the longest single wait (Retry-After, backoff or budget) the
// client accepts even without a context deadline; anything longer is
// returned to the caller as a [*RateLimitError].
const maxWait = 2 * time.Minute

// Options configure a Client. A nil *Options, and every zero field, means
// the documented default.
type Options struct {
	// HTTPClient supplies the base transport (its Transport; nil means a
	// clone of http.DefaultTransport) and its Timeout. Its CheckRedirect and
	// Jar are not used: the client never follows redirects, so the bearer
	// token never leaves the API host.
	HTTPClient *http.Client
	// UserAgent is sent on every request; empty means "mdefn/" + Version.
	UserAgent string
	// Logger receives debug records of retries and waits (method, path,
	// status, delay; never a token). Nil discards.
	Logger *slog.Logger
	// CallsPerMinute and CallsPerHour bound the calls this client makes in
	// any sliding minute and hour. Zero means 100 and 1,500 (Defender's
	// documented limits); negative turns that bound off.
	CallsPerMinute, CallsPerHour int
	// MaxBodyBytes bounds the size of a successful response body; zero
	// means 256 MiB. Error bodies are always read up to 64 KiB only.
	MaxBodyBytes int64
	// MaxRetries is how many times a failed request may be retried; zero
	// means 4, negative means never.
	MaxRetries int
	// RetryBaseDelay is the first backoff delay, doubled on each retry and
	// jittered (between half and all of it); zero means 500 ms.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps one backoff delay; zero means 10 s. Retry-After
	// from Defender is honoured even when longer.
	RetryMaxDelay time.Duration
	// Now is the clock used for the call budget and HTTP-date Retry-After
	// values; nil means time.Now. For tests. Context deadlines are always
	// compared with the real time.
	Now func() time.Time
	// Sleep waits for d or until ctx is done, returning ctx.Err() then; nil
	// means a real timer. For tests.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client calls the Defender for Endpoint API. It is safe for concurrent use
// and meant to be built once per process.
type Client struct {
	base       string // scheme://host[/prefix], no trailing slash
	hc         *http.Client
	inv        Invalidator // the token source, if it can drop its cached token
	log        *slog.Logger
	budget     *budget
	maxBody    int64
	maxRetries int
	baseDelay  time.Duration
	maxDelay   time.Duration
	now        func() time.Time
	sleep      func(context.Context, time.Duration) error
}

// NewClient returns a client for the API at baseURL (such as
// "https://api.security.microsoft.com"; a trailing "/api" is accepted and
// dropped) that authenticates with tokens from tokens.
func NewClient(baseURL string, tokens oauth2.TokenSource, o *Options) (*Client, error) {
	if tokens == nil {
		return nil, errors.New("atp: new client: nil token source")
	}
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("atp: new client: base URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("atp: new client: base URL %q: want http(s)://host[/path] with no user, query or fragment", u.Redacted())
	}
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
	base = strings.TrimSuffix(base, "/api")
	if o == nil {
		o = &Options{}
	}
	var rt http.RoundTripper
	var timeout time.Duration
	if o.HTTPClient != nil {
		rt = o.HTTPClient.Transport
		timeout = o.HTTPClient.Timeout
	}
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "mdefn/" + Version
	}
	c := &Client{
		base: base,
		hc: &http.Client{
			Transport: &authTransport{base: rt, tokens: tokens, ua: ua},
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		log:        o.Logger,
		budget:     newBudget(orDefault(o.CallsPerMinute, DefaultCallsPerMinute), orDefault(o.CallsPerHour, DefaultCallsPerHour)),
		maxBody:    orDefault(o.MaxBodyBytes, DefaultMaxBodyBytes),
		maxRetries: max(0, orDefault(o.MaxRetries, DefaultMaxRetries)),
		baseDelay:  orDefault(o.RetryBaseDelay, DefaultRetryBaseDelay),
		maxDelay:   orDefault(o.RetryMaxDelay, DefaultRetryMaxDelay),
		now:        o.Now,
		sleep:      o.Sleep,
	}
	c.inv, _ = tokens.(Invalidator)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	return c, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call describes one API request.
type call struct {
	op     string      // for error messages, e.g. "get machine <id>"
	method string      // GET or POST
	path   string      // escaped path starting with /api/
	query  [][2]string // ordered OData parameters, values unescaped
	body   []byte      // JSON body for POST
}

func (c *call) url(base string) string {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString(c.path)
	for i, kv := range c.query {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(kv[0]) // keys are constants such as $filter
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[1]))
	}
	return b.String()
}

func (c *call) newRequest(ctx context.Context, base string) (*http.Request, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.url(base), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// idempotent reports whether the request may be retried after it may have
// reached the server.
func (c *call) idempotent() bool { return c.method == http.MethodGet }

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
