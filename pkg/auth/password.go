package auth

import (
	"context"
	"net/url"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// password runs the resource-owner password grant on the v1 endpoint, as
// Microsoft's "Access Microsoft Defender for Endpoint APIs on behalf of a
// user" guide does: resource, client_id, grant_type=password, username,
// password, and client_secret only when the secret's JSON has one
// (confidential client). The token is delegated (scp).
func (e *entra) password(ctx context.Context) (*oauth2.Token, error) {
	cred, err := e.credential(ctx)
	if err != nil {
		return nil, err
	}
	cc := &clientcredentials.Config{
		ClientID:     cred.ClientID,
		ClientSecret: cred.ClientSecret, // sent only when not empty
		TokenURL:     e.tokenURL(cred.TenantID, TokenEndpointV1),
		AuthStyle:    oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			// clientcredentials lets grant_type be overridden.
			"grant_type": {"password"},
			"resource":   {e.audience},
			"username":   {cred.Username},
			"password":   {cred.Password},
		},
	}
	return e.done(cc.Token(e.ctx(ctx)))
}
