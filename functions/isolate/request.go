package isolate

import (
	"strings"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Request is an isolate request as callers send it: the fields every action
// takes (machineId, deviceName or ipAddress; comment; ticket; dryRun) and
// isolate's own.
type Request struct {
	action.Fields
	IsolationType string      `json:"isolationType,omitempty"`
	Release       decode.Bool `json:"release"`
}

var isolationTypes = []atp.IsolationType{atp.IsolationFull, atp.IsolationSelective, atp.IsolationUnManagedDevice}

// check validates r without calling anything. Every problem is an
// invalid_request error naming the field. isolationType defaults to Full
// and is ignored on release.
func (r Request) check() (action.Request, error) {
	req, err := r.Fields.Check()
	if err != nil {
		return req, err
	}
	req.Release = r.Release.Value
	if req.Release {
		req.Body = map[string]any{"Comment": req.Comment}
		return req, nil
	}
	t := atp.IsolationFull
	if r.IsolationType != "" {
		found := false
		for _, it := range isolationTypes {
			if strings.EqualFold(string(it), strings.TrimSpace(r.IsolationType)) {
				t, found = it, true
			}
		}
		if !found {
			return req, envelope.Errorf(envelope.InvalidRequest, "isolationType: unknown value %q; use Full, Selective or UnManagedDevice", r.IsolationType)
		}
	}
	req.Body = map[string]any{"Comment": req.Comment, "IsolationType": string(t)}
	return req, nil
}
