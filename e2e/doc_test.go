// Package e2e drives the built artifacts of mdefn as their platforms run
// them: each Lambda bootstrap under the official AWS Lambda Runtime Interface
// Emulator, and the Azure Functions app folder's executable as the Functions
// host starts a custom handler. Every upstream (Entra ID, Key Vault, the
// managed identity endpoint, Secrets Manager, Defender) is the in-process
// simulator of package sim.
//
// The artifact tests skip unless MDEFN_E2E_DIST names a build output
// directory (`make e2e` builds one for this machine and sets it);
// MDEFN_RIE names the emulator (default: aws-lambda-rie on PATH, then
// $GOPATH/bin). The template test always runs.
package e2e
