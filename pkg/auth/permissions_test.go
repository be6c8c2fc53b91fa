package auth

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPermissions(t *testing.T) {
	ok := Access{Allowed: true, Missing: []string{}}
	no := func(m ...string) Access { return Access{Missing: m} }
	tests := []struct {
		name   string
		claims *Claims
		want   map[string]Access
	}{
		{"app with everything", &Claims{Roles: []string{"Alert.ReadWrite.All", "Machine.Isolate", "Machine.ReadWrite.All"}},
			map[string]Access{"alerts": ok, "isolate": ok, "isolateByName": ok, "tokencheck": ok}},
		{"app without roles", &Claims{},
			map[string]Access{"alerts": no("Alert.Read.All"), "isolate": no("Machine.Isolate"),
				"isolateByName": no("Machine.Isolate", "Machine.Read.All"), "tokencheck": ok}},
		{"app isolate only", &Claims{Roles: []string{"Machine.Isolate"}},
			map[string]Access{"alerts": no("Alert.Read.All"), "isolate": ok,
				"isolateByName": no("Machine.Read.All"), "tokencheck": ok}},
		{"app read only", &Claims{Roles: []string{"Alert.Read.All", "Machine.Read.All"}},
			map[string]Access{"alerts": ok, "isolate": no("Machine.Isolate"),
				"isolateByName": no("Machine.Isolate"), "tokencheck": ok}},
		{"delegated names", &Claims{Scopes: []string{"Alert.Read", "Machine.Isolate", "Machine.Read"}},
			map[string]Access{"alerts": ok, "isolate": ok, "isolateByName": ok, "tokencheck": ok}},
		{"delegated does not take app names", &Claims{Scopes: []string{"Alert.Read.All", "Machine.ReadWrite.All", "user_impersonation"}},
			map[string]Access{"alerts": no("Alert.Read"), "isolate": no("Machine.Isolate"),
				"isolateByName": no("Machine.Isolate", "Machine.Read"), "tokencheck": ok}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Permissions(tt.claims)); diff != "" {
				t.Errorf("Permissions(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}
