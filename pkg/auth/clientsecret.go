package auth

import (
	"context"
	"net/url"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// clientSecret runs the client credentials grant with the current secret.
func (e *entra) clientSecret(ctx context.Context) (*oauth2.Token, error) {
	cred, err := e.credential(ctx)
	if err != nil {
		return nil, err
	}
	cc := e.clientCredentials(cred)
	cc.ClientSecret = cred.ClientSecret
	return e.done(cc.Token(e.ctx(ctx)))
}

// clientCredentials returns the grant's configuration for cred's tenant and
// client, without the client authentication.
func (e *entra) clientCredentials(cred *Credential) *clientcredentials.Config {
	v := e.version
	cc := &clientcredentials.Config{
		ClientID:       cred.ClientID,
		TokenURL:       e.tokenURL(cred.TenantID, v),
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: url.Values{},
	}
	if v == TokenEndpointV1 {
		cc.EndpointParams.Set("resource", e.audience)
	} else {
		cc.Scopes = []string{e.scope()}
	}
	return cc
}
