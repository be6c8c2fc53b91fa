package auth

import "strings"

// AnyOf is a set of permissions any one of which grants what is needed. List
// the least privileged first: it is the one Check names as missing.
type AnyOf []string

// Needs is what an operation requires of a token: every AnyOf in App when the
// token acts as an application (its "roles"), every AnyOf in Delegated when
// it acts for a user (its "scp"). Defender names delegated permissions
// without the ".All" suffix (Alert.Read, Machine.Read, ...).
type Needs struct {
	App       []AnyOf
	Delegated []AnyOf
}

// Access says whether a token allows an operation, and if not which
// permissions it lacks (the least privileged where either of two would do).
type Access struct {
	Allowed bool     `json:"allowed"`
	Missing []string `json:"missing"` // never nil, so it encodes as []
}

// Check reports whether the token's roles (application) or scopes
// (delegated) satisfy n. Permission names compare without regard to case.
func (c *Claims) Check(n Needs) Access {
	needs, have := n.App, c.Roles
	if c.TokenType() == TokenDelegated {
		needs, have = n.Delegated, c.Scopes
	}
	a := Access{Missing: []string{}}
	for _, alt := range needs {
		if len(alt) > 0 && !hasAny(have, alt) {
			a.Missing = append(a.Missing, alt[0])
		}
	}
	a.Allowed = len(a.Missing) == 0
	return a
}

func hasAny(have []string, alt AnyOf) bool {
	for _, h := range have {
		for _, p := range alt {
			if strings.EqualFold(h, p) {
				return true
			}
		}
	}
	return false
}
