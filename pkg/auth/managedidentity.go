//go:build !mdefn_noazure

package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"golang.org/x/oauth2"
)

// managedIdentity adapts azidentity's ManagedIdentityCredential.
type managedIdentity struct {
	cred  *azidentity.ManagedIdentityCredential
	scope string
}

// newManagedIdentity reads the identity endpoint settings (IDENTITY_ENDPOINT,
// IDENTITY_HEADER, ...) now, as azidentity does at construction; it does no
// I/O.
func newManagedIdentity(clientID, audience string, httpClient *http.Client, retry AzureRetryOptions) (*managedIdentity, error) {
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient, Retry: retry}}
	if clientID != "" {
		o.ID = azidentity.ClientID(clientID)
	}
	cred, err := azidentity.NewManagedIdentityCredential(o)
	if err != nil {
		return nil, fmt.Errorf("auth: managed identity: %w", err)
	}
	return &managedIdentity{cred: cred, scope: strings.TrimRight(audience, "/") + "/.default"}, nil
}

func (m *managedIdentity) token(ctx context.Context) (*oauth2.Token, error) {
	at, err := m.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{m.scope}})
	if err != nil {
		return nil, managedIdentityError(err)
	}
	return &oauth2.Token{AccessToken: at.Token, TokenType: "Bearer", Expiry: at.ExpiresOn}, nil
}

// managedIdentityError turns an identity endpoint's error answer into
// *EntraError; other failures (no endpoint, connection) are wrapped.
func managedIdentityError(err error) error {
	var af *azidentity.AuthenticationFailedError
	if !errors.As(err, &af) || af.RawResponse == nil {
		return fmt.Errorf("auth: managed identity: %s", clip(firstLine(err.Error()), 300))
	}
	ee := &EntraError{StatusCode: af.RawResponse.StatusCode, Code: http.StatusText(af.RawResponse.StatusCode)}
	if body, err := runtime.Payload(af.RawResponse); err == nil {
		var v struct {
			Error         any    `json:"error"` // a string, or {code, message}
			Description   string `json:"error_description"`
			Message       string `json:"message"`
			ErrorCodes    []int  `json:"error_codes"`
			CorrelationID string `json:"correlation_id"`
			TraceID       string `json:"trace_id"`
		}
		if json.Unmarshal(body, &v) == nil {
			switch e := v.Error.(type) {
			case string:
				ee.Code = e
			case map[string]any:
				if c, ok := e["code"].(string); ok {
					ee.Code = c
				}
				if m, ok := e["message"].(string); ok && v.Description == "" {
					v.Description = m
				}
			}
			ee.Description = clip(v.Description, 1000)
			if ee.Description == "" {
				ee.Description = clip(v.Message, 1000)
			}
			ee.ErrorCodes, ee.CorrelationID, ee.TraceID = v.ErrorCodes, v.CorrelationID, v.TraceID
		}
	}
	return ee
}
