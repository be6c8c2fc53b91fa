package isolate

import (
	"testing"

	"github.com/mdefn/mdefn/functions/internal/decode"
)

// BenchmarkDecodeRequest decodes and checks isolate request bodies: by
// machine ID, and by device name with the tolerant forms (a boolean as a
// string) a queue delivery may carry.
//
//	go test -run '^$' -bench . -benchmem ./functions/isolate
func BenchmarkDecodeRequest(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"machineId", `{"machineId":"1e5bc9d7e413ddd7902c2932e418702b84d0cc07","comment":"Ransomware on host","ticket":"INC0012345"}`},
		{"deviceName", `{"deviceName":"ws-0042.contoso.local","comment":"cleared by IR","isolationType":"Selective","release":"true","dryRun":"false"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			body := []byte(tc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var r Request
				if err := decode.JSON(body, &r); err != nil {
					b.Fatal(err)
				}
				if _, err := r.check(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
