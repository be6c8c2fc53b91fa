package action

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// Limits on the free-text fields.
const (
	MaxCommentLength = 1000 // characters of the caller's comment
	MaxTicketLength  = 128  // characters of the ticket reference
)

// Fields are the request fields every action function takes. A function's
// request type embeds Fields, so they sit at the top level of its JSON.
type Fields struct {
	MachineID  string      `json:"machineId,omitempty"`
	DeviceName string      `json:"deviceName,omitempty"`
	IPAddress  string      `json:"ipAddress,omitempty"`
	Comment    string      `json:"comment"`
	Ticket     string      `json:"ticket,omitempty"`
	DryRun     decode.Bool `json:"dryRun"`
}

// By names how a request identifies its device.
type By string

// The three ways to name a device.
const (
	ByMachineID  By = "machineId"
	ByDeviceName By = "deviceName"
	ByIPAddress  By = "ipAddress"
)

// Device is the one device a request names, validated.
type Device struct {
	By         By
	MachineID  string     // lower-case, when By is ByMachineID
	DeviceName string     // lower-case, no trailing dot, when By is ByDeviceName
	IP         netip.Addr // when By is ByIPAddress
}

// Request is a validated action request: the common fields checked by
// Fields.Check, completed by the function with what it sends.
type Request struct {
	Device  Device
	Comment string // as sent to Defender: the ticket first
	Ticket  string
	DryRun  bool // the caller's dryRun (MDE_DRY_RUN applies as well)
	Release bool // undo the action (Kind.Release) instead of doing it

	// Body is the Defender request body, Comment included: shown by a dry
	// run, and part of what makes two deliveries identical.
	Body map[string]any
	// Send asks Defender for the action on the resolved device.
	Send func(ctx context.Context, machineID string) (*atp.MachineAction, error)
	// Matches, when set, tells whether a pending action of the same type
	// is this request's (the same file for a quarantine, the same scan
	// type for a scan); nil means any pending action of the type is.
	Matches func(a *atp.MachineAction) bool
}

// A host label or FQDN: letters, digits, hyphens and underscores, dot-separated.
var deviceNameRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$`)

// Check validates the common fields without calling anything: exactly one
// device selector, a comment, a ticket within bounds. Every problem is an
// invalid_request error naming the field. The comment of the answer starts
// with the ticket, once.
func (f Fields) Check() (Request, error) {
	r := Request{DryRun: f.DryRun.Value}
	n := 0
	if f.MachineID != "" {
		n++
		r.Device.By = ByMachineID
		if !atp.ValidMachineID(f.MachineID) {
			return r, envelope.Errorf(envelope.InvalidRequest, "machineId: want the 40 hexadecimal characters of a Defender device ID")
		}
		r.Device.MachineID = strings.ToLower(f.MachineID)
	}
	if f.DeviceName != "" {
		n++
		r.Device.By = ByDeviceName
		name := strings.TrimSpace(f.DeviceName)
		if len(name) > 255 || !deviceNameRe.MatchString(name) {
			return r, envelope.Errorf(envelope.InvalidRequest, "deviceName: want a host name or FQDN (letters, digits, hyphens, dots)")
		}
		r.Device.DeviceName = strings.ToLower(strings.TrimSuffix(name, "."))
	}
	if f.IPAddress != "" {
		n++
		r.Device.By = ByIPAddress
		ip, err := netip.ParseAddr(strings.TrimSpace(f.IPAddress))
		if err != nil || ip.Zone() != "" || ip.IsUnspecified() {
			return r, envelope.Errorf(envelope.InvalidRequest, "ipAddress: want an IPv4 or IPv6 address such as 10.1.2.3")
		}
		r.Device.IP = ip.Unmap()
	}
	if n != 1 {
		return r, envelope.Errorf(envelope.InvalidRequest, "name the device with exactly one of machineId, deviceName or ipAddress (got %d)", n)
	}
	comment := strings.TrimSpace(f.Comment)
	if comment == "" {
		return r, envelope.Errorf(envelope.InvalidRequest, "comment: required; say why (it is recorded in Defender's action history)")
	}
	if err := Text("comment", comment, MaxCommentLength); err != nil {
		return r, err
	}
	ticket := strings.TrimSpace(f.Ticket)
	if err := Text("ticket", ticket, MaxTicketLength); err != nil {
		return r, err
	}
	r.Ticket, r.Comment = ticket, comment
	// The ticket goes first, once: a comment that already starts with it
	// is kept as it is.
	if ticket != "" && !strings.HasPrefix(strings.ToLower(comment), strings.ToLower(ticket)) {
		r.Comment = ticket + ": " + comment
	}
	return r, nil
}

// Text rejects invalid UTF-8, control characters and values longer than max
// characters, naming field.
func Text(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return envelope.Errorf(envelope.InvalidRequest, "%s: not valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > max {
		return envelope.Errorf(envelope.InvalidRequest, "%s: longer than %d characters", field, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return envelope.Errorf(envelope.InvalidRequest, "%s: control characters (such as line breaks) are not allowed", field)
		}
	}
	return nil
}

// NeedsOf is what a token must hold to start an action needing permission
// on a device named by machineId: the same name for applications and users.
func NeedsOf(permission string) auth.Needs {
	return auth.Needs{App: []auth.AnyOf{{permission}}, Delegated: []auth.AnyOf{{permission}}}
}

// NeedsByNameOf adds, to NeedsOf, reading devices: a deviceName or ipAddress
// is looked up first.
func NeedsByNameOf(permission string) auth.Needs {
	return auth.Needs{
		App:       []auth.AnyOf{{permission}, {"Machine.Read.All", "Machine.ReadWrite.All"}},
		Delegated: []auth.AnyOf{{permission}, {"Machine.Read", "Machine.ReadWrite"}},
	}
}
