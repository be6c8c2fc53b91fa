package isolate

import (
	"errors"
	"regexp"
	"testing"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
)

var lowerHex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

// FuzzRequest decodes and checks hostile isolate bodies: it never panics,
// every rejection is an invalid_request error, and an accepted request names
// exactly one valid device selector, a comment and a known isolation type.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		`{"machineId":"ee00000000000000000000000000000000000001","comment":"x","ticket":"INC1"}`,
		`{"deviceName":"finance-ws7.corp.contoso.com","comment":"x","isolationType":"Selective"}`,
		`{"ipAddress":"10.1.2.3","comment":"x","release":true}`,
		`{"ipAddress":"fd00:1:2::3%eth0","comment":"x"}`,
		`{"machineId":"ee00000000000000000000000000000000000001","deviceName":"a","comment":"x"}`,
		`{"machineId":"zz","comment":""}`,
		`{"machineId":"ee00000000000000000000000000000000000001","comment":"x","dryRun":"true","release":"false"}`,
		`{"comment":"x","isolationType":"full"}`, `[]`, `null`, `{`, `{"machineId":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		if err := decode.JSON(body, &r); err != nil {
			requireInvalid(t, body, err)
			return
		}
		c, err := r.check()
		if err != nil {
			requireInvalid(t, body, err)
			return
		}
		n := 0
		switch c.Device.By {
		case action.ByMachineID:
			n++
			if !lowerHex40.MatchString(c.Device.MachineID) {
				t.Errorf("check(%q) accepted machineId %q", body, c.Device.MachineID)
			}
		case action.ByDeviceName:
			n++
			if c.Device.DeviceName == "" || len(c.Device.DeviceName) > 255 {
				t.Errorf("check(%q) accepted deviceName %q", body, c.Device.DeviceName)
			}
		case action.ByIPAddress:
			n++
			if !c.Device.IP.IsValid() || c.Device.IP.Zone() != "" {
				t.Errorf("check(%q) accepted ipAddress %v", body, c.Device.IP)
			}
		}
		if n != 1 || c.Comment == "" {
			t.Errorf("check(%q) = %+v, want one selector and a comment", body, c)
		}
		if !c.Release {
			known := false
			for _, it := range isolationTypes {
				known = known || c.Body["IsolationType"] == string(it)
			}
			if !known {
				t.Errorf("check(%q) accepted isolationType %q", body, c.Body["IsolationType"])
			}
		}
	})
}

func requireInvalid(t *testing.T, body []byte, err error) {
	t.Helper()
	var ce *envelope.Error
	if !errors.As(err, &ce) || ce.Code != envelope.InvalidRequest {
		t.Errorf("decoding %q: error %v, want an invalid_request *envelope.Error", body, err)
	}
}
