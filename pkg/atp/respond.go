package atp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// This file holds the response actions beyond isolation: antivirus scan,
// app restriction, investigation package, stop and quarantine, and the
// cancellation of any action.

// ScanType is the kind of Microsoft Defender Antivirus scan.
type ScanType string

// Scan types.
const (
	ScanQuick ScanType = "Quick" // scans the usual malware locations
	ScanFull  ScanType = "Full"  // scans every file on the device
)

// Valid reports whether t is a known scan type.
func (t ScanType) Valid() bool { return t == ScanQuick || t == ScanFull }

// ScanRequest is the body of an antivirus scan request.
type ScanRequest struct {
	Comment  string   `json:"Comment"`  // required
	ScanType ScanType `json:"ScanType"` // empty means Quick
}

// QuarantineRequest is the body of a stop and quarantine request.
type QuarantineRequest struct {
	Comment string `json:"Comment"` // required
	Sha1    string `json:"Sha1"`    // SHA-1 of the file: 40 hexadecimal characters
}

// commentBody is the body of the actions that take only a comment.
type commentBody struct {
	Comment string `json:"Comment"`
}

// ValidSHA1 reports whether s has the form of a SHA-1 file hash (40
// hexadecimal characters).
func ValidSHA1(s string) bool { return isHex40(s) }

// ValidActionID reports whether s has the form of a machine action ID (a
// GUID such as 2e9da30d-27f6-4208-81f2-9cd3d67893ba).
func ValidActionID(s string) bool { return isGUID(s) }

func checkActionID(id string) error {
	if !isGUID(id) {
		return argErr("actionID", "want a GUID")
	}
	return nil
}

// machinePath is the escaped path of a machine's action endpoint.
func machinePath(machineID, verb string) string {
	return "/api/machines/" + url.PathEscape(machineID) + "/" + verb
}

// actionPath is the escaped path of a machine action, or of one of its
// sub-resources when sub is not empty.
func actionPath(actionID, sub string) string {
	p := "/api/machineactions/" + url.PathEscape(actionID)
	if sub != "" {
		p += "/" + sub
	}
	return p
}

// RunAntiVirusScan asks Defender to run a Microsoft Defender Antivirus scan
// on the machine and returns the created action (status Pending, scope the
// scan type). It needs the Machine.Scan permission. If a scan is already
// pending on the device, Defender refuses: see [IsActiveRequestAlreadyExists].
func (c *Client) RunAntiVirusScan(ctx context.Context, machineID string, r ScanRequest) (*MachineAction, error) {
	op := "run antivirus scan on machine " + machineID
	if err := checkMachineID("machineID", machineID); err != nil {
		return nil, fmt.Errorf("atp: run antivirus scan: %w", err)
	}
	if r.ScanType == "" {
		r.ScanType = ScanQuick
	}
	if !r.ScanType.Valid() {
		return nil, fmt.Errorf("atp: %s: %w", op, argErr("ScanType", "unknown scan type %q", r.ScanType))
	}
	if err := checkComment(r.Comment); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	return c.action(ctx, op, machinePath(machineID, "runAntiVirusScan"), r, http.StatusCreated)
}

// RestrictCodeExecution asks Defender to restrict the machine to running
// only applications signed by Microsoft, and returns the created action
// (status Pending). It needs the Machine.RestrictExecution permission.
func (c *Client) RestrictCodeExecution(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.commentAction(ctx, "restrict code execution on machine", machineID, "restrictCodeExecution", comment)
}

// UnrestrictCodeExecution asks Defender to remove the app restriction from
// the machine, and returns the created action (status Pending). It needs
// the Machine.RestrictExecution permission.
func (c *Client) UnrestrictCodeExecution(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.commentAction(ctx, "unrestrict code execution on machine", machineID, "unrestrictCodeExecution", comment)
}

// CollectInvestigationPackage asks Defender to collect an investigation
// package (forensic data) from the machine, and returns the created action
// (status Pending). Once the action has Succeeded, [Client.GetPackageURI]
// returns a download link. It needs the Machine.CollectForensics
// permission. If a collection is already running, Defender refuses with a
// 400.
func (c *Client) CollectInvestigationPackage(ctx context.Context, machineID, comment string) (*MachineAction, error) {
	return c.commentAction(ctx, "collect investigation package from machine", machineID, "collectInvestigationPackage", comment)
}

// StopAndQuarantineFile asks Defender to stop the file with the given SHA-1
// on the machine and quarantine it, and returns the created action (status
// Pending, relatedFileInfo naming the file). It needs the
// Machine.StopAndQuarantine permission.
func (c *Client) StopAndQuarantineFile(ctx context.Context, machineID string, r QuarantineRequest) (*MachineAction, error) {
	op := "stop and quarantine file on machine " + machineID
	if err := checkMachineID("machineID", machineID); err != nil {
		return nil, fmt.Errorf("atp: stop and quarantine file: %w", err)
	}
	if !ValidSHA1(r.Sha1) {
		return nil, fmt.Errorf("atp: %s: %w", op, argErr("Sha1", "want 40 hexadecimal characters"))
	}
	if err := checkComment(r.Comment); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	return c.action(ctx, op, machinePath(machineID, "StopAndQuarantineFile"), r, http.StatusCreated)
}

// commentAction validates and posts an action whose body is only a comment.
func (c *Client) commentAction(ctx context.Context, what, machineID, verb, comment string) (*MachineAction, error) {
	if err := checkMachineID("machineID", machineID); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", what, err)
	}
	op := what + " " + machineID
	if err := checkComment(comment); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	return c.action(ctx, op, machinePath(machineID, verb), commentBody{comment}, http.StatusCreated)
}

// CancelMachineAction asks Defender to cancel a machine action that is
// still Pending or InProgress, and returns the action as cancelled. The
// comment is recorded as its cancellationComment; Defender's reference
// marks it optional, this client requires it so that every cancellation is
// traceable. Defender accepts any one of the action permissions
// (Machine.Isolate, Machine.Scan, Machine.RestrictExecution,
// Machine.CollectForensics, Machine.StopAndQuarantine, Machine.Offboard,
// Machine.LiveResponse). An unknown ID is a 404 ([IsNotFound]).
//
// Like every action, a cancellation is retried only when it provably never
// reached Defender or was throttled.
func (c *Client) CancelMachineAction(ctx context.Context, actionID, comment string) (*MachineAction, error) {
	if err := checkActionID(actionID); err != nil {
		return nil, fmt.Errorf("atp: cancel machine action: %w", err)
	}
	op := "cancel machine action " + actionID
	if err := checkComment(comment); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	return c.action(ctx, op, actionPath(actionID, "cancel"), commentBody{comment}, http.StatusOK)
}

// GetPackageURI returns the download link of the investigation package
// collected by the CollectInvestigationPackage action with the given ID. The
// link is valid for a short time only: download it at once.
//
// The link carries its own credential in its query string: treat it like a
// token, and never log it whole. This client keeps it out of its logs and
// error texts.
//
// Defender answers 404 ([IsNotFound]) while the collection is not complete.
// An answer that is not an absolute https URL is a [*DecodeError]. Defender
// documents this call with its own, much lower, rate limit (2 calls a
// minute, 120 an hour) and the Machine.Read.All or Machine.ReadWrite.All
// application permission, or the Machine.CollectForensics delegated one.
func (c *Client) GetPackageURI(ctx context.Context, actionID string) (string, error) {
	if err := checkActionID(actionID); err != nil {
		return "", fmt.Errorf("atp: get package URI: %w", err)
	}
	op := "get package URI of machine action " + actionID
	cl := &call{op: op, method: http.MethodGet, path: actionPath(actionID, "GetPackageUri")}
	var answer struct {
		Value string `json:"value"`
	}
	if err := c.do(ctx, cl, &answer); err != nil {
		return "", err
	}
	uri, err := packageURI(answer.Value)
	if err != nil {
		return "", fmt.Errorf("atp: %s: %w", op, &DecodeError{StatusCode: http.StatusOK, Method: cl.method, Path: cl.path, Err: err})
	}
	return uri, nil
}

// errNotHTTPS is the decoding failure of a package link that is not an
// absolute https URL. It never quotes the link, which may hold a credential.
var errNotHTTPS = errors.New("the package link is not an absolute https URL")

// packageURI checks a GetPackageUri value and returns the link. Defender's
// documented example wraps the link in a second pair of double quotes
// inside the JSON string; those are dropped.
func packageURI(v string) (string, error) {
	s := strings.TrimSpace(v)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	// url.Parse's error quotes its input: it is dropped, not wrapped.
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errNotHTTPS
	}
	return s, nil
}
