// Package isolate is the isolate function: it isolates one device from the
// network (by ID, name or IP address) or releases it, under the rules every
// response action shares (functions/internal/action): exact resolution,
// protected tags, the isolation budget, dry run, and a repeated delivery
// answered as the first one's success.
package isolate

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodPost}

// Needs is what a token must hold to isolate a device named by machineId;
// NeedsByName adds the device lookup of deviceName and ipAddress.
var (
	Needs       = action.NeedsOf("Machine.Isolate")
	NeedsByName = action.NeedsByNameOf("Machine.Isolate")
)

// Kind is isolation as a response action: containment (refused on
// protected devices) counted by the isolation budget; its release is
// neither.
var Kind = action.Kind{
	Function: "isolate",
	Type:     atp.ActionIsolate, Path: "isolate", Verb: "isolate",
	Release: atp.ActionUnisolate, ReleasePath: "unisolate", ReleaseVerb: "release",
	Containment: true,
	Budgeted:    true,
}

// Client is the part of *atp.Client the function uses.
type Client interface {
	action.Client
	Isolate(ctx context.Context, machineID string, r atp.IsolateRequest) (*atp.MachineAction, error)
	Unisolate(ctx context.Context, machineID, comment string) (*atp.MachineAction, error)
}

// Service runs isolate requests. It is safe for concurrent use.
type Service struct {
	Client Client
	Runner *action.Runner // the shared rules; its Client may be the same as Client
	Logger *slog.Logger   // failure lines; nil discards
}

// The answers' types, shared by every action function.
type (
	Result         = action.Result
	Machine        = action.Machine
	Candidate      = action.Candidate
	PlannedRequest = action.PlannedRequest
)

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*Result, error) {
	req, err := r.check()
	if err != nil {
		return nil, err
	}
	req.Send = func(ctx context.Context, machineID string) (*atp.MachineAction, error) {
		if req.Release {
			return s.Client.Unisolate(ctx, machineID, req.Comment)
		}
		return s.Client.Isolate(ctx, machineID, atp.IsolateRequest{Comment: req.Comment, IsolationType: atp.IsolationType(req.Body["IsolationType"].(string))})
	}
	return s.Runner.Do(ctx, &Kind, req)
}

// ServeHTTP answers POST isolate requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	action.Handler("isolate", "the request body must be a JSON object with machineId, deviceName or ipAddress, and comment",
		s.Logger, s.Do).ServeHTTP(w, req)
}
