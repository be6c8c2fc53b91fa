package action

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/pkg/atp"
)

// resolve finds the one device the request names. Names match exactly (the
// FQDN, or the host label when no dot is given); merged and
// potential-duplicate records are set aside; more than one remaining device
// is ambiguous_device with the candidates. It never guesses.
func (r *Runner) resolve(ctx context.Context, req *Request) (*atp.Machine, error) {
	d := req.Device
	var found []atp.Machine
	var err error
	switch d.By {
	case ByMachineID:
		m, err := r.Client.GetMachine(ctx, d.MachineID)
		if err == nil {
			return m, nil
		}
		var re *atp.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden && len(r.Settings.ProtectedTags) == 0 {
			// Acting by ID needs only the action's own permission; the
			// device's details come back with the action.
			return &atp.Machine{ID: d.MachineID}, nil
		}
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			fe := errmap.From(err)
			return nil, &envelope.Error{Code: envelope.Forbidden, Err: err, Upstream: fe.Upstream,
				Message: "MDE_PROTECTED_TAGS is set, so the device's tags must be read before acting on it: grant Machine.Read.All to the app"}
		}
		if atp.IsNotFound(err) {
			return nil, &envelope.Error{Code: envelope.NotFound, Err: err, Upstream: errmap.From(err).Upstream,
				Message: fmt.Sprintf("Defender has no device with machineId %s", d.MachineID)}
		}
		return nil, err
	case ByDeviceName:
		found, err = r.Client.FindMachinesByName(ctx, d.DeviceName)
	case ByIPAddress:
		found, err = r.Client.FindMachinesByIP(ctx, d.IP, r.now())
	default:
		return nil, envelope.Errorf(envelope.InvalidRequest, "name the device with exactly one of machineId, deviceName or ipAddress")
	}
	if err != nil {
		return nil, err
	}
	var active []atp.Machine
	for _, m := range found {
		if !m.IsDuplicate() && m.ID != "" {
			active = append(active, m)
		}
	}
	what := fmt.Sprintf("deviceName %q", d.DeviceName)
	if d.By == ByIPAddress {
		what = fmt.Sprintf("ipAddress %s (seen within 15 minutes of now)", d.IP)
	}
	switch len(active) {
	case 0:
		return nil, envelope.Errorf(envelope.NotFound, "no active Defender device matches %s", what)
	case 1:
		return &active[0], nil
	}
	cands := make([]Candidate, len(active))
	for i, m := range active {
		cands[i] = Candidate{ID: m.ID, ComputerDNSName: m.ComputerDNSName, LastSeen: m.LastSeen}
	}
	return nil, &envelope.Error{Code: envelope.AmbiguousDevice, Candidates: cands,
		Message: fmt.Sprintf("%d active devices match %s; name one by machineId", len(active), what)}
}
