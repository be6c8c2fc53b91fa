package platform

import (
	"testing"

	"github.com/mdefn/mdefn/internal/envelope"
)

func TestClassify(t *testing.T) {
	permanent := []envelope.Code{envelope.IsolationBudgetExceeded}
	tests := []struct {
		status int
		code   string
		want   Outcome
	}{
		{200, "", Success},
		{201, "", Success},
		{204, "", Success},
		{400, "invalid_request", Permanent},
		{401, "unauthorized", Permanent},
		{403, "protected_device", Permanent},
		{404, "not_found", Permanent},
		{409, "ambiguous_device", Permanent},
		{413, "payload_too_large", Permanent},
		{429, "throttled", Retryable},
		{429, "isolation_budget_exceeded", Permanent},
		{500, "", Retryable},
		{502, "upstream_error", Retryable},
		{502, "token_acquisition_failed", Retryable},
		{502, "secret_unavailable", Retryable},
		{504, "upstream_timeout", Retryable},
		{503, "isolation_budget_exceeded", Permanent},
		{301, "", Permanent},
		{0, "", Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.status, envelope.Code(tt.code), permanent); got != tt.want {
			t.Errorf("Classify(%d, %q) = %v, want %v", tt.status, tt.code, got, tt.want)
		}
	}
}

func TestClassifyWithoutPermanentCodes(t *testing.T) {
	if got := Classify(429, envelope.IsolationBudgetExceeded, nil); got != Retryable {
		t.Errorf("Classify(429, isolation_budget_exceeded, nil) = %v, want retryable: only the App's list makes a code permanent", got)
	}
}
