// Package collect is the collect function: it asks Defender to collect an
// investigation package from one device, under the rules every response
// action shares (functions/internal/action). Protected tags do not apply.
// When the action has succeeded, the actions function gives the package's
// download link (GET /api/actions/{id}/package).
package collect

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodPost}

// Needs is what a token must hold to collect from a device named by
// machineId; NeedsByName adds the device lookup of deviceName and ipAddress.
var (
	Needs       = action.NeedsOf("Machine.CollectForensics")
	NeedsByName = action.NeedsByNameOf("Machine.CollectForensics")
)

// Kind is the investigation package collection as a response action.
var Kind = action.Kind{Function: "collect", Type: atp.ActionCollectInvestigationPackage, Path: "collectInvestigationPackage", Verb: "collect"}

// Client is the part of *atp.Client the function uses.
type Client interface {
	CollectInvestigationPackage(ctx context.Context, machineID, comment string) (*atp.MachineAction, error)
}

// Request is a collect request: the fields every action takes.
type Request struct {
	action.Fields
}

// Service runs collect requests. It is safe for concurrent use.
type Service struct {
	Client Client
	Runner *action.Runner
	Logger *slog.Logger
}

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*action.Result, error) {
	req, err := r.Fields.Check()
	if err != nil {
		return nil, err
	}
	req.Body = map[string]any{"Comment": req.Comment}
	req.Send = func(ctx context.Context, machineID string) (*atp.MachineAction, error) {
		return s.Client.CollectInvestigationPackage(ctx, machineID, req.Comment)
	}
	return s.Runner.Do(ctx, &Kind, req)
}

// ServeHTTP answers POST collect requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	action.Handler(Kind.Function, "the request body must be a JSON object with machineId, deviceName or ipAddress, and comment",
		s.Logger, s.Do).ServeHTTP(w, req)
}
