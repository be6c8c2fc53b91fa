package auth

import "strings"

// The functions Permissions reports on.
const (
	FunctionAlerts        = "alerts"
	FunctionIsolate       = "isolate"       // by machineId
	FunctionIsolateByName = "isolateByName" // by deviceName or ipAddress
	FunctionTokencheck    = "tokencheck"
)

// Access says whether a token allows a function, and if not which
// permissions it lacks (the least privileged where either of two would do).
type Access struct {
	Allowed bool     `json:"allowed"`
	Missing []string `json:"missing"` // never nil, so it encodes as []
}

// need is a set of alternatives: any one of them grants; the first is the
// least privileged.
type need []string

var (
	appNeeds = map[string][]need{
		FunctionAlerts:        {{"Alert.Read.All", "Alert.ReadWrite.All"}},
		FunctionIsolate:       {{"Machine.Isolate"}},
		FunctionIsolateByName: {{"Machine.Isolate"}, {"Machine.Read.All", "Machine.ReadWrite.All"}},
		FunctionTokencheck:    nil,
	}
	delegatedNeeds = map[string][]need{
		FunctionAlerts:        {{"Alert.Read", "Alert.ReadWrite"}},
		FunctionIsolate:       {{"Machine.Isolate"}},
		FunctionIsolateByName: {{"Machine.Isolate"}, {"Machine.Read", "Machine.ReadWrite"}},
		FunctionTokencheck:    nil,
	}
)

// Permissions reports, for each of alerts, isolate, isolateByName and
// tokencheck, whether the token's roles (application) or scopes
// (delegated) allow it.
func Permissions(c *Claims) map[string]Access {
	needs, have := appNeeds, c.Roles
	if c.TokenType() == TokenDelegated {
		needs, have = delegatedNeeds, c.Scopes
	}
	out := make(map[string]Access, len(needs))
	for fn, ns := range needs {
		a := Access{Missing: []string{}}
		for _, n := range ns {
			if !hasAny(have, n) {
				a.Missing = append(a.Missing, n[0])
			}
		}
		a.Allowed = len(a.Missing) == 0
		out[fn] = a
	}
	return out
}

func hasAny(have []string, n need) bool {
	for _, h := range have {
		for _, p := range n {
			if strings.EqualFold(h, p) {
				return true
			}
		}
	}
	return false
}
