package defender

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestUpdateAlert: PATCH /api/alerts/{id} as "Update alert" documents it,
// with the classification/determination pairs of its table.
func TestUpdateAlert(t *testing.T) {
	f := newFixture(t, Options{Authorize: principalFromHeader})
	id := f.srv.Alerts()[0].ID
	rw := map[string]string{"Authorization": "Bearer x", "X-Roles": RoleAlertReadWriteAll, "X-App": "app-7"}
	path := "/api/alerts/" + id

	// Microsoft's documented request pairs FalsePositive with Malware,
	// which its own table of determinations does not allow: refused,
	// naming the allowed values.
	doc := `{"status":"Resolved","assignedTo":"secop2@contoso.com","classification":"FalsePositive","determination":"Malware","comment":"Resolve my alert and assign to secop2"}`
	if r := f.do(t, "PATCH", path, doc, rw); r.status != 400 || !strings.Contains(string(r.body), "NotMalicious, InsufficientData, Other") {
		t.Errorf("documented example = %d %s, want 400 naming the allowed determinations", r.status, r.body)
	}
	// The same with an allowed pair, property names as the table writes them.
	ok := strings.Replace(strings.Replace(doc, `"Malware"`, `"NotMalicious"`, 1), `"status"`, `"Status"`, 1)
	r := f.do(t, "PATCH", path, ok, rw)
	var a map[string]any
	_ = json.Unmarshal(r.body, &a)
	if r.status != 200 || a["status"] != "Resolved" || a["assignedTo"] != "secop2@contoso.com" || a["determination"] != "NotMalicious" || a["resolvedTime"] == nil {
		t.Fatalf("PATCH = %d %s", r.status, r.body)
	}
	got, _ := f.srv.Alert(id)
	if n := len(got.Comments); n == 0 || got.Comments[n-1].Comment != "Resolve my alert and assign to secop2" || got.Comments[n-1].CreatedBy != "app-7" {
		t.Errorf("comments = %+v", got.Comments)
	}
	// A determination alone is checked against the alert's classification.
	if r := f.do(t, "PATCH", path, `{"determination":"Phishing"}`, rw); r.status != 400 {
		t.Errorf("determination of another classification = %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		body   string
		hdr    map[string]string
		status int
	}{
		{`{"status":"Closed"}`, rw, 400},
		{`{"classification":"Benign"}`, rw, 400},
		{`{"severity":"High"}`, rw, 400},
		{`{"status":"New"}`, map[string]string{"Authorization": "Bearer x", "X-Roles": RoleAlertReadAll}, 403},
	} {
		if r := f.do(t, "PATCH", path, tt.body, tt.hdr); r.status != tt.status {
			t.Errorf("PATCH %s = %d %s, want %d", tt.body, r.status, r.body, tt.status)
		}
	}
	if r := f.do(t, "PATCH", "/api/alerts/da000_-1", `{"status":"New"}`, rw); r.status != 404 {
		t.Errorf("unknown alert = %d %s", r.status, r.body)
	}
	if r := f.do(t, "PATCH", path, `{"status":"New"}`, map[string]string{"Authorization": "Bearer x", "X-Roles": RoleAlertReadAll}); !strings.Contains(string(r.body), RoleAlertReadWriteAll) {
		t.Errorf("403 %s does not name the missing role", r.body)
	}
}
