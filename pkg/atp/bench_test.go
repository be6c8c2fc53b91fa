package atp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// BenchmarkBuildAlertFilter measures building a filter with every option.
//
//	go test -run '^$' -bench BuildAlertFilter ./pkg/atp
func BenchmarkBuildAlertFilter(b *testing.B) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	o := &ListAlertsOptions{
		Severities: []Severity{SeverityHigh, SeverityMedium, SeverityLow}, Statuses: []AlertStatus{AlertStatusNew, AlertStatusInProgress},
		CreatedFrom: t0, CreatedBefore: t0.Add(time.Hour), UpdatedFrom: t0, MachineID: machineID1, Top: 100,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildAlertFilter(o); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPage is a 10,000-alert Defender answer with evidence.
func benchPage(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"@odata.context":"https://api.security.microsoft.com/api/$metadata#Alerts","value":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		a := alertJSON
		a = a[:len(`{`)] + fmt.Sprintf(`"seq":%d,`, i) + a[len(`{`):]
		buf.WriteString(a)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// BenchmarkStreamAlerts streams a 10,000-alert page (about 30 MB) from an
// httptest server through StreamAlerts; compare with BenchmarkListAlerts,
// which decodes the same page into []Alert.
//
//	go test -run '^$' -bench 'StreamAlerts|ListAlerts' -benchmem ./pkg/atp
func BenchmarkStreamAlerts(b *testing.B) {
	page := benchPage(MaxTop)
	c, _ := newTestClientB(b, page)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		var total int
		n, err := c.StreamAlerts(context.Background(), &ListAlertsOptions{Top: MaxTop, ExpandEvidence: true}, func(raw json.RawMessage) error {
			total += len(raw)
			return nil
		})
		if err != nil || n != MaxTop {
			b.Fatalf("StreamAlerts() = %d, %v", n, err)
		}
	}
}

// BenchmarkListAlerts decodes the same 10,000-alert page into []Alert.
func BenchmarkListAlerts(b *testing.B) {
	page := benchPage(MaxTop)
	c, _ := newTestClientB(b, page)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		as, err := c.ListAlerts(context.Background(), &ListAlertsOptions{Top: MaxTop, ExpandEvidence: true})
		if err != nil || len(as) != MaxTop {
			b.Fatalf("ListAlerts() = %d, %v", len(as), err)
		}
	}
}

func newTestClientB(b *testing.B, page []byte) (*Client, error) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(page) })
	srv := newBenchServer(b, h)
	return NewClient(srv, &fakeTokens{}, &Options{CallsPerMinute: -1, CallsPerHour: -1})
}
