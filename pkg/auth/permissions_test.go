package auth

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheck(t *testing.T) {
	byName := Needs{
		App:       []AnyOf{{"Machine.Isolate"}, {"Machine.Read.All", "Machine.ReadWrite.All"}},
		Delegated: []AnyOf{{"Machine.Isolate"}, {"Machine.Read", "Machine.ReadWrite"}},
	}
	ok := Access{Allowed: true, Missing: []string{}}
	no := func(m ...string) Access { return Access{Missing: m} }
	tests := []struct {
		name   string
		claims *Claims
		needs  Needs
		want   Access
	}{
		{"app with the stronger alternative", &Claims{Roles: []string{"Machine.Isolate", "Machine.ReadWrite.All"}}, byName, ok},
		{"app without roles names the least privileged", &Claims{}, byName, no("Machine.Isolate", "Machine.Read.All")},
		{"app lacks one", &Claims{Roles: []string{"Machine.Isolate"}}, byName, no("Machine.Read.All")},
		{"case does not matter", &Claims{Roles: []string{"machine.isolate", "MACHINE.READ.ALL"}}, byName, ok},
		{"delegated names", &Claims{Scopes: []string{"Machine.Isolate", "Machine.Read"}}, byName, ok},
		{"delegated does not take app names", &Claims{Scopes: []string{"Machine.ReadWrite.All", "user_impersonation"}}, byName, no("Machine.Isolate", "Machine.Read")},
		{"nothing needed", &Claims{}, Needs{}, ok},
		{"an empty alternative is no need", &Claims{}, Needs{App: []AnyOf{{}}}, ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.claims.Check(tt.needs)); diff != "" {
				t.Errorf("Check(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}
