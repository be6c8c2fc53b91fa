package auth

// TEMPORARY (removed when the doctor reads the function registry): the old
// per-function table.

const (
	FunctionAlerts        = "alerts"
	FunctionIsolate       = "isolate"
	FunctionIsolateByName = "isolateByName"
	FunctionTokencheck    = "tokencheck"
)

var legacyNeeds = map[string]Needs{
	FunctionAlerts:        {App: []AnyOf{{"Alert.Read.All", "Alert.ReadWrite.All"}}, Delegated: []AnyOf{{"Alert.Read", "Alert.ReadWrite"}}},
	FunctionIsolate:       {App: []AnyOf{{"Machine.Isolate"}}, Delegated: []AnyOf{{"Machine.Isolate"}}},
	FunctionIsolateByName: {App: []AnyOf{{"Machine.Isolate"}, {"Machine.Read.All", "Machine.ReadWrite.All"}}, Delegated: []AnyOf{{"Machine.Isolate"}, {"Machine.Read", "Machine.ReadWrite"}}},
	FunctionTokencheck:    {},
}

// Permissions is the old table; use Claims.Check.
func Permissions(c *Claims) map[string]Access {
	out := map[string]Access{}
	for k, n := range legacyNeeds {
		out[k] = c.Check(n)
	}
	return out
}
