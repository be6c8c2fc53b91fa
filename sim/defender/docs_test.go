package defender

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The testdata/*.json files are Microsoft's documented example objects
// (List alerts example 2, OData sample 3, Get machineAction, Common errors,
// List MachineActions example 1, Get package SAS URI).

func loadDoc(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	mustJSON(t, b, &m)
	return m
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// sameShape reports every documented field missing from got or of another
// JSON type (null on either side is accepted: documented examples show
// nullable fields both ways). It recurses into objects and the first
// element of arrays.
func sameShape(path string, doc, got any) []string {
	var diffs []string
	dk, gk := jsonKind(doc), jsonKind(got)
	if dk == "null" || gk == "null" {
		return nil
	}
	if dk != gk {
		return []string{fmt.Sprintf("%s: documented %s, got %s", path, dk, gk)}
	}
	switch d := doc.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k, dv := range d {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, sameShape(path+"."+k, dv, gv)...)
		}
	case []any:
		g := got.([]any)
		if len(d) > 0 && len(g) > 0 {
			diffs = append(diffs, sameShape(path+"[0]", d[0], g[0])...)
		}
	}
	return diffs
}

func TestDocumentedExamples(t *testing.T) {
	f := newFixture(t, Options{RateLimits: &RateLimits{}})
	alert, machine, action := loadDoc(t, "alert.json"), loadDoc(t, "machine.json"), loadDoc(t, "machineaction.json")
	errDoc := loadDoc(t, "error.json")

	gets := []struct {
		path string
		doc  map[string]any
		min  int // fewest values expected
	}{
		{"/api/alerts", alert, 500},
		{"/api/alerts?$top=10&$expand=evidence", alert, 10},
		{"/api/alerts?$filter=lastUpdateTime+ge+2019-11-22T00:00:00Z", alert, 500},
		{"/api/machines", machine, 61},
		{"/api/machines?$filter=riskScore+eq+'High'", machine, 1},
		{"/api/machines?$filter=healthStatus+ne+'Active'&$top=100", machine, 1},
		{"/api/machines?$filter=lastSeen%20gt%202018-08-01Z", machine, 61},
		{"/api/machines?$filter=startswith(computerDnsName,'desktop-')", machine, 50},
		{"/api/machineactions?$filter=requestor%20eq%20'Analyst@contoso.com'%20and%20type%20eq%20'RunAntiVirusScan'", action, 0},
		{"/api/machines/findbyip(ip='" + KnownIP + "',timestamp=2025-03-01T11:44:05Z)", machine, 1},
	}
	for _, g := range gets {
		t.Run("GET "+g.path, func(t *testing.T) {
			r := f.get(t, g.path)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("GET %s = %d %q %s", g.path, r.status, r.header.Get("Content-Type"), r.body)
			}
			var c struct {
				Context string `json:"@odata.context"`
				Value   []any  `json:"value"`
			}
			mustJSON(t, r.body, &c)
			if len(c.Value) < g.min {
				t.Errorf("GET %s: %d values, want at least %d", g.path, len(c.Value), g.min)
			}
			for i, v := range c.Value {
				if d := sameShape("value", g.doc, v); len(d) > 0 {
					t.Fatalf("GET %s value[%d] differs from the documented shape:\n%s", g.path, i, strings.Join(d, "\n"))
				}
			}
		})
	}

	t.Run("POST isolate (documented request)", func(t *testing.T) {
		r := f.post(t, "/api/machines/"+KnownIPMachineID+"/isolate", `{
  "Comment": "Isolate machine due to alert 1234",
  "IsolationType": "Full" 
}`)
		if r.status != http.StatusCreated {
			t.Fatalf("isolate = %d %s, want 201", r.status, r.body)
		}
		var got map[string]any
		mustJSON(t, r.body, &got)
		if d := sameShape("action", action, got); len(d) > 0 {
			t.Errorf("isolate answer differs from the documented MachineAction:\n%s", strings.Join(d, "\n"))
		}
		for _, k := range []string{"cancellationRequestor", "cancellationComment", "cancellationDateTimeUtc", "errorHResult", "commands", "troubleshootInfo", "externalId", "requestSource", "title"} {
			if _, ok := got[k]; !ok {
				t.Errorf("isolate answer lacks %q", k)
			}
		}
		// GET by id has the same shape.
		r = f.get(t, "/api/machineactions/"+got["id"].(string))
		var again map[string]any
		mustJSON(t, r.body, &again)
		if d := sameShape("action", action, again); len(d) > 0 || again["status"] != "Pending" {
			t.Errorf("GetMachineAction differs: %v status %v", d, again["status"])
		}
	})

	t.Run("POST unisolate (documented request)", func(t *testing.T) {
		r := f.post(t, "/api/machines/"+IsolatedMachineID+"/unisolate", `{
  "Comment": "Unisolate machine since it was clean and validated"
}`)
		if r.status != http.StatusCreated {
			t.Fatalf("unisolate = %d %s", r.status, r.body)
		}
	})

	t.Run("GET single entities", func(t *testing.T) {
		for _, c := range []struct {
			path string
			doc  map[string]any
		}{{"/api/alerts/" + SampleAlertID, alert}, {"/api/machines/" + KnownIPMachineID, machine}} {
			var got map[string]any
			mustJSON(t, f.get(t, c.path).body, &got)
			if d := sameShape("entity", c.doc, got); len(d) > 0 {
				t.Errorf("GET %s differs:\n%s", c.path, strings.Join(d, "\n"))
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, path := range []string{
			"/api/machines/123123123",
			"/api/machines/findbyip(ip='10.248.240.38',timestamp=2019-09-22T08:44:05Z)", // older than 30 days
			"/api/alerts?$top=10001",
		} {
			r := f.get(t, path)
			var got map[string]any
			mustJSON(t, r.body, &got)
			if d := sameShape("error", errDoc, got); len(d) > 0 || r.status < 400 {
				t.Errorf("GET %s = %d, error shape differs:\n%s", path, r.status, strings.Join(d, "\n"))
			}
		}
	})
}

// TestAlertMarshalJSON checks the hand-written encoder yields JSON that
// decodes to the same values encoding/json sees.
func TestAlertMarshalJSON(t *testing.T) {
	f := newFixture(t, Options{})
	a, ok := f.srv.Alert(SampleAlertID)
	if !ok {
		t.Fatal("sample alert missing")
	}
	a.Title = "ctl\x01 \"q\" \\ \xff bad utf8 \u2029"
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title    string `json:"title"`
		Evidence []struct {
			EntityType string `json:"entityType"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("json.Unmarshal(MarshalJSON) = %v", err)
	}
	if want := "ctl\x01 \"q\" \\ \ufffd bad utf8 \u2029"; got.Title != want || len(got.Evidence) != 3 {
		t.Errorf("round trip title = %q, evidence %d; want %q, 3", got.Title, len(got.Evidence), want)
	}
}

// TestDocumentedResponseActionExamples replays the request examples of
// Microsoft's response action API pages verbatim (path and body) and
// compares the answers with the documented objects: machineactions.json is
// "List MachineActions API" example 1, packageuri.json the "Get package SAS
// URI API" response example.
func TestDocumentedResponseActionExamples(t *testing.T) {
	f := newTLSFixture(t, Options{RateLimits: &RateLimits{}})
	const docMachine = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07" // the device of the examples
	m, _ := f.srv.Machine(KnownIPMachineID)
	m.ID, m.ComputerDNSName = docMachine, "desktop-test"
	f.srv.AddMachine(m)

	action := loadDoc(t, "machineaction.json")
	listed := map[string]map[string]any{}
	for _, v := range loadDoc(t, "machineactions.json")["value"].([]any) {
		a := v.(map[string]any)
		// The list example alone spells it lastUpdateTimeUtc; the resource
		// page and every other example say lastUpdateDateTimeUtc.
		a["lastUpdateDateTimeUtc"] = a["lastUpdateTimeUtc"]
		delete(a, "lastUpdateTimeUtc")
		listed[a["type"].(string)] = a
	}

	examples := []struct {
		path, body string
		typ        string
		check      func(got map[string]any) string
	}{
		{"/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/runAntiVirusScan", `{
  "Comment": "Check machine for viruses due to alert 3212",
  "ScanType": "Full"
}`, "RunAntiVirusScan", func(got map[string]any) string {
			if got["scope"] != "Full" {
				return fmt.Sprintf("scope %v, want Full as in the list example", got["scope"])
			}
			return ""
		}},
		{"/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/restrictCodeExecution", `{
  "Comment": "Restrict code execution due to alert 1234"
}`, "RestrictCodeExecution", nil},
		{"/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/unrestrictCodeExecution", `{
  "Comment": "Unrestrict code execution since machine was cleaned and validated"
}

`, "UnrestrictCodeExecution", nil},
		// The collection example's device ID has 32 characters, no device
		// has it: the body is replayed on the examples' other device.
		{"/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/collectInvestigationPackage", `{
  "Comment": "Collect forensics due to alert 1234"
}`, "CollectInvestigationPackage", nil},
		{"/api/machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/StopAndQuarantineFile", `{
  "Comment": "Stop and quarantine file on machine due to alert 441688558380765161_2136280442",
  "Sha1": "87662bc3d60e4200ceaf7aae249d1c343f4b83c9"
}`, "StopAndQuarantineFile", func(got map[string]any) string {
			want := map[string]any{"fileIdentifier": "87662bc3d60e4200ceaf7aae249d1c343f4b83c9", "fileIdentifierType": "Sha1"}
			if d := sameShape("relatedFileInfo", listed["StopAndQuarantineFile"]["relatedFileInfo"], got["relatedFileInfo"]); len(d) > 0 || fmt.Sprint(got["relatedFileInfo"]) != fmt.Sprint(want) {
				return fmt.Sprintf("relatedFileInfo %v, want %v", got["relatedFileInfo"], want)
			}
			return ""
		}},
	}
	ids := map[string]string{}
	for _, ex := range examples {
		t.Run("POST "+ex.path, func(t *testing.T) {
			r := f.post(t, ex.path, ex.body)
			if r.status != http.StatusCreated {
				t.Fatalf("POST %s = %d %s, want 201", ex.path, r.status, r.body)
			}
			var got map[string]any
			mustJSON(t, r.body, &got)
			if got["type"] != ex.typ || got["status"] != "Pending" || got["machineId"] != docMachine {
				t.Errorf("answer type %v status %v machine %v, want a Pending %s on %s", got["type"], got["status"], got["machineId"], ex.typ, docMachine)
			}
			for _, doc := range []map[string]any{action, listed[ex.typ]} {
				if doc == nil {
					continue
				}
				if d := sameShape("action", doc, got); len(d) > 0 {
					t.Errorf("answer differs from the documented MachineAction:\n%s", strings.Join(d, "\n"))
				}
			}
			if ex.check != nil {
				if msg := ex.check(got); msg != "" {
					t.Error(msg)
				}
			}
			ids[ex.typ] = got["id"].(string)
		})
	}

	t.Run("POST cancel (documented request)", func(t *testing.T) {
		r := f.post(t, "/api/machineactions/"+ids["RestrictCodeExecution"]+"/cancel", `{
    "Comment": "Machine action was canceled by automation"
}`)
		var got map[string]any
		mustJSON(t, r.body, &got)
		if r.status != http.StatusOK || got["status"] != "Cancelled" || got["cancellationComment"] != "Machine action was canceled by automation" {
			t.Fatalf("cancel = %d %s, want 200 Cancelled with the comment", r.status, r.body)
		}
		if d := sameShape("action", action, got); len(d) > 0 {
			t.Errorf("cancel answer differs from the documented MachineAction:\n%s", strings.Join(d, "\n"))
		}
	})

	t.Run("GET GetPackageUri (documented response)", func(t *testing.T) {
		f.clock.Advance(time.Minute)
		r := f.get(t, "/api/machineactions/"+ids["CollectInvestigationPackage"]+"/GetPackageUri")
		var got map[string]any
		mustJSON(t, r.body, &got)
		if d := sameShape("answer", loadDoc(t, "packageuri.json"), got); len(d) > 0 || r.status != http.StatusOK {
			t.Fatalf("GetPackageUri = %d, differs from the documented answer:\n%s", r.status, strings.Join(d, "\n"))
		}
		if ctx := got["@odata.context"].(string); !strings.HasSuffix(ctx, "/api/$metadata#Edm.String") {
			t.Errorf("@odata.context = %q, want the documented #Edm.String", ctx)
		}
		if link := got["value"].(string); !strings.HasPrefix(link, "https://") {
			t.Errorf("package link %q is not https", link)
		}
	})

	t.Run("GET machineactions (documented example 2)", func(t *testing.T) {
		got, r := list[map[string]any](t, f, "/api/machineactions?$filter=machineId%20eq%20'"+docMachine+"'&$top=2")
		if r.status != http.StatusOK || len(got) != 2 {
			t.Fatalf("list = %d, %d values; want 200 and 2", r.status, len(got))
		}
		for _, a := range got {
			if doc := listed[a["type"].(string)]; doc != nil {
				if d := sameShape("value", doc, a); len(d) > 0 {
					t.Errorf("listed %v differs from the documented one:\n%s", a["type"], strings.Join(d, "\n"))
				}
			}
		}
	})
}
