package alerts

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions/internal/decode"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
)

var fuzzMachineID = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// FuzzRequest decodes hostile alerts requests, as a query string and as a
// JSON body: it never panics, every rejection is an invalid_request error,
// and accepted options hold only valid values.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct{ query, body string }{
		{"severity=High,Medium&status=New&since=24h&top=100&skip=0&evidence=true", `{"severity":["High"],"status":"New","since":"7d","top":2}`},
		{"machineId=ee00000000000000000000000000000000000001&updatedSince=2026-01-02T03:04:05Z", `{"machineId":"ee00000000000000000000000000000000000001","evidence":"true","top":"5"}`},
		{"top=0&skip=-1", `{"top":10001}`},
		{"severity=High&severity=Low&code=abc", `{"severity":"Bogus"}`},
		{"since=9999999999h", `{"since":"-5d","skip":1e40}`},
		{"%zz=1", `[`},
	} {
		f.Add(seed.query, []byte(seed.body))
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		if q, err := url.ParseQuery(query); err == nil {
			r, err := ParseQuery(q)
			checkAccepted(t, "query "+query, r, err, now)
		}
		var r Request
		err := decode.JSON(body, &r)
		checkAccepted(t, "body "+string(body), r, err, now)
	})
}

func checkAccepted(t *testing.T, input string, r Request, err error, now time.Time) {
	t.Helper()
	var o *atp.ListAlertsOptions
	if err == nil {
		o, err = r.Options(now)
	}
	if err != nil {
		var ce *envelope.Error
		if !errors.As(err, &ce) || ce.Code != envelope.InvalidRequest {
			t.Errorf("%s: error %v, want an invalid_request *envelope.Error", input, err)
		}
		return
	}
	if o.Top < 1 || o.Top > 10000 || o.Skip < 0 {
		t.Errorf("%s: accepted top %d skip %d", input, o.Top, o.Skip)
	}
	if o.MachineID != "" && !fuzzMachineID.MatchString(o.MachineID) {
		t.Errorf("%s: accepted machineId %q", input, o.MachineID)
	}
	for _, s := range o.Severities {
		if !slices.Contains([]atp.Severity{"Informational", "Low", "Medium", "High"}, s) {
			t.Errorf("%s: accepted severity %q", input, s)
		}
	}
	for _, s := range o.Statuses {
		if !slices.Contains([]atp.AlertStatus{"New", "InProgress", "Resolved"}, s) {
			t.Errorf("%s: accepted status %q", input, s)
		}
	}
	if _, err := atp.BuildAlertFilter(o); err != nil {
		t.Errorf("%s: accepted options the filter builder refuses: %v", input, err)
	}
}
