package atp

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// IndicatorType is the kind of value an indicator (a custom IoC) matches.
type IndicatorType string

// The indicator types of Defender's "Submit or Update Indicator" API.
const (
	IndicatorFileSha1              IndicatorType = "FileSha1"
	IndicatorFileSha256            IndicatorType = "FileSha256"
	IndicatorFileMd5               IndicatorType = "FileMd5"
	IndicatorCertificateThumbprint IndicatorType = "CertificateThumbprint"
	IndicatorIPAddress             IndicatorType = "IpAddress"
	IndicatorDomainName            IndicatorType = "DomainName"
	IndicatorURL                   IndicatorType = "Url"
)

// IndicatorTypes lists the documented indicator types.
func IndicatorTypes() []IndicatorType {
	return []IndicatorType{IndicatorFileSha1, IndicatorFileSha256, IndicatorFileMd5, IndicatorCertificateThumbprint,
		IndicatorIPAddress, IndicatorDomainName, IndicatorURL}
}

// IndicatorAction is what Defender does when an indicator matches.
type IndicatorAction string

// The documented indicator actions.
const (
	IndicatorAlert             IndicatorAction = "Alert"
	IndicatorWarn              IndicatorAction = "Warn"
	IndicatorBlock             IndicatorAction = "Block"
	IndicatorAudit             IndicatorAction = "Audit"
	IndicatorBlockAndRemediate IndicatorAction = "BlockAndRemediate"
	IndicatorAlertAndBlock     IndicatorAction = "AlertAndBlock"
	IndicatorAllowed           IndicatorAction = "Allowed"
)

// IndicatorActions lists the documented indicator actions.
func IndicatorActions() []IndicatorAction {
	return []IndicatorAction{IndicatorAlert, IndicatorWarn, IndicatorBlock, IndicatorAudit, IndicatorBlockAndRemediate,
		IndicatorAlertAndBlock, IndicatorAllowed}
}

// Blocks reports whether the action stops what the indicator matches
// (Block, BlockAndRemediate, AlertAndBlock) or puts a warning in its way
// (Warn).
func (a IndicatorAction) Blocks() bool {
	switch a {
	case IndicatorBlock, IndicatorBlockAndRemediate, IndicatorAlertAndBlock, IndicatorWarn:
		return true
	}
	return false
}

// MaxIndicatorsPerImport is the batch limit of POST /api/indicators/import.
const MaxIndicatorsPerImport = 500

// Indicator is a Defender indicator. ID is empty in a submission.
type Indicator struct {
	ID                 string          `json:"id,omitempty"`
	IndicatorValue     string          `json:"indicatorValue"`
	IndicatorType      IndicatorType   `json:"indicatorType"`
	Action             IndicatorAction `json:"action"`
	Title              string          `json:"title"`
	Description        string          `json:"description"`
	Severity           string          `json:"severity,omitempty"` // Informational, Low, Medium, High
	ExpirationTime     *time.Time      `json:"expirationTime,omitempty"`
	RecommendedActions string          `json:"recommendedActions,omitempty"`
	RBACGroupNames     []string        `json:"rbacGroupNames,omitempty"`
	GenerateAlert      *bool           `json:"generateAlert,omitempty"`
}

// UnmarshalJSON accepts Defender's numeric or string id.
func (i *Indicator) UnmarshalJSON(b []byte) error {
	type plain Indicator
	var w struct {
		plain
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*i = Indicator(w.plain)
	i.ID = strings.Trim(string(w.ID), `"`)
	if i.ID == "null" {
		i.ID = ""
	}
	return nil
}

var domainRe = regexp.MustCompile(`^(?i)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$`)

// ValidIndicatorValue checks v against what type t matches: the hex length
// of a hash or thumbprint, an IP address that parses, a domain name, an
// absolute http(s) URL.
func ValidIndicatorValue(t IndicatorType, v string) error {
	hexOf := func(n int) error {
		if len(v) != n {
			return argErr("indicatorValue", "a %s is %d hexadecimal characters", t, n)
		}
		if _, err := hex.DecodeString(v); err != nil {
			return argErr("indicatorValue", "a %s is hexadecimal", t)
		}
		return nil
	}
	switch t {
	case IndicatorFileSha1, IndicatorCertificateThumbprint:
		return hexOf(40)
	case IndicatorFileSha256:
		return hexOf(64)
	case IndicatorFileMd5:
		return hexOf(32)
	case IndicatorIPAddress:
		if ip, err := netip.ParseAddr(v); err != nil || ip.Zone() != "" {
			return argErr("indicatorValue", "not an IPv4 or IPv6 address")
		}
		return nil
	case IndicatorDomainName:
		if len(v) > 253 || !domainRe.MatchString(v) {
			return argErr("indicatorValue", "not a domain name such as evil.example.com")
		}
		return nil
	case IndicatorURL:
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2048 {
			return argErr("indicatorValue", "not an absolute http or https URL")
		}
		return nil
	}
	return argErr("indicatorType", "unknown type %q", t)
}

func (i *Indicator) check() error {
	if err := ValidIndicatorValue(i.IndicatorType, i.IndicatorValue); err != nil {
		return err
	}
	ok := false
	for _, a := range IndicatorActions() {
		ok = ok || a == i.Action
	}
	if !ok {
		return argErr("action", "unknown action %q", i.Action)
	}
	if strings.TrimSpace(i.Title) == "" || strings.TrimSpace(i.Description) == "" {
		return argErr("title", "an indicator needs a title and a description")
	}
	return nil
}

// SubmitIndicator creates an indicator, or updates the one Defender has
// for the same value and type, with POST /api/indicators. It needs the
// Ti.ReadWrite or Ti.ReadWrite.All application permission (delegated:
// Ti.ReadWrite). Like an action, it is retried only on 429 and on
// failures that prove it never left.
func (c *Client) SubmitIndicator(ctx context.Context, in Indicator) (*Indicator, error) {
	op := "submit indicator"
	in.ID = ""
	if err := in.check(); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	cl := &call{op: op, method: http.MethodPost, path: "/api/indicators", body: b}
	var out Indicator
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	if out.ID == "" {
		return nil, fmt.Errorf("atp: %s: %w", op, &DecodeError{StatusCode: http.StatusOK, Method: cl.method, Path: cl.path,
			Err: errors.New("the answer names no indicator")})
	}
	return &out, nil
}

// ImportResult is the outcome of one indicator of an import.
type ImportResult struct {
	ID            string `json:"id"`
	Indicator     string `json:"indicator"`
	IsFailed      bool   `json:"isFailed"`
	FailureReason string `json:"failureReason"`
}

// UnmarshalJSON accepts Defender's numeric or string id.
func (r *ImportResult) UnmarshalJSON(b []byte) error {
	type plain ImportResult
	var w struct {
		plain
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = ImportResult(w.plain)
	if s := strings.Trim(string(w.ID), `"`); s != "null" {
		r.ID = s
	}
	return nil
}

// ImportIndicators submits up to MaxIndicatorsPerImport indicators in one
// call (POST /api/indicators/import) and returns one result each, in order.
func (c *Client) ImportIndicators(ctx context.Context, in []Indicator) ([]ImportResult, error) {
	op := "import indicators"
	if len(in) == 0 || len(in) > MaxIndicatorsPerImport {
		return nil, fmt.Errorf("atp: %s: %w", op, argErr("indicators", "want 1 to %d", MaxIndicatorsPerImport))
	}
	batch := make([]Indicator, len(in))
	for i := range in {
		batch[i] = in[i]
		batch[i].ID = ""
		if err := batch[i].check(); err != nil {
			return nil, fmt.Errorf("atp: %s: indicator %d: %w", op, i, err)
		}
	}
	b, err := json.Marshal(map[string]any{"Indicators": batch})
	if err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	cl := &call{op: op, method: http.MethodPost, path: "/api/indicators/import", body: b}
	var out struct {
		Value []ImportResult `json:"value"`
	}
	if err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	if len(out.Value) != len(in) {
		return nil, fmt.Errorf("atp: %s: %w", op, &DecodeError{StatusCode: http.StatusOK, Method: cl.method, Path: cl.path,
			Err: fmt.Errorf("%d results for %d indicators", len(out.Value), len(in))})
	}
	return out.Value, nil
}

// DeleteIndicator deletes the indicator with id (DELETE
// /api/indicators/{id}). An unknown ID is a 404 ([IsNotFound]).
func (c *Client) DeleteIndicator(ctx context.Context, id string) error {
	if id == "" || len(id) > 64 || strings.Trim(id, "0123456789") != "" {
		return fmt.Errorf("atp: delete indicator: %w", argErr("id", "want the indicator's numeric ID"))
	}
	return c.do(ctx, &call{op: "delete indicator " + id, method: http.MethodDelete, path: "/api/indicators/" + id}, nil)
}
