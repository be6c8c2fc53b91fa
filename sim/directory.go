package sim

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of a simulator started with nil Options. Credentials here are
// fake values that only the simulator accepts.
const (
	DefaultTenantID     = "5f0c3b1e-8a2d-4c7e-9b16-2d4e6f8a0c1e"
	DefaultTenantDomain = "mdefnsim.onmicrosoft.com"
	// DefaultAudience is the Defender API audience (public cloud); the
	// /.default scope form is accepted on the v2 endpoint.
	DefaultAudience = "https://api.securitycenter.microsoft.com"
	// VaultAudience is the Key Vault resource.
	VaultAudience        = "https://vault.azure.net"
	DefaultTokenLifetime = 3599 * time.Second

	// DefaultClientID is a confidential app holding every Defender
	// application role, with secret DefaultClientSecret and vault access.
	DefaultClientID     = "0d3f6a9c-1b2e-4f5a-8c7d-9e0f1a2b3c4d"
	DefaultClientSecret = "sim~Dflt8Q~client.secret-0123456789abcdef"
	// DefaultPublicClientID is a public client (no secret) for the password grant.
	DefaultPublicClientID = "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"

	// DefaultUserUPN / DefaultUserPassword sign in with the password grant and
	// get DelegatedScopes.
	DefaultUserUPN      = "analyst@mdefnsim.onmicrosoft.com"
	DefaultUserPassword = "sim-Analyst-Passw0rd!"

	// DefaultManagedIdentityClientID is the function's system-assigned managed
	// identity: vault access and every Defender application role.
	DefaultManagedIdentityClientID = "2c4e6a8b-0d1f-4a3b-9c5d-7e9f1a3b5c7d"
	DefaultManagedIdentityObjectID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

	// DefaultSecretName is the vault secret holding DefaultClientSecret.
	DefaultSecretName = "mde-client-secret"
	// DefaultAWSSecretID is the Secrets Manager secret holding DefaultClientSecret.
	DefaultAWSSecretID = "mde/client-secret"

	DefaultAWSRegion          = "us-east-1"
	DefaultAWSAccountID       = "123456789012"
	DefaultAWSAccessKeyID     = "AKIASIMULATOR0000001"
	DefaultAWSSecretAccessKey = "sim/secret/access/key/not/a/real/one0000"
)

// ApplicationRoles returns the Defender application roles (WindowsDefenderATP).
func ApplicationRoles() []string {
	return []string{"Alert.Read.All", "Alert.ReadWrite.All", "Machine.Read.All", "Machine.ReadWrite.All", "Machine.Isolate",
		"Machine.Scan", "Machine.RestrictExecution", "Machine.CollectForensics", "Machine.StopAndQuarantine", "Ti.ReadWrite.All"}
}

// DelegatedScopes returns the Defender delegated permissions the default user holds.
func DelegatedScopes() []string {
	return []string{"Alert.Read", "Alert.ReadWrite", "Machine.Read", "Machine.ReadWrite", "Machine.Isolate",
		"Machine.Scan", "Machine.RestrictExecution", "Machine.CollectForensics", "Machine.StopAndQuarantine", "Ti.ReadWrite"}
}

// App is an app registration with its service principal.
type App struct {
	ClientID    string            // application (client) ID; generated when empty
	ObjectID    string            // service principal object ID (oid); generated when empty
	DisplayName string            // optional
	Secret      string            // client secret; "" means none
	Certificate *x509.Certificate // certificate credential for client assertions; nil means none
	Roles       []string          // Defender application roles granted (admin consented)
	Public      bool              // public client: password grant without a secret
	VaultAccess bool              // may read vault secrets with its own token
}

// User is a directory user for the resource-owner password grant.
type User struct {
	UPN         string   // required
	Password    string   // required to sign in
	Scopes      []string // delegated Defender permissions consented for the user
	ObjectID    string   // generated when empty
	DisplayName string   // optional
}

// ManagedIdentity is a managed identity reachable through the identity
// endpoint. Exactly one system-assigned identity exists; AddManagedIdentity
// adds user-assigned ones, selected by client_id, object_id/principal_id or
// mi_res_id.
type ManagedIdentity struct {
	ClientID    string   // generated when empty
	ObjectID    string   // generated when empty
	ResourceID  string   // ARM resource ID; generated when empty
	Roles       []string // Defender application roles
	VaultAccess bool     // may read vault secrets
}

type directory struct {
	apps       map[string]*App // by lower-case client ID
	users      map[string]*User
	identities []*ManagedIdentity // [0] is system-assigned
	vault      map[string]bool    // vault access by lower-case appid
}

func (s *Sim) seed() {
	s.dir = directory{apps: map[string]*App{}, users: map[string]*User{}, vault: map[string]bool{}}
	s.AddApp(App{ClientID: DefaultClientID, DisplayName: "mdefn", Secret: DefaultClientSecret,
		Roles: ApplicationRoles(), VaultAccess: true})
	s.AddApp(App{ClientID: DefaultPublicClientID, DisplayName: "mdefn public client", Public: true})
	s.AddUser(User{UPN: DefaultUserUPN, Password: DefaultUserPassword, Scopes: DelegatedScopes(),
		DisplayName: "SOC Analyst"})
	s.addIdentity(ManagedIdentity{ClientID: DefaultManagedIdentityClientID, ObjectID: DefaultManagedIdentityObjectID,
		Roles: ApplicationRoles(), VaultAccess: true})
	s.SetSecret(DefaultSecretName, DefaultClientSecret)
	s.SetAWSSecret(DefaultAWSSecretID, DefaultClientSecret)
	s.SetAWSAccess(DefaultAWSAccessKeyID, true)
}

// AddApp registers app (replacing one with the same client ID) and returns
// it with generated IDs filled in.
func (s *Sim) AddApp(app App) App {
	if app.ClientID == "" {
		app.ClientID = newGUID()
	}
	if app.ObjectID == "" {
		app.ObjectID = newGUID()
	}
	app.Roles = slices.Clone(app.Roles)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := app
	s.dir.apps[strings.ToLower(app.ClientID)] = &a
	s.dir.vault[strings.ToLower(app.ClientID)] = app.VaultAccess
	return app
}

// RemoveApp deletes an app registration; its tokens stay valid until expiry.
func (s *Sim) RemoveApp(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dir.apps, strings.ToLower(clientID))
}

// SetAppRoles replaces the Defender application roles of an app or a
// managed identity (by client ID). Tokens issued before keep their roles.
func (s *Sim) SetAppRoles(clientID string, roles []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.dir.apps[strings.ToLower(clientID)]; ok {
		a.Roles = slices.Clone(roles)
		return nil
	}
	if mi := s.findIdentityLocked("client_id", clientID); mi != nil {
		mi.Roles = slices.Clone(roles)
		return nil
	}
	return fmt.Errorf("sim: no app or managed identity %q", clientID)
}

// SetVaultAccess grants or denies Key Vault secret reads to the identity
// (app or managed identity) with that client ID (the token's appid).
func (s *Sim) SetVaultAccess(clientID string, allowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dir.vault[strings.ToLower(clientID)] = allowed
}

// AddUser registers a user (replacing one with the same UPN) and returns it
// with generated IDs filled in.
func (s *Sim) AddUser(u User) User {
	if u.ObjectID == "" {
		u.ObjectID = newGUID()
	}
	u.Scopes = slices.Clone(u.Scopes)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := u
	s.dir.users[strings.ToLower(u.UPN)] = &c
	return u
}

// AddManagedIdentity adds a user-assigned managed identity (replacing one
// with the same client ID) and returns it with generated IDs filled in.
func (s *Sim) AddManagedIdentity(mi ManagedIdentity) ManagedIdentity {
	return s.addIdentity(mi)
}

// SystemIdentity returns the system-assigned managed identity.
func (s *Sim) SystemIdentity() ManagedIdentity {
	s.mu.Lock()
	defer s.mu.Unlock()
	mi := *s.dir.identities[0]
	mi.Roles = slices.Clone(mi.Roles)
	mi.VaultAccess = s.dir.vault[strings.ToLower(mi.ClientID)]
	return mi
}

func (s *Sim) addIdentity(mi ManagedIdentity) ManagedIdentity {
	if mi.ClientID == "" {
		mi.ClientID = newGUID()
	}
	if mi.ObjectID == "" {
		mi.ObjectID = newGUID()
	}
	if mi.ResourceID == "" {
		mi.ResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/mdefn/providers/" +
			"Microsoft.ManagedIdentity/userAssignedIdentities/" + mi.ClientID
	}
	mi.Roles = slices.Clone(mi.Roles)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := mi
	replaced := false
	for i, old := range s.dir.identities {
		if i > 0 && strings.EqualFold(old.ClientID, mi.ClientID) {
			s.dir.identities[i] = &c
			replaced = true
		}
	}
	if !replaced {
		s.dir.identities = append(s.dir.identities, &c)
	}
	s.dir.vault[strings.ToLower(mi.ClientID)] = mi.VaultAccess
	return mi
}

// findIdentityLocked finds a managed identity by selector: "" selects the
// system-assigned one; client_id, object_id/principal_id, mi_res_id match.
func (s *Sim) findIdentityLocked(selector, value string) *ManagedIdentity {
	if selector == "" {
		return s.dir.identities[0]
	}
	for _, mi := range s.dir.identities {
		var v string
		switch selector {
		case "client_id":
			v = mi.ClientID
		case "object_id", "principal_id":
			v = mi.ObjectID
		case "mi_res_id", "msi_res_id":
			v = mi.ResourceID
		}
		if v != "" && strings.EqualFold(v, value) {
			return mi
		}
	}
	return nil
}
