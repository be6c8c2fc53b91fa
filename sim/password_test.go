package sim

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// passwordConfig is the resource-owner password grant through x/oauth2
// (clientcredentials with grant_type overridden), as pkg/auth does it.
func passwordConfig(s *Sim, clientID, secret, user, password string) clientcredentials.Config {
	return clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: s.TokenURLv1(),
		AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"grant_type": {"password"}, "resource": {DefaultAudience},
			"username": {user}, "password": {password}}}
}

func TestPasswordGrant(t *testing.T) {
	s := newSim(t, nil)
	tests := []struct {
		name    string
		cfg     clientcredentials.Config
		wantACR string
	}{
		{"public client", passwordConfig(s, DefaultPublicClientID, "", DefaultUserUPN, DefaultUserPassword), "0"},
		{"confidential client", passwordConfig(s, DefaultClientID, DefaultClientSecret, DefaultUserUPN, DefaultUserPassword), "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.cfg.Token(s.ctx())
			if err != nil {
				t.Fatalf("Token() error: %v", err)
			}
			c := parseClaims(t, tok.AccessToken)
			got := map[string]any{"scp": c["scp"], "upn": c["upn"], "unique_name": c["unique_name"], "appidacr": c["appidacr"],
				"roles": c["roles"], "aud": c["aud"]}
			want := map[string]any{"scp": strings.Join(DelegatedScopes(), " "),
				"upn": DefaultUserUPN, "unique_name": DefaultUserUPN, "appidacr": tt.wantACR, "roles": nil, "aud": DefaultAudience}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("delegated token claims mismatch (-want +got):\n%s", diff)
			}
			if got := tok.Extra("scope"); got != want["scp"] {
				t.Errorf("answer scope = %v, want %v", got, want["scp"])
			}
		})
	}

	v2 := passwordConfig(s, DefaultPublicClientID, "", DefaultUserUPN, DefaultUserPassword)
	v2.TokenURL, v2.Scopes = s.TokenURL(), []string{DefaultAudience + "/Alert.Read", "offline_access"}
	v2.EndpointParams.Del("resource")
	if tok, err := v2.Token(s.ctx()); err != nil {
		t.Errorf("v2 password grant error: %v", err)
	} else if aud := parseClaims(t, tok.AccessToken)["aud"]; aud != DefaultAudience {
		t.Errorf("v2 password grant aud = %v, want %s", aud, DefaultAudience)
	}
}

func TestPasswordGrantErrors(t *testing.T) {
	s := newSim(t, nil)
	tests := []struct {
		name      string
		cfg       clientcredentials.Config
		wantError string
		wantCode  int
	}{
		{"bad password", passwordConfig(s, DefaultPublicClientID, "", DefaultUserUPN, "wrong"), "invalid_grant", 50126},
		{"unknown user", passwordConfig(s, DefaultPublicClientID, "", "nobody@"+DefaultTenantDomain, "x"), "invalid_grant", 50034},
		{"confidential without secret", passwordConfig(s, DefaultClientID, "", DefaultUserUPN, DefaultUserPassword), "invalid_client", 7000218},
		{"confidential bad secret", passwordConfig(s, DefaultClientID, "nope", DefaultUserUPN, DefaultUserPassword), "invalid_client", 7000215},
		{"unknown client", passwordConfig(s, "99999999-9999-4999-8999-999999999999", "", DefaultUserUPN, DefaultUserPassword),
			"unauthorized_client", 700016},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Token(s.ctx())
			e := asEntraError(t, err)
			if e.Error != tt.wantError || !cmp.Equal(e.ErrorCodes, []int{tt.wantCode}) {
				t.Errorf("Token() error = %s %v, want %s [%d]", e.Error, e.ErrorCodes, tt.wantError, tt.wantCode)
			}
		})
	}
}
