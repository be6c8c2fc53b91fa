// Package quarantine is the quarantine function: it stops a file's processes
// on one device and quarantines the file (by SHA-1), under the rules every
// response action shares (functions/internal/action). Protected tags do not
// apply. A pending quarantine of another file is not this request's.
package quarantine

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

// Needs is what a token must hold to quarantine on a device named by
// machineId; NeedsByName adds the device lookup of deviceName and ipAddress.
var (
	Needs       = action.NeedsOf("Machine.StopAndQuarantine")
	NeedsByName = action.NeedsByNameOf("Machine.StopAndQuarantine")
)

// Kind is stop-and-quarantine as a response action.
var Kind = action.Kind{Function: "quarantine", Type: atp.ActionStopAndQuarantineFile, Path: "StopAndQuarantineFile", Verb: "quarantine"}

// Client is the part of *atp.Client the function uses.
type Client interface {
	StopAndQuarantineFile(ctx context.Context, machineID string, r atp.QuarantineRequest) (*atp.MachineAction, error)
}

// Request is a quarantine request: the fields every action takes and the
// file's SHA-1.
type Request struct {
	action.Fields
	Sha1 string `json:"sha1"`
}

// Service runs quarantine requests. It is safe for concurrent use.
type Service struct {
	Client Client
	Runner *action.Runner
	Logger *slog.Logger
}

func (r Request) check() (action.Request, string, error) {
	req, err := r.Fields.Check()
	if err != nil {
		return req, "", err
	}
	sha1 := strings.ToLower(strings.TrimSpace(r.Sha1))
	if !atp.ValidSHA1(sha1) {
		return req, "", envelope.Errorf(envelope.InvalidRequest, "sha1: want the 40 hexadecimal characters of the file's SHA-1")
	}
	req.Body = map[string]any{"Comment": req.Comment, "Sha1": sha1}
	return req, sha1, nil
}

// Do runs one request.
func (s *Service) Do(ctx context.Context, r Request) (*action.Result, error) {
	req, sha1, err := r.check()
	if err != nil {
		return nil, err
	}
	req.Send = func(ctx context.Context, machineID string) (*atp.MachineAction, error) {
		return s.Client.StopAndQuarantineFile(ctx, machineID, atp.QuarantineRequest{Comment: req.Comment, Sha1: sha1})
	}
	req.Matches = func(a *atp.MachineAction) bool {
		return a.RelatedFileInfo != nil && strings.EqualFold(a.RelatedFileInfo.FileIdentifier, sha1)
	}
	return s.Runner.Do(ctx, &Kind, req)
}

// ServeHTTP answers POST quarantine requests.
func (s *Service) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	action.Handler(Kind.Function, "the request body must be a JSON object with machineId, deviceName or ipAddress, comment and sha1",
		s.Logger, s.Do).ServeHTTP(w, req)
}
