// Package httpguard is the HTTP front of every function: method check, the
// 1 MiB body limit, the webhook signature (X-Hub-Signature-256) and the
// invocation ID. It knows nothing about Defender.
package httpguard

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/internal/invocation"
)

// MaxBody is the largest request body accepted (1 MiB).
const MaxBody = 1 << 20

// SignatureHeader carries the webhook signature.
const SignatureHeader = "X-Hub-Signature-256"

// LegacySignatureHeader is accepted when SignatureHeader is absent, for
// senders (Jira Cloud webhooks among them) that put the same
// "sha256=<hex>" value under the older header name.
const LegacySignatureHeader = "X-Hub-Signature"

// Options configure Wrap. The zero value allows GET and POST, requires no
// signature and limits bodies to MaxBody.
type Options struct {
	// Methods allowed on the route; nil means GET and POST.
	Methods []string
	// WebhookSecret returns the HMAC key; nil means no signature is required.
	// It is called per request so that a rotated vault secret is picked up
	// (callers cache it).
	WebhookSecret func(ctx context.Context) ([]byte, error)
	// MaxBody bounds request bodies; 0 means MaxBody.
	MaxBody int64
}

// Wrap returns h behind the checks of the contract: 405 with Allow for a
// wrong method, 413 for a body over the limit, 401 for a missing or wrong
// signature (HTTP deliveries only; queue, SQS and EventBridge deliveries are
// authenticated by their platform), and an invocation ID on the context.
func Wrap(h http.Handler, o Options) http.Handler {
	methods := o.Methods
	if methods == nil {
		methods = []string{http.MethodGet, http.MethodPost}
	}
	limit := o.MaxBody
	if limit <= 0 {
		limit = MaxBody
	}
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := invocation.From(r.Context())
		if info.ID == "" {
			info.ID = NewID()
			if info.Trigger == "" {
				info.Trigger = invocation.HTTP
			}
			r = r.WithContext(invocation.With(r.Context(), info))
		}
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			errmap.Write(w, envelope.Errorf(envelope.MethodNotAllowed, "method %s is not allowed here; use %s", r.Method, allow))
			return
		}
		body, err := readBody(r, limit)
		if err != nil {
			errmap.Write(w, err)
			return
		}
		if o.WebhookSecret != nil && !info.Trigger.PlatformAuthenticated() {
			key, err := o.WebhookSecret(r.Context())
			if err != nil {
				errmap.Write(w, err)
				return
			}
			sig := r.Header.Get(SignatureHeader)
			if sig == "" {
				sig = r.Header.Get(LegacySignatureHeader)
			}
			if !Verify(key, body, sig) {
				errmap.Write(w, envelope.Errorf(envelope.Unauthorized,
					"missing or invalid %s header: send sha256=<hex HMAC-SHA256 of the raw body> keyed with the webhook secret", SignatureHeader))
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		h.ServeHTTP(w, r)
	})
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	tooLarge := envelope.Errorf(envelope.PayloadTooLarge, "request body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	if r.Body == nil {
		return nil, nil
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &envelope.Error{Code: envelope.InvalidRequest, Message: "could not read the request body", Err: err}
	}
	if int64(len(b)) > limit {
		return nil, tooLarge
	}
	return b, nil
}

// Sign returns the X-Hub-Signature-256 value for body under key.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is a valid signature of body under key. The
// comparison is constant-time.
func Verify(key, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(key) == 0 {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// NewID returns a random invocation ID (a UUID).
func NewID() string { return uuid.NewString() }
