package auth

import (
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/oauth2"
)

// entraError converts x/oauth2's *RetrieveError into *EntraError, keeping
// only the answer (never the request form). Other errors pass through
// wrapped; a *SecretError stays reachable with errors.As.
func entraError(err error) error {
	if err == nil {
		return nil
	}
	var se *SecretError
	if errors.As(err, &se) {
		return err
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Connection failures and deadlines: the text names the URL only.
		return fmt.Errorf("auth: token request: %w", err)
	}
	ee := &EntraError{Code: re.ErrorCode, Description: clip(re.ErrorDescription, 1000)}
	if re.Response != nil {
		ee.StatusCode = re.Response.StatusCode
	}
	var body struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		ErrorCodes    []int  `json:"error_codes"`
		CorrelationID string `json:"correlation_id"`
		TraceID       string `json:"trace_id"`
	}
	if json.Unmarshal(re.Body, &body) == nil {
		ee.ErrorCodes, ee.CorrelationID, ee.TraceID = body.ErrorCodes, body.CorrelationID, body.TraceID
		if ee.Code == "" {
			ee.Code = body.Error
		}
		if ee.Description == "" {
			ee.Description = clip(body.Description, 1000)
		}
	}
	return ee
}
