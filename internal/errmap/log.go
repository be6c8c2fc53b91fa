package errmap

import (
	"context"
	"log/slog"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/invocation"
)

// LogFailure writes one log line for a failed invocation: the contract code
// and status, the upstream answer, and the internal cause's text (which the
// error types of this module keep free of secrets). A nil logger discards.
func LogFailure(ctx context.Context, logger *slog.Logger, function string, e *envelope.Error) {
	if logger == nil || e == nil {
		return
	}
	level := slog.LevelWarn
	if e.Status() >= 500 {
		level = slog.LevelError
	}
	info := invocation.From(ctx)
	attrs := []slog.Attr{
		slog.String("function", function),
		slog.String("invocationId", info.ID),
		slog.String("trigger", string(info.Trigger)),
		slog.String("code", string(e.Code)),
		slog.Int("status", e.Status()),
		slog.String("message", e.Message),
	}
	if e.Upstream != nil {
		attrs = append(attrs, slog.Int("upstreamStatus", e.Upstream.Status), slog.String("upstreamCode", e.Upstream.Code),
			slog.String("correlationId", e.Upstream.CorrelationID))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("cause", e.Err.Error()))
	}
	logger.LogAttrs(ctx, level, "request failed", attrs...)
}
