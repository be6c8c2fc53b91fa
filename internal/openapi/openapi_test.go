package openapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/functions/actions"
	"github.com/mdefn/mdefn/functions/alert"
	"github.com/mdefn/mdefn/functions/alerts"
	"github.com/mdefn/mdefn/functions/collect"
	"github.com/mdefn/mdefn/functions/indicators"
	"github.com/mdefn/mdefn/functions/isolate"
	"github.com/mdefn/mdefn/functions/quarantine"
	"github.com/mdefn/mdefn/functions/restrict"
	"github.com/mdefn/mdefn/functions/scan"
	"github.com/mdefn/mdefn/functions/tokencheck"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/openapi"
)

type document struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
	Comps   struct {
		Parameters map[string]struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

func load(t *testing.T) *document {
	t.Helper()
	var d document
	if err := json.Unmarshal(openapi.Document(), &d); err != nil {
		t.Fatalf("the OpenAPI document is not JSON: %v", err)
	}
	if d.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", d.OpenAPI)
	}
	return &d
}

// jsonFields lists the JSON names of a struct's fields, those of embedded
// structs included (encoding/json puts them at the top level).
func jsonFields(v any) []string {
	out := fieldsOf(reflect.TypeOf(v))
	slices.Sort(out)
	return out
}

func fieldsOf(rt reflect.Type) []string {
	var out []string
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, fieldsOf(f.Type)...)
			continue
		}
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func (d *document) properties(t *testing.T, schema string) []string {
	t.Helper()
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(d.Comps.Schemas[schema], &s); err != nil || s.Properties == nil {
		t.Fatalf("schema %s has no properties", schema)
	}
	var out []string
	for k := range s.Properties {
		if k != "tenant" { // the wiring's, not the function's: TestTenantEverywhere
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestTenantEverywhere: every operation takes the tenant query parameter
// and every request schema the tenant field, which the multi-tenant
// wiring reads and removes before a function decodes the request.
func TestTenantEverywhere(t *testing.T) {
	d := load(t)
	for path, ops := range d.Paths {
		if path == "/api/openapi.json" {
			continue
		}
		for method, raw := range ops {
			var op struct {
				Parameters []struct {
					Ref string `json:"$ref"`
				} `json:"parameters"`
			}
			if json.Unmarshal(raw, &op) != nil {
				continue // not an operation
			}
			if !slices.ContainsFunc(op.Parameters, func(p struct {
				Ref string `json:"$ref"`
			}) bool {
				return p.Ref == "#/components/parameters/tenant"
			}) {
				t.Errorf("%s %s has no tenant parameter", method, path)
			}
		}
	}
	for name, raw := range d.Comps.Schemas {
		var s struct {
			Additional *bool                      `json:"additionalProperties"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if json.Unmarshal(raw, &s) == nil && strings.HasSuffix(name, "Request") && s.Properties["tenant"] == nil {
			t.Errorf("request schema %s has no tenant field", name)
		}
	}
}

func TestAlertsParametersMatch(t *testing.T) {
	d := load(t)
	var op struct {
		Parameters []struct {
			Ref string `json:"$ref"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(d.Paths["/api/alerts"]["get"], &op); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range op.Parameters {
		param := d.Comps.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
		if param.In == "query" && param.Name != "tenant" {
			got = append(got, param.Name)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(alerts.QueryParameters))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /api/alerts query parameters (-handler +document):\n%s", diff)
	}
	if diff := cmp.Diff(want, d.properties(t, "AlertsRequest")); diff != "" {
		t.Errorf("AlertsRequest (-query parameters +document):\n%s", diff)
	}
	if diff := cmp.Diff(jsonFields(alerts.Request{}), d.properties(t, "AlertsRequest")); diff != "" {
		t.Errorf("AlertsRequest (-Go +document):\n%s", diff)
	}
}

func TestSchemasMatchTypes(t *testing.T) {
	d := load(t)
	for schema, v := range map[string]any{
		"IsolateRequest":     isolate.Request{},
		"ScanRequest":        scan.Request{},
		"RestrictRequest":    restrict.Request{},
		"CollectRequest":     collect.Request{},
		"QuarantineRequest":  quarantine.Request{},
		"ActionResult":       isolate.Result{},
		"Machine":            isolate.Machine{},
		"TokenCheckRequest":  tokencheck.Request{},
		"TokenCheckResult":   tokencheck.Result{},
		"FunctionAccess":     tokencheck.Access{},
		"AlertsResult":       alerts.Result{},
		"ActionsRequest":     actions.Request{},
		"ActionStatusResult": actions.Result{},
		"AlertUpdateRequest": alert.Request{},
		"AlertUpdateResult":  alert.Result{},
		"IndicatorsRequest":  indicators.Request{},
		"IndicatorsResult":   indicators.Result{},
	} {
		if diff := cmp.Diff(jsonFields(v), d.properties(t, schema)); diff != "" {
			t.Errorf("%s (-Go +document):\n%s", schema, diff)
		}
	}
}

func TestErrorCodesMatch(t *testing.T) {
	d := load(t)
	var env struct {
		Properties struct {
			Error struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"error"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(d.Comps.Schemas["ErrorEnvelope"], &env); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(env.Properties.Error.Properties.Code.Enum))
	var want []string
	for _, c := range envelope.Codes() {
		want = append(want, string(c))
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("error codes (-contract +document):\n%s", diff)
	}
}

func TestHandler(t *testing.T) {
	w := httptest.NewRecorder()
	openapi.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/openapi.json", nil))
	if w.Code != 200 || !json.Valid(w.Body.Bytes()) || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("GET = %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	w = httptest.NewRecorder()
	openapi.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/openapi.json", nil))
	if w.Code != 405 {
		t.Errorf("POST = %d, want 405", w.Code)
	}
}
