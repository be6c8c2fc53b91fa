package defender

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestIndicators: submit (Microsoft's documented request), update by value
// and type, import with a failing item, list, delete, and the permission.
func TestIndicators(t *testing.T) {
	f := newFixture(t, Options{Authorize: principalFromHeader})
	rw := map[string]string{"Authorization": "Bearer x", "X-Roles": RoleTiReadWriteAll}
	doc := `{"indicatorValue":"220e7d15b011d7fac48f2bd61114db1022197f7f","indicatorType":"FileSha1","title":"test","application":"demo-test","expirationTime":"2030-12-12T00:00:00Z","action":"AlertAndBlock","severity":"Informational","description":"test","recommendedActions":"nothing","rbacGroupNames":["group1","group2"]}`
	r := f.do(t, "POST", "/api/indicators", doc, rw)
	var first Indicator
	if err := json.Unmarshal(r.body, &first); r.status != 200 || err != nil || first.ID == "" || first.Action != "AlertAndBlock" {
		t.Fatalf("submit = %d %s", r.status, r.body)
	}
	r = f.do(t, "POST", "/api/indicators", strings.Replace(doc, "AlertAndBlock", "Audit", 1), rw)
	var second Indicator
	_ = json.Unmarshal(r.body, &second)
	if second.ID != first.ID || second.Action != "Audit" || len(f.srv.Indicators()) != 1 {
		t.Errorf("update of the same value = %s, %d indicators", r.body, len(f.srv.Indicators()))
	}
	imp := `{"Indicators":[{"indicatorValue":"evil.example.com","indicatorType":"DomainName","action":"Block","title":"t","description":"d"},
		{"indicatorValue":"abc","indicatorType":"FileSha1","action":"Block","title":"t","description":"d"}]}`
	r = f.do(t, "POST", "/api/indicators/import", imp, rw)
	var res struct {
		Value []struct {
			ID       *string `json:"id"`
			IsFailed bool    `json:"isFailed"`
		} `json:"value"`
	}
	if err := json.Unmarshal(r.body, &res); r.status != 200 || err != nil || len(res.Value) != 2 || res.Value[0].IsFailed || !res.Value[1].IsFailed {
		t.Errorf("import = %d %s", r.status, r.body)
	}
	if r := f.do(t, "GET", "/api/indicators", "", rw); r.status != 200 || !strings.Contains(string(r.body), "evil.example.com") {
		t.Errorf("list = %d %s", r.status, r.body)
	}
	if r := f.do(t, "DELETE", "/api/indicators/"+first.ID, "", rw); r.status != 204 {
		t.Errorf("delete = %d %s", r.status, r.body)
	}
	if r := f.do(t, "DELETE", "/api/indicators/"+first.ID, "", rw); r.status != 404 {
		t.Errorf("second delete = %d %s", r.status, r.body)
	}
	for _, body := range []string{`{"indicatorValue":"x","indicatorType":"Hostname","action":"Block","title":"t","description":"d"}`,
		`{"indicatorValue":"1.2.3.4","indicatorType":"IpAddress","action":"Block"}`, `[`} {
		if r := f.do(t, "POST", "/api/indicators", body, rw); r.status != 400 {
			t.Errorf("POST %s = %d, want 400", body, r.status)
		}
	}
	if r := f.do(t, "POST", "/api/indicators", doc, map[string]string{"Authorization": "Bearer x", "X-Roles": RoleAlertReadAll}); r.status != 403 || !strings.Contains(string(r.body), "Ti.ReadWrite") {
		t.Errorf("without Ti.ReadWrite = %d %s, want 403 naming it", r.status, r.body)
	}
}
