// Package scan is the scan function: it starts a Microsoft Defender
// Antivirus scan (Quick or Full) on one device, under the rules every
// response action shares (functions/internal/action). Protected tags do not
// apply: a scan contains nothing.
package scan

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Methods are the HTTP methods the function answers.
var Methods = []string{http.MethodPost}

// Needs is what a token must hold to scan a device named by machineId;
// NeedsByName adds the device lookup of deviceName and ipAddress.
var (
	Needs       = action.NeedsOf("Machine.Scan")
	NeedsByName = action.NeedsByNameOf("Machine.Scan")
)

// Kind is the antivirus scan as a response action.
var Kind = action.Kind{Function: "scan", Type: atp.ActionRunAntiVirusScan, Path: "runAntiVirusScan", Verb: "scan"}

// Client is the part of *atp.Client the function uses.
type Client interface {
	RunAntiVirusScan(ctx context.Context, machineID string, r atp.ScanRequest) (*atp.MachineAction, error)
}

// Request is a scan request: the fields every action takes and the scan
// type (Quick, the default, or Full).
type Request struct {
	action.Fields
	ScanType string `json:"scanType,omitempty"`
}

// Service runs scan requests. It is safe for concurrent use.
type Service struct {
	Client Client
	Runner *action.Runner
	Logger *slog.Logger
}

func (r Request) check() (action.Request, atp.ScanType, error) {
	req, err := r.Fields.Check()
	if err != nil {
		return req, "", err
	}
	t := atp.ScanQuick
	if s := strings.TrimSpace(r.ScanType); s != "" {
		switch {
		case strings.EqualFold(s, string(atp.ScanQuick)):
		case strings.EqualFold(s, string(atp.ScanFull)):
			t = atp.ScanFull
		default:
			return req, "", envelope.Errorf(envelope.InvalidRequest, "scanType: unknown value %q; use Quick or Full", r.ScanType)
		}
	}
	req.Body = map[string]any{"Comment": req.Comment, "ScanType": string(t)}
	return req, t, nil
}

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*action.Result, error) {
	req, t, err := r.check()
	if err != nil {
		return nil, err
	}
	req.Send = func(ctx context.Context, machineID string) (*atp.MachineAction, error) {
		return s.Client.RunAntiVirusScan(ctx, machineID, atp.ScanRequest{Comment: req.Comment, ScanType: t})
	}
	// A pending scan of the other type is not this request's.
	req.Matches = func(a *atp.MachineAction) bool { return a.Scope == "" || strings.EqualFold(a.Scope, string(t)) }
	return s.Runner.Do(ctx, &Kind, req)
}

// ServeHTTP answers POST scan requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	action.Handler(Kind.Function, "the request body must be a JSON object with machineId, deviceName or ipAddress, and comment",
		s.Logger, s.Do).ServeHTTP(w, req)
}
