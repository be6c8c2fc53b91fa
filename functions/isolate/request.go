package isolate

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
)

// Limits on the free-text fields.
const (
	MaxCommentLength = 1000 // characters of the caller's comment
	MaxTicketLength  = 128  // characters of the ticket reference
)

// Request is an isolate request as callers send it (contract §2).
type Request struct {
	MachineID     string      `json:"machineId,omitempty"`
	DeviceName    string      `json:"deviceName,omitempty"`
	IPAddress     string      `json:"ipAddress,omitempty"`
	Comment       string      `json:"comment"`
	IsolationType string      `json:"isolationType,omitempty"`
	Release       decode.Bool `json:"release"`
	Ticket        string      `json:"ticket,omitempty"`
	DryRun        decode.Bool `json:"dryRun"`
}

// By names how a request identifies its device.
type By string

// The three ways to name a device.
const (
	ByMachineID  By = "machineId"
	ByDeviceName By = "deviceName"
	ByIPAddress  By = "ipAddress"
)

// checked is a validated request.
type checked struct {
	by            By
	machineID     string
	deviceName    string
	ip            netip.Addr
	comment       string // as sent to Defender (ticket first)
	isolationType atp.IsolationType
	release       bool
	ticket        string
	dryRun        bool
}

var (
	// A host label or FQDN: letters, digits, hyphens and underscores, dot-separated.
	deviceNameRe   = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$`)
	isolationTypes = []atp.IsolationType{atp.IsolationFull, atp.IsolationSelective, atp.IsolationUnManagedDevice}
)

// check validates r without calling anything. Every problem is an
// invalid_request error naming the field.
func (r Request) check() (*checked, error) {
	c := &checked{release: r.Release.Value, dryRun: r.DryRun.Value}
	n := 0
	if r.MachineID != "" {
		n++
		c.by = ByMachineID
		if !atp.ValidMachineID(r.MachineID) {
			return nil, envelope.Errorf(envelope.InvalidRequest, "machineId: want the 40 hexadecimal characters of a Defender device ID")
		}
		c.machineID = strings.ToLower(r.MachineID)
	}
	if r.DeviceName != "" {
		n++
		c.by = ByDeviceName
		name := strings.TrimSpace(r.DeviceName)
		if len(name) > 255 || !deviceNameRe.MatchString(name) {
			return nil, envelope.Errorf(envelope.InvalidRequest, "deviceName: want a host name or FQDN (letters, digits, hyphens, dots)")
		}
		c.deviceName = strings.ToLower(strings.TrimSuffix(name, "."))
	}
	if r.IPAddress != "" {
		n++
		c.by = ByIPAddress
		ip, err := netip.ParseAddr(strings.TrimSpace(r.IPAddress))
		if err != nil || ip.Zone() != "" || ip.IsUnspecified() {
			return nil, envelope.Errorf(envelope.InvalidRequest, "ipAddress: want an IPv4 or IPv6 address such as 10.1.2.3")
		}
		c.ip = ip.Unmap()
	}
	if n != 1 {
		return nil, envelope.Errorf(envelope.InvalidRequest, "name the device with exactly one of machineId, deviceName or ipAddress (got %d)", n)
	}
	comment := strings.TrimSpace(r.Comment)
	if comment == "" {
		return nil, envelope.Errorf(envelope.InvalidRequest, "comment: required; say why (it is recorded in Defender's action history)")
	}
	if err := text("comment", comment, MaxCommentLength); err != nil {
		return nil, err
	}
	ticket := strings.TrimSpace(r.Ticket)
	if err := text("ticket", ticket, MaxTicketLength); err != nil {
		return nil, err
	}
	c.ticket = ticket
	c.comment = comment
	// The ticket goes first, once: a comment that already starts with it
	// is kept as it is.
	if ticket != "" && !strings.HasPrefix(strings.ToLower(comment), strings.ToLower(ticket)) {
		c.comment = ticket + ": " + comment
	}
	c.isolationType = atp.IsolationFull
	if r.IsolationType != "" && !c.release {
		found := false
		for _, t := range isolationTypes {
			if strings.EqualFold(string(t), strings.TrimSpace(r.IsolationType)) {
				c.isolationType, found = t, true
			}
		}
		if !found {
			return nil, envelope.Errorf(envelope.InvalidRequest, "isolationType: unknown value %q; use Full, Selective or UnManagedDevice", r.IsolationType)
		}
	}
	return c, nil
}

// key identifies a request for coalescing identical deliveries: everything
// that decides what is sent to Defender.
func (c *checked) key() string {
	return strings.Join([]string{string(c.by), c.machineID, c.deviceName, c.ip.String(), c.comment,
		string(c.isolationType), fmt.Sprint(c.release), fmt.Sprint(c.dryRun)}, "\x00")
}

// text rejects invalid UTF-8, control characters and over-long values.
func text(field, s string, max int) error {
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
