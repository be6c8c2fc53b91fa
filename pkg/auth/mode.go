package auth

// Mode is how a TokenSource signs in to Entra.
type Mode string

// The modes.
const (
	// ModeClientSecret is the client credentials grant with a client secret.
	ModeClientSecret Mode = "client-secret"
	// ModeClientCertificate is the client credentials grant with a client
	// assertion signed by a certificate's key.
	ModeClientCertificate Mode = "client-certificate"
	// ModePassword is the resource-owner password grant (delegated: the
	// token acts for the user).
	ModePassword Mode = "password"
	// ModeManagedIdentity is the Azure managed identity of the process; it
	// needs no stored credential.
	ModeManagedIdentity Mode = "managed-identity"
)

// TokenEndpointVersion selects Entra's v1 (resource=) or v2 (scope=) token
// endpoint for the client-secret and client-certificate modes.
type TokenEndpointVersion string

// The versions. Password mode always uses v1, as Microsoft's "on behalf of
// a user" guide does.
const (
	TokenEndpointV1 TokenEndpointVersion = "v1"
	TokenEndpointV2 TokenEndpointVersion = "v2"
)
