// Package faults holds mdefn's reliability suite, in its tests only: the
// upstream fault matrix (every function against Entra, Key Vault, Secrets
// Manager and Defender failing in every way the issue lists), the concurrency
// and throttling tests, the isolation budget storm and the leak canary. All
// of it runs against the embedded simulator (package sim) through the HTTP
// surface that app.Build wires, as a deployed function would serve it.
package faults
