package atp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const actionJSON = `{
  "id": "2e9da30d-27f6-4208-81f2-9cd3d67893ba",
  "type": "Isolate",
  "scope": "Selective",
  "requestor": "Analyst@TestPrd.onmicrosoft.com",
  "requestorComment": "Isolate machine due to alert 1234",
  "status": "Pending",
  "machineId": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
  "computerDnsName": "desktop-test",
  "creationDateTimeUtc": "2019-01-02T14:39:38.5489066Z",
  "lastUpdateDateTimeUtc": "2019-01-02T14:39:38.5489066Z",
  "cancellationRequestor": null,
  "cancellationComment": null,
  "cancellationDateTimeUtc": null,
  "errorHResult": 0,
  "relatedFileInfo": null,
  "commands": [],
  "troubleshootInfo": null
}`

func TestIsolate(t *testing.T) {
	tests := []struct {
		name     string
		req      IsolateRequest
		wantBody string
	}{
		{name: "default full", req: IsolateRequest{Comment: "INC0012345: isolate"}, wantBody: `{"Comment":"INC0012345: isolate","IsolationType":"Full"}`},
		{name: "selective", req: IsolateRequest{Comment: "c", IsolationType: IsolationSelective}, wantBody: `{"Comment":"c","IsolationType":"Selective"}`},
		{name: "unmanaged", req: IsolateRequest{Comment: `quote " and <tag>`, IsolationType: IsolationUnManagedDevice},
			wantBody: `{"Comment":"quote \" and \u003ctag\u003e","IsolationType":"UnManagedDevice"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{status: 201, body: actionJSON}
			c, _ := newTestClient(t, rec, nil, nil)
			a, err := c.Isolate(context.Background(), machineID1, tt.req)
			if err != nil {
				t.Fatalf("Isolate() = %v", err)
			}
			if rec.last.Method != "POST" || rec.last.Path != "/api/machines/"+machineID1+"/isolate" || rec.last.RawQuery != "" {
				t.Errorf("request = %s %s?%s, want POST /api/machines/%s/isolate", rec.last.Method, rec.last.Path, rec.last.RawQuery, machineID1)
			}
			if rec.last.ContentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", rec.last.ContentType)
			}
			if rec.last.Body != tt.wantBody {
				t.Errorf("body = %s, want %s", rec.last.Body, tt.wantBody)
			}
			created := time.Date(2019, 1, 2, 14, 39, 38, 548906600, time.UTC)
			want := &MachineAction{
				ID: actionID1, Type: ActionIsolate, Scope: "Selective", Requestor: "Analyst@TestPrd.onmicrosoft.com",
				RequestorComment: "Isolate machine due to alert 1234", Status: ActionPending, MachineID: machineID1,
				ComputerDNSName: "desktop-test", CreationDateTimeUTC: created, LastUpdateDateTimeUTC: created,
				Commands: json.RawMessage(`[]`), TroubleshootInfo: json.RawMessage(`null`),
			}
			if diff := cmp.Diff(want, a); diff != "" {
				t.Errorf("Isolate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnisolate(t *testing.T) {
	rec := &recorder{status: 201, body: strings.Replace(actionJSON, `"Isolate"`, `"Unisolate"`, 1)}
	c, _ := newTestClient(t, rec, nil, nil)
	a, err := c.Unisolate(context.Background(), machineID1, "release: INC1")
	if err != nil || a.Type != ActionUnisolate {
		t.Fatalf("Unisolate() = %+v, %v", a, err)
	}
	if rec.last.Method != "POST" || rec.last.Path != "/api/machines/"+machineID1+"/unisolate" {
		t.Errorf("request = %s %s", rec.last.Method, rec.last.Path)
	}
	if want := `{"Comment":"release: INC1"}`; rec.last.Body != want {
		t.Errorf("body = %s, want %s", rec.last.Body, want)
	}
}

func TestActionArgumentErrors(t *testing.T) {
	rec := &recorder{status: 201, body: actionJSON}
	c, _ := newTestClient(t, rec, nil, nil)
	ctx := context.Background()
	tests := []struct {
		name     string
		call     func() error
		wantName string
	}{
		{name: "isolate bad id", wantName: "machineID", call: func() error {
			_, err := c.Isolate(ctx, "nope", IsolateRequest{Comment: "c"})
			return err
		}},
		{name: "isolate no comment", wantName: "Comment", call: func() error {
			_, err := c.Isolate(ctx, machineID1, IsolateRequest{Comment: "  "})
			return err
		}},
		{name: "isolate long comment", wantName: "Comment", call: func() error {
			_, err := c.Isolate(ctx, machineID1, IsolateRequest{Comment: strings.Repeat("c", maxComment+1)})
			return err
		}},
		{name: "isolate bad type", wantName: "IsolationType", call: func() error {
			_, err := c.Isolate(ctx, machineID1, IsolateRequest{Comment: "c", IsolationType: "full"})
			return err
		}},
		{name: "unisolate bad id", wantName: "machineID", call: func() error {
			_, err := c.Unisolate(ctx, machineID1[:39], "c")
			return err
		}},
		{name: "unisolate no comment", wantName: "Comment", call: func() error {
			_, err := c.Unisolate(ctx, machineID1, "")
			return err
		}},
		{name: "get action bad id", wantName: "actionID", call: func() error {
			_, err := c.GetMachineAction(ctx, "../machines")
			return err
		}},
		{name: "list actions bad status", wantName: "Statuses", call: func() error {
			_, err := c.ListMachineActions(ctx, &ListMachineActionsOptions{Statuses: []ActionStatus{"Done"}})
			return err
		}},
		{name: "list actions bad type", wantName: "Types", call: func() error {
			_, err := c.ListMachineActions(ctx, &ListMachineActionsOptions{Types: []ActionType{"Nuke"}})
			return err
		}},
		{name: "list actions bad machine", wantName: "MachineID", call: func() error {
			_, err := c.ListMachineActions(ctx, &ListMachineActionsOptions{MachineID: "x"})
			return err
		}},
		{name: "list actions top", wantName: "Top", call: func() error {
			_, err := c.ListMachineActions(ctx, &ListMachineActionsOptions{Top: 20000})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *ArgumentError
			if !errors.As(err, &ae) || ae.Name != tt.wantName {
				t.Errorf("call = %v, want *ArgumentError for %s", err, tt.wantName)
			}
		})
	}
	if len(rec.all) != 0 {
		t.Errorf("server saw %d requests, want none", len(rec.all))
	}
}

func TestIsolateActiveRequestAlreadyExists(t *testing.T) {
	rec := &recorder{status: 400, body: `{"error":{"code":"ActiveRequestAlreadyExists","message":"Action is already in progress","target":"c-1"}}`}
	c, _ := newTestClient(t, rec, nil, nil)
	_, err := c.Isolate(context.Background(), machineID1, IsolateRequest{Comment: "c"})
	if !IsActiveRequestAlreadyExists(err) {
		t.Errorf("Isolate() = %v, want IsActiveRequestAlreadyExists", err)
	}
	if want := "atp: isolate machine " + machineID1 + ": 400 Bad Request: ActiveRequestAlreadyExists: Action is already in progress (correlation id c-1)"; err.Error() != want {
		t.Errorf("Isolate() error = %q, want %q", err, want)
	}
	if len(rec.all) != 1 {
		t.Errorf("server saw %d requests, want 1", len(rec.all))
	}
}

func TestGetMachineAction(t *testing.T) {
	rec := &recorder{body: actionJSON}
	c, _ := newTestClient(t, rec, nil, nil)
	a, err := c.GetMachineAction(context.Background(), actionID1)
	if err != nil || a.ID != actionID1 || a.Status != ActionPending {
		t.Fatalf("GetMachineAction() = %+v, %v", a, err)
	}
	if rec.last.Method != "GET" || rec.last.Path != "/api/machineactions/"+actionID1 {
		t.Errorf("request = %s %s", rec.last.Method, rec.last.Path)
	}
	// A 200 that is not the action asked for is a decoding failure, not an
	// action of unknown status.
	for _, body := range []string{`{}`, `{"value":"AAAA"}`, strings.Replace(actionJSON, actionID1, "00000000-0000-4000-8000-000000000000", 1),
		strings.Replace(actionJSON, `"Pending"`, `"Sleeping"`, 1)} {
		c, _ := newTestClient(t, &recorder{body: body}, nil, nil)
		var de *DecodeError
		if a, err := c.GetMachineAction(context.Background(), actionID1); !errors.As(err, &de) {
			t.Errorf("GetMachineAction() of %.60s = %+v, %v; want a *DecodeError", body, a, err)
		}
	}
}

func TestListMachineActions(t *testing.T) {
	from := time.Date(2024, 6, 1, 11, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		o         *ListMachineActionsOptions
		wantQuery map[string][]string
	}{
		{name: "nil", o: nil, wantQuery: map[string][]string{}},
		{name: "pending on machine", o: &ListMachineActionsOptions{MachineID: machineID1, Types: []ActionType{ActionIsolate},
			Statuses: []ActionStatus{ActionPending, ActionInProgress}},
			wantQuery: map[string][]string{"$filter": {"machineId eq '" + machineID1 + "' and type eq 'Isolate' and (status eq 'Pending' or status eq 'InProgress')"}}},
		{name: "budget", o: &ListMachineActionsOptions{Types: []ActionType{ActionIsolate}, Requestor: "o'neil@contoso.com", CreatedFrom: from, Top: 1000, Skip: 1000},
			wantQuery: map[string][]string{"$filter": {"type eq 'Isolate' and requestor eq 'o''neil@contoso.com' and creationDateTimeUtc ge 2024-06-01T11:00:00Z"},
				"$top": {"1000"}, "$skip": {"1000"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{body: `{"@odata.context":"x","value":[` + actionJSON + `]}`}
			c, _ := newTestClient(t, rec, nil, nil)
			as, err := c.ListMachineActions(context.Background(), tt.o)
			if err != nil || len(as) != 1 || as[0].ID != actionID1 {
				t.Fatalf("ListMachineActions() = %+v, %v", as, err)
			}
			if rec.last.Method != "GET" || rec.last.Path != "/api/machineactions" {
				t.Errorf("request = %s %s", rec.last.Method, rec.last.Path)
			}
			if diff := cmp.Diff(tt.wantQuery, rec.last.Query); diff != "" {
				t.Errorf("query mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnums(t *testing.T) {
	for _, s := range []ActionStatus{ActionPending, ActionInProgress} {
		if !s.Active() {
			t.Errorf("%s.Active() = false, want true", s)
		}
	}
	for _, s := range []ActionStatus{ActionSucceeded, ActionFailed, ActionTimeOut, ActionCancelled} {
		if s.Active() || !s.Valid() {
			t.Errorf("%s.Active() = %v, Valid() = %v; want false, true", s, s.Active(), s.Valid())
		}
	}
	if Severity("Critical").Valid() || AlertStatus("Closed").Valid() || IsolationType("").Valid() || ActionType("").Valid() || ActionStatus("pending").Valid() {
		t.Errorf("an unknown enum value is Valid")
	}
}
