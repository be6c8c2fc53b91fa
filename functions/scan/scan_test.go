package scan

import (
	"errors"
	"testing"

	"github.com/mdefn/mdefn/functions/internal/action"
	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
)

const machineID = "ee00000000000000000000000000000000000001"

func TestCheckScanType(t *testing.T) {
	tests := []struct {
		body     string
		want     atp.ScanType
		wantCode envelope.Code
	}{
		{`{"machineId":"` + machineID + `","comment":"c"}`, atp.ScanQuick, ""},
		{`{"machineId":"` + machineID + `","comment":"c","scanType":"full"}`, atp.ScanFull, ""},
		{`{"machineId":"` + machineID + `","comment":"c","scanType":" Quick "}`, atp.ScanQuick, ""},
		{`{"machineId":"` + machineID + `","comment":"c","scanType":"Deep"}`, "", envelope.InvalidRequest},
		{`{"machineId":"` + machineID + `","comment":"c","scanType":5}`, "", envelope.InvalidRequest},
	}
	for _, tt := range tests {
		var r Request
		err := decode.JSON([]byte(tt.body), &r)
		var req action.Request
		var got atp.ScanType
		if err == nil {
			req, got, err = r.check()
		}
		var e *envelope.Error
		switch {
		case tt.wantCode != "":
			if !errors.As(err, &e) || e.Code != tt.wantCode {
				t.Errorf("check(%s) error %v, want %s", tt.body, err, tt.wantCode)
			}
		case err != nil || got != tt.want || req.Body["ScanType"] != string(tt.want):
			t.Errorf("check(%s) = %v, body %v, %v; want %s", tt.body, got, req.Body, err, tt.want)
		}
	}
}

// FuzzRequest: hostile scan bodies never panic; a rejection is
// invalid_request; an accepted one has a known scan type.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{`{"machineId":"` + machineID + `","comment":"c","scanType":"Full"}`, `{"scanType":null}`, `[]`, `{"scanType":"ｆｕｌｌ"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Request
		err := decode.JSON(body, &r)
		var st atp.ScanType
		if err == nil {
			_, st, err = r.check()
		}
		var e *envelope.Error
		if err != nil {
			if !errors.As(err, &e) || e.Code != envelope.InvalidRequest {
				t.Errorf("%q: error %v, want invalid_request", body, err)
			}
			return
		}
		if !st.Valid() {
			t.Errorf("%q: accepted scan type %q", body, st)
		}
	})
}
