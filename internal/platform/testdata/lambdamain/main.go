// Command lambdamain is a Lambda bootstrap for the platform package's
// end-to-end test under the AWS Lambda Runtime Interface Emulator: its one
// function, "isolate", answers 404 not_found when the request has
// "fail": true, else 201 with the request and the invocation it saw.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/mdefn/mdefn/internal/invocation"
	"github.com/mdefn/mdefn/internal/platform"
)

func main() {
	isolate := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var req struct {
			Fail bool `json:"fail"`
		}
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		if req.Fail {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no such device"}}`)
			return
		}
		info := invocation.From(r.Context())
		deadline, _ := r.Context().Deadline()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"request": json.RawMessage(body), "trigger": info.Trigger, "id": info.ID,
			"deadline": deadline.Format(time.RFC3339Nano),
		})
	})
	app := &platform.App{
		Functions: map[string]http.Handler{"isolate": isolate},
		Timeout:   30 * time.Second,
		Logger:    slog.New(slog.NewJSONHandler(os.Stdout, nil)),
	}
	if err := platform.Run(context.Background(), app, "isolate", "", os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
