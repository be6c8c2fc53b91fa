package action

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// maxRejoins bounds how often a delivery runs again after the run it joined
// ended on its first caller's deadline.
const maxRejoins = 3

// coalesce runs req once for every identical delivery in flight at once (a
// webhook storm, a retry racing its original): the first caller's run
// serves all of them, and the others answer as repeated deliveries of it.
//
// Each caller keeps its own deadline: a caller whose deadline passes first
// stops waiting and answers upstream_timeout while the run goes on for the
// others; a caller whose run ended only because the first caller's deadline
// passed runs again on its own time (Defender's pending-action rule makes
// that second run find the first one's action, never start another).
func (r *Runner) coalesce(ctx context.Context, k *Kind, req *Request) (*Result, error) {
	key := requestKey(k, req)
	for range maxRejoins {
		leader := false
		ch := r.inflight.DoChan(key, func() (any, error) {
			leader = true
			return r.do(ctx, k, req)
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case out := <-ch:
			res, _ := out.Val.(*Result)
			if leader {
				return res, out.Err
			}
			if out.Err != nil && ctx.Err() == nil && isDeadline(out.Err) {
				continue // the first caller's deadline, not ours: run again
			}
			if out.Err == nil && res.Status == http.StatusCreated {
				again := *res
				again.Status, again.AlreadyPending = http.StatusOK, true
				res = &again
			}
			return res, out.Err
		}
	}
	return r.do(ctx, k, req)
}

func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// requestKey identifies a request for coalescing identical deliveries:
// everything that decides what is sent to Defender.
func requestKey(k *Kind, req *Request) string {
	body, _ := json.Marshal(req.Body) // map keys are sorted: stable
	return strings.Join([]string{k.Function, string(req.Device.By), req.Device.MachineID, req.Device.DeviceName,
		req.Device.IP.String(), req.Comment, strconv.FormatBool(req.Release), strconv.FormatBool(req.DryRun), string(body)}, "\x00")
}
