package decode

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/internal/envelope"
)

func TestSince(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"90m", now.Add(-90 * time.Minute), true},
		{"36h", now.Add(-36 * time.Hour), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"1d12h", now.Add(-36 * time.Hour), true},
		{"0.5d", now.Add(-12 * time.Hour), true},
		{"2026-11-01T00:00:00Z", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), true},
		{"2026-11-01T02:00:00+02:00", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), true},
		{"", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"-5h", time.Time{}, false},
		{"7days", time.Time{}, false},
		{"99999999d", time.Time{}, false},
		{"2026-11-01", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := Since("since", tt.in, now)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("Since(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		var ce *envelope.Error
		if err != nil && (!errors.As(err, &ce) || ce.Code != envelope.InvalidRequest) {
			t.Errorf("Since(%q) error %v is not invalid_request", tt.in, err)
		}
	}
}

func TestJSON(t *testing.T) {
	type req struct {
		List StringList `json:"list"`
		N    Int        `json:"n"`
		B    Bool       `json:"b"`
		S    string     `json:"s"`
	}
	tests := []struct {
		body string
		want req
		ok   bool
	}{
		{`{"list":["a"," b ",""],"n":3,"b":true}`, req{List: StringList{"a", "b"}, N: Int{3, true}, B: Bool{true, true}}, true},
		{`{"list":"a, b","n":"7","b":"false"}`, req{List: StringList{"a", "b"}, N: Int{7, true}, B: Bool{false, true}}, true},
		{`{"list":null,"n":null}`, req{}, true},
		{``, req{}, true},
		{`{"n":1.5}`, req{}, false},
		{`{"n":"x"}`, req{}, false},
		{`{"b":"maybe"}`, req{}, false},
		{`{"list":[1]}`, req{}, false},
		{`{"s":1}`, req{}, false},
		{`{"other":1}`, req{}, false},
		{`{} {}`, req{}, false},
		{`[1]`, req{}, false},
		{`{`, req{}, false},
	}
	for _, tt := range tests {
		var got req
		err := JSON([]byte(tt.body), &got)
		if (err == nil) != tt.ok {
			t.Errorf("JSON(%s) error = %v, want ok %v", tt.body, err, tt.ok)
			continue
		}
		var ce *envelope.Error
		if err != nil && (!errors.As(err, &ce) || ce.Code != envelope.InvalidRequest || ce.Message == "") {
			t.Errorf("JSON(%s) error %v is not a described invalid_request", tt.body, err)
		}
		if tt.ok {
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("JSON(%s) (-want +got):\n%s", tt.body, diff)
			}
		}
	}
}

// TestJSONNamesTheField: a value refused by a field's own decoder (Bool,
// Int, StringList) is reported with the field's JSON name, embedded structs
// included.
func TestJSONNamesTheField(t *testing.T) {
	type inner struct {
		Flag Bool `json:"dryRun"`
	}
	type req struct {
		inner
		Top  Int        `json:"top"`
		List StringList `json:"severity"`
	}
	for body, want := range map[string]string{
		`{"dryRun":"maybe"}`: `field "dryRun": want true or false`,
		`{"top":"ten"}`:      `field "top": want a whole number`,
		`{"severity":5}`:     `field "severity": want a string or an array of strings`,
		`{"Top":"x"}`:        `field "Top": want a whole number`,
	} {
		var r req
		err := JSON([]byte(body), &r)
		var e *envelope.Error
		if !errors.As(err, &e) || e.Code != envelope.InvalidRequest || e.Message != want {
			t.Errorf("JSON(%s) = %v, want invalid_request %q", body, err, want)
		}
	}
}
