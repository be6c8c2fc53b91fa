package httpguard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

func TestWrap(t *testing.T) {
	key := []byte("webhook-key")
	body := `{"machineId":"x"}`
	good := Sign(key, []byte(body))
	tests := []struct {
		name       string
		method     string
		body       string
		sig        string
		legacy     string
		trigger    invocation.Trigger
		secretErr  error
		wantStatus int
		wantCode   envelope.Code
		wantCalled bool
	}{
		{name: "signed POST", method: "POST", body: body, sig: good, wantStatus: 200, wantCalled: true},
		{name: "signed GET empty body", method: "GET", sig: Sign(key, nil), wantStatus: 200, wantCalled: true},
		{name: "missing signature", method: "POST", body: body, wantStatus: 401, wantCode: envelope.Unauthorized},
		{name: "wrong prefix", method: "POST", body: body, sig: strings.Replace(good, "sha256=", "sha1=", 1), wantStatus: 401, wantCode: envelope.Unauthorized},
		{name: "body altered after signing", method: "POST", body: body + " ", sig: good, wantStatus: 401, wantCode: envelope.Unauthorized},
		{name: "signature not hex", method: "POST", body: body, sig: "sha256=zz", wantStatus: 401, wantCode: envelope.Unauthorized},
		{name: "upper-case hex accepted", method: "POST", body: body, sig: "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), wantStatus: 200, wantCalled: true},
		{name: "legacy header with sha256", method: "POST", body: body, legacy: good, wantStatus: 200, wantCalled: true},
		{name: "legacy header with sha1", method: "POST", body: body, legacy: "sha1=0123456789abcdef0123456789abcdef01234567", wantStatus: 401, wantCode: envelope.Unauthorized},
		{name: "bad new header wins over good legacy", method: "POST", body: body, sig: "sha256=00", legacy: good, wantStatus: 401, wantCode: envelope.Unauthorized},
		{name: "queue delivery needs no signature", method: "POST", body: body, trigger: invocation.Queue, wantStatus: 200, wantCalled: true},
		{name: "wrong method", method: "DELETE", body: body, sig: good, wantStatus: 405, wantCode: envelope.MethodNotAllowed},
		{name: "oversize body", method: "POST", body: strings.Repeat("a", MaxBody+1), sig: good, wantStatus: 413, wantCode: envelope.PayloadTooLarge},
		{name: "vault down", method: "POST", body: body, sig: good, secretErr: envelope.Errorf(envelope.SecretUnavailable, "vault down"), wantStatus: 502, wantCode: envelope.SecretUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			var gotBody string
			h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				b, _ := io.ReadAll(r.Body)
				gotBody = string(b)
				if invocation.From(r.Context()).ID == "" {
					t.Error("handler got no invocation ID")
				}
				w.WriteHeader(200)
			}), Options{WebhookSecret: func(context.Context) ([]byte, error) {
				if tt.secretErr != nil {
					return nil, tt.secretErr
				}
				return key, nil
			}})
			r := httptest.NewRequest(tt.method, "/api/isolate", strings.NewReader(tt.body))
			if tt.sig != "" {
				r.Header.Set(SignatureHeader, tt.sig)
			}
			if tt.legacy != "" {
				r.Header.Set(LegacySignatureHeader, tt.legacy)
			}
			if tt.trigger != "" {
				r = r.WithContext(invocation.With(r.Context(), invocation.Info{ID: "i-1", Trigger: tt.trigger}))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tt.wantStatus, w.Body)
			}
			if called != tt.wantCalled {
				t.Fatalf("handler called = %v, want %v", called, tt.wantCalled)
			}
			if called && gotBody != tt.body {
				t.Errorf("handler body = %q, want %q", gotBody, tt.body)
			}
			if tt.wantCode != "" {
				var env envelope.Envelope
				if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
					t.Fatalf("answer is not the envelope: %v", err)
				}
				if env.Error.Code != tt.wantCode {
					t.Errorf("code = %q, want %q", env.Error.Code, tt.wantCode)
				}
				if strings.Contains(w.Body.String(), string(key)) {
					t.Error("answer contains the webhook secret")
				}
			}
			if tt.wantStatus == 405 && w.Header().Get("Allow") != "GET, POST" {
				t.Errorf("Allow = %q, want %q", w.Header().Get("Allow"), "GET, POST")
			}
		})
	}
}

func TestVerify(t *testing.T) {
	if Verify(nil, []byte("x"), Sign(nil, []byte("x"))) {
		t.Error("Verify accepted an empty key")
	}
	if !Verify([]byte("k"), []byte("x"), Sign([]byte("k"), []byte("x"))) {
		t.Error("Verify rejected a good signature")
	}
	if Verify([]byte("k"), []byte("x"), Sign([]byte("other"), []byte("x"))) {
		t.Error("Verify accepted another key's signature")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("key"), []byte(`{"a":1}`), "sha256=00")
	f.Add([]byte("key"), []byte(""), Sign([]byte("key"), nil))
	f.Fuzz(func(t *testing.T, key, body []byte, header string) {
		ok := Verify(key, body, header)
		if ok && len(key) == 0 {
			t.Fatal("verified with an empty key")
		}
		if ok && !strings.EqualFold(strings.TrimSpace(header), Sign(key, body)) {
			t.Fatalf("Verify(%q) accepted a header that is not the signature", header)
		}
		if len(key) > 0 && !Verify(key, body, Sign(key, body)) {
			t.Fatal("Verify rejected its own signature")
		}
	})
}
