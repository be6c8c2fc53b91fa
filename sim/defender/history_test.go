package defender

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAddAction: a recorded past action is ended, listed, read by ID and,
// for a succeeded collection, has a package; an unknown device is refused.
func TestAddAction(t *testing.T) {
	f := newTLSFixture(t, Options{})
	m := f.srv.Machines()[0]
	if _, ok := f.srv.AddAction(MachineAction{MachineID: strings.Repeat("0", 40), Type: ActionCollectInvestigationPackage}); ok {
		t.Fatal("AddAction on an unknown device = ok")
	}
	a, ok := f.srv.AddAction(MachineAction{MachineID: strings.ToUpper(m.ID), Type: ActionCollectInvestigationPackage,
		Status: ActionPending, Requestor: "analyst@contoso.com", LastUpdateDateTimeUTC: time.Now().Add(time.Hour)})
	if !ok || a.Status != ActionSucceeded || a.MachineID != m.ID || a.ComputerDNSName != m.ComputerDNSName || a.LastUpdateDateTimeUTC.After(time.Now()) {
		t.Fatalf("AddAction = %+v, %v; want a Succeeded action of %s that ended by now", a, ok, m.ID)
	}
	if r := f.get(t, "/api/machineactions/"+a.ID); r.status != http.StatusOK || !strings.Contains(string(r.body), `"Succeeded"`) {
		t.Errorf("GET the action = %d %s", r.status, r.body)
	}
	if r := f.get(t, "/api/machineactions/"+a.ID+"/GetPackageUri"); r.status != http.StatusOK || !strings.Contains(string(r.body), "https://") {
		t.Errorf("GetPackageUri = %d %s", r.status, r.body)
	}
	// Ended: a new collection on the device is not refused.
	if r := f.do(t, "POST", "/api/machines/"+m.ID+"/collectInvestigationPackage", `{"Comment":"c"}`, nil); r.status != http.StatusCreated {
		t.Errorf("a collection after the recorded one = %d %s", r.status, r.body)
	}
}
