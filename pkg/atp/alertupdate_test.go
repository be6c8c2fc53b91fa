package atp

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUpdateAlert(t *testing.T) {
	const id = "121688558380765161_2136280442"
	rec := &recorder{body: `{"id":"` + id + `","status":"Resolved","classification":"FalsePositive","determination":"NotMalicious"}`}
	c, _ := newTestClient(t, rec, nil, nil)
	a, err := c.UpdateAlert(context.Background(), id, AlertUpdate{Status: AlertStatusResolved, AssignedTo: "secop2@contoso.com",
		Classification: ClassificationFalsePositive, Determination: DeterminationNotMalicious, Comment: "Resolve my alert and assign to secop2"})
	if err != nil || a.ID != id || a.Status != AlertStatusResolved {
		t.Fatalf("UpdateAlert() = %+v, %v", a, err)
	}
	if rec.last.Method != "PATCH" || rec.last.Path != "/api/alerts/"+id || rec.last.ContentType != "application/json" {
		t.Errorf("request = %s %s (%s)", rec.last.Method, rec.last.Path, rec.last.ContentType)
	}
	var body map[string]string
	_ = json.Unmarshal([]byte(rec.last.Body), &body)
	want := map[string]string{"status": "Resolved", "assignedTo": "secop2@contoso.com", "classification": "FalsePositive",
		"determination": "NotMalicious", "comment": "Resolve my alert and assign to secop2"}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	// Bad arguments are refused before any call.
	n := len(rec.all)
	for _, u := range []AlertUpdate{{}, {Status: "Closed"}, {Classification: "Benign"}, {Determination: DeterminationMalware},
		{Classification: ClassificationFalsePositive, Determination: DeterminationMalware}, {Comment: " "}} {
		var ae *ArgumentError
		if _, err := c.UpdateAlert(context.Background(), id, u); !errors.As(err, &ae) {
			t.Errorf("UpdateAlert(%+v) error %v, want *ArgumentError", u, err)
		}
	}
	if _, err := c.UpdateAlert(context.Background(), "a b", AlertUpdate{Status: AlertStatusNew}); err == nil {
		t.Error("UpdateAlert(bad id) = nil error")
	}
	if len(rec.all) != n {
		t.Errorf("bad arguments sent %d requests", len(rec.all)-n)
	}

	// A 200 that is not this alert is a decoding failure.
	c2, _ := newTestClient(t, &recorder{body: `{}`}, nil, nil)
	var de *DecodeError
	if _, err := c2.UpdateAlert(context.Background(), id, AlertUpdate{Status: AlertStatusNew}); !errors.As(err, &de) {
		t.Errorf("UpdateAlert() of {} = %v, want *DecodeError", err)
	}
}

func TestDeterminations(t *testing.T) {
	for _, c := range Classifications() {
		if !c.Valid() || !c.Allows(DeterminationOther) {
			t.Errorf("%s: Valid %v, allows Other %v", c, c.Valid(), c.Allows(DeterminationOther))
		}
	}
	if ClassificationFalsePositive.Allows(DeterminationMalware) || Classification("Unknown").Valid() {
		t.Error("FalsePositive allows Malware, or Unknown is valid")
	}
}

func TestGetAlertNotThisOne(t *testing.T) {
	c, _ := newTestClient(t, &recorder{body: `{"value":"AAAA"}`}, nil, nil)
	var de *DecodeError
	if a, err := c.GetAlert(context.Background(), "da1_-2"); !errors.As(err, &de) {
		t.Errorf("GetAlert() of another shape = %+v, %v; want *DecodeError", a, err)
	}
}
