package action

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
)

// Handler answers POST requests whose JSON body decodes into R, running do
// for each: the HTTP shape every action function shares. An empty body is
// invalid_request with emptyBody as its message; any failure is written as
// the error envelope and logged on logger (nil discards) under function.
func Handler[R any](function, emptyBody string, logger *slog.Logger, do func(ctx context.Context, r R) (*Result, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			errmap.Write(w, envelope.Errorf(envelope.MethodNotAllowed, "use POST with a JSON body"))
			return
		}
		var body bytes.Buffer
		var r R
		_, err := body.ReadFrom(req.Body)
		if err == nil {
			if len(bytes.TrimSpace(body.Bytes())) == 0 {
				err = envelope.Errorf(envelope.InvalidRequest, "%s", emptyBody)
			} else {
				err = decode.JSON(body.Bytes(), &r)
			}
		}
		var res *Result
		if err == nil {
			res, err = do(req.Context(), r)
		}
		if err != nil {
			e := errmap.Write(w, err)
			errmap.LogFailure(req.Context(), logger, function, e)
			return
		}
		_ = envelope.WriteJSON(w, res.Status, res)
	})
}
