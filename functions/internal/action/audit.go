package action

import (
	"context"
	"log/slog"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/internal/invocation"
)

// audit writes the one audit line of a request: who asked (invocation and
// trigger), what (function, verb, ticket, how the device was named), on
// which device, and how it ended. It never holds the comment's free text
// beyond the ticket, nor any token or secret.
func (r *Runner) audit(ctx context.Context, k *Kind, req *Request, res *Result, err error) {
	if r.Logger == nil {
		return
	}
	info := invocation.From(ctx)
	verb := k.Verb
	if req.Release {
		verb = k.ReleaseVerb
	}
	attrs := []slog.Attr{
		slog.String("audit", "mdefn."+k.Function),
		slog.String("function", k.Function),
		slog.String("invocationId", info.ID),
		slog.String("trigger", string(info.Trigger)),
		slog.String("action", verb),
		slog.String("ticket", req.Ticket),
		slog.String("by", string(req.Device.By)),
	}
	var outcome string
	switch {
	case err != nil:
		e := errmap.From(err)
		outcome = string(e.Code)
		if e.Code == envelope.ProtectedDevice {
			outcome = "protected"
		}
	case res.DryRun:
		outcome = "dryRun"
	case res.AlreadyPending:
		outcome = "alreadyPending"
	default:
		outcome = "created"
	}
	attrs = append(attrs, slog.String("outcome", outcome))
	if res != nil {
		attrs = append(attrs, slog.String("machineId", res.Machine.ID), slog.String("computerDnsName", res.Machine.ComputerDNSName))
		if res.Action != nil {
			attrs = append(attrs, slog.String("actionId", res.Action.ID), slog.String("actionStatus", string(res.Action.Status)))
		}
	} else {
		attrs = append(attrs, slog.String("machineId", req.Device.MachineID))
	}
	r.Logger.LogAttrs(ctx, slog.LevelInfo, k.Function+" "+outcome, attrs...)
}
