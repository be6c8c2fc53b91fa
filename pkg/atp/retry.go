package atp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// send performs cl with the call budget and retries, and returns a 2xx
// response whose body the caller must close. Errors are prefixed with
// "atp: <op>: ".
//
// Every request sent, including the one re-send after a Defender 401 with
// a fresh token, first waits for the call budget. That re-send is not a
// retry: it does not count against MaxRetries and is not delayed.
func (c *Client) send(ctx context.Context, cl *call) (*http.Response, error) {
	reauthed := false // the one re-send after a 401 has been made
	for sent := 1; ; sent++ {
		attempt := sent // this try's number, not counting the re-send after a 401
		if reauthed {
			attempt--
		}
		if err := c.waitBudget(ctx); err != nil {
			return nil, fmt.Errorf("atp: %s: %w", cl.op, err)
		}
		req, err := cl.newRequest(ctx, c.base)
		if err != nil {
			return nil, fmt.Errorf("atp: %s: %w", cl.op, err)
		}
		resp, err := c.hc.Do(req)
		var delay time.Duration
		var last error // the error to return if we stop here
		switch {
		case err != nil:
			var te *tokenError
			if errors.As(err, &te) {
				return nil, fmt.Errorf("atp: %s: %w", cl.op, te)
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, fmt.Errorf("atp: %s: %w", cl.op, ctxErr)
			}
			last = fmt.Errorf("atp: %s: %w", cl.op, err)
			if sent > 1 {
				last = fmt.Errorf("atp: %s: after %d attempts: %w", cl.op, sent, err)
			}
			if attempt > c.maxRetries || !(cl.idempotent() || neverSent(err)) {
				return nil, last
			}
			delay = c.backoff(attempt)
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, nil
		case resp.StatusCode == http.StatusUnauthorized && c.inv != nil && !reauthed:
			// Drop the cached token and send once more with a fresh one.
			drainClose(resp.Body)
			c.inv.Invalidate()
			reauthed = true
			c.log.DebugContext(ctx, "atp: unauthorized, sending once more with a fresh token",
				"method", cl.method, "path", cl.path)
			continue
		default:
			re := newResponseError(resp, c.now())
			re.Attempts = sent
			last = fmt.Errorf("atp: %s: %w", cl.op, re)
			throttled := re.StatusCode == http.StatusTooManyRequests
			if throttled {
				retryAfter := ceilSecond(re.RetryAfter)
				last = fmt.Errorf("atp: %s: %w", cl.op, &RateLimitError{RetryAfter: retryAfter, Err: re})
				delay = max(re.RetryAfter, c.backoff(attempt))
			} else {
				delay = c.backoff(attempt)
			}
			retryable := throttled || (cl.idempotent() && re.StatusCode >= 500)
			if !retryable || attempt > c.maxRetries {
				return nil, last
			}
		}
		if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < delay) || delay > maxWait {
			return nil, last
		}
		c.log.DebugContext(ctx, "atp: retrying", "method", cl.method, "path", cl.path,
			"attempt", attempt, "delay", delay, "error", last)
		if err := c.sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("atp: %s: %w", cl.op, err)
		}
	}
}

// waitBudget waits for the client's call budget, or returns a
// *RateLimitError if that wait would outlast ctx's deadline.
func (c *Client) waitBudget(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wait, ok := c.budget.reserve(ctx, c.now())
	if !ok {
		return &RateLimitError{RetryAfter: ceilSecond(wait)}
	}
	if wait > 0 {
		c.log.DebugContext(ctx, "atp: waiting for call budget", "delay", wait)
		return c.sleep(ctx, wait)
	}
	return nil
}

// backoff returns the jittered delay before retry number attempt (1-based).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.baseDelay
	for i := 1; i < attempt && d < c.maxDelay; i++ {
		d *= 2
	}
	return jitter(min(d, c.maxDelay))
}

// neverSent reports whether err proves the request never reached the
// server: the connection could not be made at all.
func neverSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// limitedBody reads at most n bytes from r and then fails with
// ErrBodyTooLarge.
type limitedBody struct {
	r io.Reader
	n int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe for one more byte: EOF exactly at the limit is fine.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, ErrBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// do sends cl and decodes the 2xx JSON answer into out (unless out is nil).
func (c *Client) do(ctx context.Context, cl *call, out any) error {
	resp, err := c.send(ctx, cl)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(&limitedBody{r: resp.Body, n: c.maxBody})
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("atp: %s: %w", cl.op, c.decodeError(resp, err))
	}
	return nil
}

// drainClose reads what is left of a body (the newline after a JSON answer,
// at most maxErrorBody bytes) before closing it, so that the connection
// goes back to the pool instead of being closed: without it every call
// would pay a new TLS handshake.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	body.Close()
}

func (c *Client) decodeError(resp *http.Response, err error) *DecodeError {
	if ce := resp.Request.Context().Err(); ce != nil && !errors.Is(err, ErrBodyTooLarge) {
		err = ce
	}
	return &DecodeError{StatusCode: resp.StatusCode, Method: resp.Request.Method, Path: resp.Request.URL.Path, Err: err}
}
