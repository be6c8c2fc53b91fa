// Package restrict is the restrict function: it restricts which
// applications may run on one device (only Microsoft-signed code), or lifts
// the restriction, under the rules every response action shares
// (functions/internal/action). Restriction is containment: a device carrying
// a protected tag is never restricted; lifting is never refused.
package restrict

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodPost}

// Needs is what a token must hold to restrict a device named by machineId;
// NeedsByName adds the device lookup of deviceName and ipAddress.
var (
	Needs       = action.NeedsOf("Machine.RestrictExecution")
	NeedsByName = action.NeedsByNameOf("Machine.RestrictExecution")
)

// Kind is code-execution restriction as a response action.
var Kind = action.Kind{
	Function: "restrict",
	Type:     atp.ActionRestrictCodeExecution, Path: "restrictCodeExecution", Verb: "restrict",
	Release: atp.ActionUnrestrictCodeExecution, ReleasePath: "unrestrictCodeExecution", ReleaseVerb: "unrestrict",
	Containment: true,
}

// Client is the part of *atp.Client the function uses.
type Client interface {
	RestrictCodeExecution(ctx context.Context, machineID, comment string) (*atp.MachineAction, error)
	UnrestrictCodeExecution(ctx context.Context, machineID, comment string) (*atp.MachineAction, error)
}

// Request is a restrict request: the fields every action takes, and release
// to lift the restriction.
type Request struct {
	action.Fields
	Release decode.Bool `json:"release"`
}

// Service runs restrict requests. It is safe for concurrent use.
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
	req.Release = r.Release.Value
	req.Body = map[string]any{"Comment": req.Comment}
	req.Send = func(ctx context.Context, machineID string) (*atp.MachineAction, error) {
		if req.Release {
			return s.Client.UnrestrictCodeExecution(ctx, machineID, req.Comment)
		}
		return s.Client.RestrictCodeExecution(ctx, machineID, req.Comment)
	}
	return s.Runner.Do(ctx, &Kind, req)
}

// ServeHTTP answers POST restrict requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	action.Handler(Kind.Function, "the request body must be a JSON object with machineId, deviceName or ipAddress, and comment",
		s.Logger, s.Do).ServeHTTP(w, req)
}
