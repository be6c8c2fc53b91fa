// Package atp is a Go client for the Microsoft Defender for Endpoint API
// (formerly "Microsoft Defender ATP"): alerts, machines and machine actions:
// network isolation, antivirus scans, app restriction, investigation
// packages, stop and quarantine of a file, and the cancellation of any of
// them.
//
// # Client
//
// Build one [Client] per process with [NewClient] and reuse it; it is safe
// for concurrent use. The base URL is the API host, for example
// https://api.security.microsoft.com or a geo host such as
// https://eu.api.security.microsoft.com; request paths are /api/....
// Tokens come from an [oauth2.TokenSource] whose tokens carry the Defender
// audience (https://api.securitycenter.microsoft.com). If the source also
// implements [ContextTokenSource], token acquisition honours each call's
// context; if it implements [Invalidator], a Defender 401 drops the cached
// token and the request is sent once more with a fresh one (that re-send
// waits for the call budget like any other call, and is not a retry).
//
// # Errors
//
// Every non-2xx answer from Defender is a [*ResponseError], read with
// [errors.As]. Throttling that the client gives up on (its own call budget,
// or a Defender 429 whose Retry-After outlasts the context's deadline) is a
// [*RateLimitError], which wraps the Defender [*ResponseError] when there was
// one. A 2xx answer whose JSON cannot be decoded is a [*DecodeError].
// Arguments rejected before any call is made are [*ArgumentError]s. A failure
// of the token source is wrapped as "atp: ...: token: <cause>" and matches
// [ErrToken] with [errors.Is]; the cause stays reachable with errors.As.
// Error strings are not a contract and never hold a token or a package
// download link.
//
// # Retries and budget
//
// Reads (GET) are retried on 429 (honouring Retry-After), 5xx and connection
// failures with jittered exponential backoff. Actions (every POST: isolate,
// unisolate, antivirus scan, code restriction, investigation package, stop
// and quarantine, cancel) are retried only on 429 and on failures where the
// request provably never reached Defender (DNS failure, connection
// refused): a 5xx or a connection reset after the request was written may
// mean the action was created. A retried action that Defender answers with
// 400 ActiveRequestAlreadyExists ([IsActiveRequestAlreadyExists]) may be
// the first request's success: look the pending action up with
// [Client.ListMachineActions]. No retry ever sleeps past the context's
// deadline.
//
// Defender allows 100 calls per minute and 1,500 per hour per application
// (GetPackageUri: 2 per minute and 120 per hour).
// The client keeps its own budget (see [Options.CallsPerMinute]) so one
// process stays under those limits; it cannot see other processes.
//
// # OData
//
// Filters are built with [BuildAlertFilter] and friends; string literals go
// through [ODataString], which doubles single quotes so no input can change
// a filter's structure.
package atp
