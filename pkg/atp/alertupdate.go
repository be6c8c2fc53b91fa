package atp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// Classification is an analyst's classification of an alert.
type Classification string

// The classifications Defender's "Update alert" API documents.
const (
	ClassificationTruePositive                  Classification = "TruePositive"
	ClassificationInformationalExpectedActivity Classification = "InformationalExpectedActivity"
	ClassificationFalsePositive                 Classification = "FalsePositive"
)

// Determination is what an alert turned out to be, within its
// classification.
type Determination string

// The determinations Defender's "Update alert" API documents. Other is
// allowed with every classification.
const (
	DeterminationMultiStagedAttack         Determination = "MultiStagedAttack"
	DeterminationMaliciousUserActivity     Determination = "MaliciousUserActivity"
	DeterminationCompromisedUser           Determination = "CompromisedUser"
	DeterminationMalware                   Determination = "Malware"
	DeterminationPhishing                  Determination = "Phishing"
	DeterminationUnwantedSoftware          Determination = "UnwantedSoftware"
	DeterminationSecurityTesting           Determination = "SecurityTesting"
	DeterminationLineOfBusinessApplication Determination = "LineOfBusinessApplication"
	DeterminationConfirmedActivity         Determination = "ConfirmedActivity"
	DeterminationNotMalicious              Determination = "NotMalicious"
	DeterminationInsufficientData          Determination = "InsufficientData"
	DeterminationOther                     Determination = "Other"
)

// Classifications lists the documented classifications.
func Classifications() []Classification {
	return []Classification{ClassificationTruePositive, ClassificationInformationalExpectedActivity, ClassificationFalsePositive}
}

// Determinations lists the determinations Defender allows with c (nil for
// an unknown classification).
func (c Classification) Determinations() []Determination {
	switch c {
	case ClassificationTruePositive:
		return []Determination{DeterminationMultiStagedAttack, DeterminationMaliciousUserActivity, DeterminationCompromisedUser,
			DeterminationMalware, DeterminationPhishing, DeterminationUnwantedSoftware, DeterminationOther}
	case ClassificationInformationalExpectedActivity:
		return []Determination{DeterminationSecurityTesting, DeterminationLineOfBusinessApplication, DeterminationConfirmedActivity, DeterminationOther}
	case ClassificationFalsePositive:
		return []Determination{DeterminationNotMalicious, DeterminationInsufficientData, DeterminationOther}
	}
	return nil
}

// Valid reports whether c is a documented classification.
func (c Classification) Valid() bool { return c.Determinations() != nil }

// Allows reports whether d is a determination Defender accepts with c.
func (c Classification) Allows(d Determination) bool { return slices.Contains(c.Determinations(), d) }

// AlertUpdate is a PATCH of an alert: the zero value of a field leaves the
// alert's value as it is. Comment, when set, is added to the alert's
// comments.
type AlertUpdate struct {
	Status         AlertStatus    `json:"status,omitempty"`
	AssignedTo     string         `json:"assignedTo,omitempty"`
	Classification Classification `json:"classification,omitempty"`
	Determination  Determination  `json:"determination,omitempty"`
	Comment        string         `json:"comment,omitempty"`
}

// check validates u without calling anything: known values, a
// determination that the classification allows, a comment within bounds.
func (u AlertUpdate) check() error {
	if u.Status != "" && !u.Status.Valid() {
		return argErr("Status", "want New, InProgress or Resolved")
	}
	if u.Classification != "" && !u.Classification.Valid() {
		return argErr("Classification", "want TruePositive, InformationalExpectedActivity or FalsePositive")
	}
	if u.Determination != "" {
		if u.Classification == "" {
			return argErr("Determination", "a determination needs its classification")
		}
		if !u.Classification.Allows(u.Determination) {
			return argErr("Determination", "%s allows %v", u.Classification, u.Classification.Determinations())
		}
	}
	if len(u.AssignedTo) > 256 {
		return argErr("AssignedTo", "longer than 256 characters")
	}
	if u.Comment != "" {
		if err := checkComment(u.Comment); err != nil {
			return err
		}
	}
	if u == (AlertUpdate{}) {
		return argErr("AlertUpdate", "nothing to update")
	}
	return nil
}

// UpdateAlert changes an alert's status, assignee, classification or
// determination, and adds a comment, with PATCH /api/alerts/{id}, and
// returns the alert as updated. It needs the Alert.ReadWrite.All
// application permission (delegated: Alert.ReadWrite). An unknown alert is
// a 404 ([IsNotFound]).
//
// A PATCH that may have reached Defender is not resent (it would add its
// comment twice): like an action, it is retried only on 429 and on
// failures that prove it never left.
func (c *Client) UpdateAlert(ctx context.Context, id string, u AlertUpdate) (*Alert, error) {
	if err := checkAlertID(id); err != nil {
		return nil, fmt.Errorf("atp: update alert: %w", err)
	}
	op := "update alert " + id
	if err := u.check(); err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("atp: %s: %w", op, err)
	}
	cl := &call{op: op, method: http.MethodPatch, path: "/api/alerts/" + url.PathEscape(id), body: b}
	var a Alert
	if err := c.do(ctx, cl, &a); err != nil {
		return nil, err
	}
	if a.ID != id {
		return nil, fmt.Errorf("atp: %s: %w", op, &DecodeError{StatusCode: http.StatusOK, Method: cl.method, Path: cl.path,
			Err: errors.New("the answer is not the alert updated")})
	}
	return &a, nil
}

// ValidAlertID reports whether id has the shape of a Defender alert ID
// ("da637308392288907382_-880718168"): 1 to 200 letters, digits, '_', '-'
// and '.'.
func ValidAlertID(id string) bool { return checkAlertID(id) == nil }
