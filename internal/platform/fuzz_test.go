package platform

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// seedFiles adds the testdata payloads whose name starts with prefix.
func seedFiles(f *testing.F, prefix string) {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", prefix+"*.json"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no testdata %s*.json: %v", prefix, err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzAzurePayload checks that no host payload panics the custom handler and
// that only a retryable answer (500) is anything but 200.
func FuzzAzurePayload(f *testing.F) {
	seedFiles(f, "azure_")
	for _, s := range []string{``, `null`, `{"Data":null}`, `{"Data":{"req":{"Method":"GET","Url":"%"}}}`,
		`{"Data":{"e":{"specversion":"1.0","data":"\"\\\"x\\\"\""}}}`, `{"Data":{"q":"\"\"\"\""},"Metadata":{"DequeueCount":"\"\\\"1\\\"\""}}`} {
		f.Add([]byte(s))
	}
	fx := &testFixture{}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if fx.app == nil {
			*fx = *newFixture(t)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/isolate-queue", bytes.NewReader(payload))
		fx.app.AzureHandler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusInternalServerError {
			t.Errorf("host status = %d, want 200 or 500", rec.Code)
		}
		if _, err := decodeAzure(payload); err != nil {
			var pe *payloadError
			if !errors.As(err, &pe) {
				t.Errorf("decodeAzure error %v is not a payload error", err)
			}
		}
	})
}

// FuzzLambdaEvent checks that no event panics the Lambda handler.
func FuzzLambdaEvent(f *testing.F) {
	seedFiles(f, "lambda_")
	for _, s := range []string{`"x"`, `[]`, `{}`, `{"Records":[{}]}`, `{"version":"2.0","requestContext":{"http":{"method":"GET"}},"rawPath":"//x"}`,
		`{"detail-type":"x","source":"y","detail":"\"{}\""}`} {
		f.Add([]byte(s))
	}
	fx := &testFixture{}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if fx.app == nil {
			*fx = *newFixture(t)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "fuzz"})
		out, err := fx.app.LambdaHandler("isolate")(ctx, payload)
		if err == nil && out == nil {
			t.Errorf("payload %q: nil result and nil error, want an answer or an error", payload)
		}
	})
}
