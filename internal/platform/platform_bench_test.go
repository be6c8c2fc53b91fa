package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// benchApp serves one function that reads its body and answers a fixed
// JSON object of about 1 KB, so the figures are the adapters' own.
func benchApp() *App {
	answer := []byte(`{"action":{"id":"` + strings.Repeat("a", 36) + `","type":"Isolate","status":"Pending","comment":"` +
		strings.Repeat("x", 800) + `"},"machine":{"id":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07"}}`)
	fn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(answer)
	})
	return &App{
		Functions: map[string]http.Handler{"alerts": fn, "isolate": fn, "tokencheck": fn},
		Timeout:   30 * time.Second,
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)), // the log line is part of the cost
	}
}

// BenchmarkAzureRoundTrip decodes an Azure host payload (HTTP trigger, POST),
// runs the function and encodes the host answer.
//
//	go test -run '^$' -bench . -benchmem ./internal/platform
func BenchmarkAzureRoundTrip(b *testing.B) {
	for _, file := range []string{"azure_http_post.json", "azure_queue.json"} {
		b.Run(strings.TrimSuffix(file, ".json"), func(b *testing.B) {
			payload := readTestdata(b, file)
			var folder struct {
				Metadata struct {
					Sys struct{ MethodName string } `json:"sys"`
				}
			}
			if err := json.Unmarshal(payload, &folder); err != nil {
				b.Fatal(err)
			}
			h := benchApp().AzureHandler()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/"+folder.Metadata.Sys.MethodName, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("POST /%s = %d %s", folder.Metadata.Sys.MethodName, rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkLambdaRoundTrip decodes a Lambda event (Function URL, SQS),
// runs the function and builds the response event.
func BenchmarkLambdaRoundTrip(b *testing.B) {
	for _, file := range []string{"lambda_function_url.json", "lambda_sqs.json"} {
		b.Run(strings.TrimSuffix(file, ".json"), func(b *testing.B) {
			event := json.RawMessage(readTestdata(b, file))
			handle := benchApp().LambdaHandler("isolate")
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "bench"})
			b.SetBytes(int64(len(event)))
			b.ReportAllocs()
			for b.Loop() {
				out, err := handle(ctx, event)
				if err != nil {
					b.Fatal(err)
				}
				// The runtime marshals the answer: part of the round trip.
				if _, err := json.Marshal(out); err != nil {
					b.Fatal(err)
				}
			}
			switch out, _ := handle(ctx, event); o := out.(type) {
			case events.APIGatewayV2HTTPResponse:
				if o.StatusCode != http.StatusCreated {
					b.Fatalf("Lambda %s answer status %d, want 201", file, o.StatusCode)
				}
			case events.SQSEventResponse:
				if len(o.BatchItemFailures) != 0 {
					b.Fatalf("Lambda %s: batch failures %v, want none", file, o.BatchItemFailures)
				}
			}
		})
	}
}
