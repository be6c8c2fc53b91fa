package action

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
)

var lowerHex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestCheckTicketFirstOnce(t *testing.T) {
	for _, tt := range []struct{ comment, ticket, want string }{
		{"isolate it", "INC1", "INC1: isolate it"},
		{"INC1: isolate it", "INC1", "INC1: isolate it"},
		{"inc1 isolate it", "INC1", "inc1 isolate it"},
		{"isolate it", "", "isolate it"},
		{"  spaced  ", " INC2 ", "INC2: spaced"},
	} {
		r, err := Fields{MachineID: strings.Repeat("a", 40), Comment: tt.comment, Ticket: tt.ticket}.Check()
		if err != nil || r.Comment != tt.want {
			t.Errorf("Check(comment %q, ticket %q) = %q, %v; want %q", tt.comment, tt.ticket, r.Comment, err, tt.want)
		}
	}
}

// FuzzFields: hostile common fields never panic; a rejection is
// invalid_request; an accepted request names exactly one valid device, and
// its comment is valid UTF-8 without control characters.
func FuzzFields(f *testing.F) {
	for _, s := range []string{
		`{"machineId":"EE00000000000000000000000000000000000001","comment":"x","ticket":"INC1"}`,
		`{"deviceName":"ws7.corp.contoso.com.","comment":"x"}`,
		`{"ipAddress":"::ffff:10.1.2.3","comment":"x","dryRun":"yes"}`,
		`{"ipAddress":"fe80::1%eth0","comment":"x"}`,
		`{"comment":"a\u2028b","machineId":"ee00000000000000000000000000000000000001"}`,
		`{"machineId":"","deviceName":"","comment":" "}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fl Fields
		err := decode.JSON(body, &fl)
		var r Request
		if err == nil {
			r, err = fl.Check()
		}
		if err != nil {
			var e *envelope.Error
			if !errors.As(err, &e) || e.Code != envelope.InvalidRequest {
				t.Errorf("%q: error %v, want invalid_request", body, err)
			}
			return
		}
		switch r.Device.By {
		case ByMachineID:
			if !lowerHex40.MatchString(r.Device.MachineID) {
				t.Errorf("%q: accepted machineId %q", body, r.Device.MachineID)
			}
		case ByDeviceName:
			if r.Device.DeviceName == "" || len(r.Device.DeviceName) > 255 || strings.HasSuffix(r.Device.DeviceName, ".") {
				t.Errorf("%q: accepted deviceName %q", body, r.Device.DeviceName)
			}
		case ByIPAddress:
			if !r.Device.IP.IsValid() || r.Device.IP.Zone() != "" || r.Device.IP.Is4In6() {
				t.Errorf("%q: accepted ipAddress %v", body, r.Device.IP)
			}
		default:
			t.Errorf("%q: accepted with no device", body)
		}
		if r.Comment == "" || !utf8.ValidString(r.Comment) || strings.ContainsAny(r.Comment, "\n\r\u2028") {
			t.Errorf("%q: accepted comment %q", body, r.Comment)
		}
	})
}
