package functions_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/mdefn/mdefn/functions"
)

// The registry is the one list of functions: what must exist for each
// registered function exists, and nothing of the kind exists for a function
// that is not registered.

func registered() map[string]functions.Spec {
	out := map[string]functions.Spec{}
	for _, s := range functions.All {
		out[s.Name] = s
	}
	return out
}

type binding struct {
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Methods   []string `json:"methods"`
	Route     string   `json:"route"`
}

func readBindings(t *testing.T, folder string) []binding {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(folder, "function.json"))
	if err != nil {
		t.Errorf("registered function folder %s: %v", folder, err)
		return nil
	}
	var fj struct {
		Bindings []binding `json:"bindings"`
	}
	if err := json.Unmarshal(b, &fj); err != nil {
		t.Errorf("%s/function.json: %v", folder, err)
	}
	return fj.Bindings
}

func TestRegistryNames(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range functions.All {
		if s.Name == "" || strings.ToLower(s.Name) != s.Name || strings.ContainsAny(s.Name, "-/ ") {
			t.Errorf("function name %q: want lower-case letters only (it is a route, a folder and a directory)", s.Name)
		}
		if seen[s.Name] {
			t.Errorf("function %q is registered twice", s.Name)
		}
		seen[s.Name] = true
		if s.New == nil || len(s.Methods) == 0 || len(s.Checks) == 0 || s.Summary == "" || s.Example.Method == "" {
			t.Errorf("function %q: New, Methods, Checks, Summary and Example are all required", s.Name)
		}
		if !slices.Contains(s.Methods, s.Example.Method) {
			t.Errorf("function %q: its example uses %s, which it does not answer", s.Name, s.Example.Method)
		}
		for _, f := range s.Folders {
			if !strings.HasPrefix(f, s.Name+"-") {
				t.Errorf("function %q: folder %q must be named %s-<anything>", s.Name, f, s.Name)
			}
		}
	}
	var checks []string
	for _, c := range functions.Checks() {
		if slices.Contains(checks, c.Name) {
			t.Errorf("tokencheck entry %q is declared twice", c.Name)
		}
		checks = append(checks, c.Name)
	}
}

// TestFunctionFolders: each function has functions/<name>/function.json, an
// HTTP trigger with its methods and route; each of its Folders has a
// function.json; and every folder under functions/ with a function.json
// belongs to a registered function.
func TestFunctionFolders(t *testing.T) {
	reg := registered()
	for _, s := range functions.All {
		var httpIn *binding
		bs := readBindings(t, s.Name)
		for i := range bs {
			if bs[i].Type == "httpTrigger" {
				httpIn = &bs[i]
			}
		}
		if httpIn == nil {
			t.Errorf("%s/function.json has no httpTrigger", s.Name)
			continue
		}
		var want []string
		for _, m := range s.Methods {
			want = append(want, strings.ToLower(m))
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(httpIn.Methods))); diff != "" {
			t.Errorf("%s/function.json methods (-registry +function.json):\n%s", s.Name, diff)
		}
		wantRoute := s.Name
		if s.Nested {
			wantRoute += "/{*rest}"
		}
		if httpIn.Route != wantRoute {
			t.Errorf("%s/function.json route = %q, want %q", s.Name, httpIn.Route, wantRoute)
		}
		for _, f := range s.Folders {
			if len(readBindings(t, f)) == 0 {
				t.Errorf("%s/function.json has no bindings", f)
			}
		}
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.Name(), "function.json")); err != nil {
			continue
		}
		name, _, _ := strings.Cut(e.Name(), "-")
		s, ok := reg[name]
		if !ok || (e.Name() != name && !slices.Contains(s.Folders, e.Name())) {
			t.Errorf("functions/%s/function.json belongs to no registered function (or is not in its Folders)", e.Name())
		}
	}
}

// TestBootstraps: cmd/bootstrap/<name> exists for each function, serves that
// function, and exists for no other.
func TestBootstraps(t *testing.T) {
	reg := registered()
	dir := filepath.Join("..", "cmd", "bootstrap")
	for _, s := range functions.All {
		b, err := os.ReadFile(filepath.Join(dir, s.Name, "main.go"))
		if err != nil {
			t.Errorf("function %q has no Lambda bootstrap: %v", s.Name, err)
			continue
		}
		if !strings.Contains(string(b), `wiring.Main("`+s.Name+`")`) {
			t.Errorf("cmd/bootstrap/%s/main.go does not call wiring.Main(%q)", s.Name, s.Name)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := reg[e.Name()]; !ok {
			t.Errorf("cmd/bootstrap/%s is no registered function", e.Name())
		}
	}
}

// TestSAMResources: template.yaml has one AWS::Serverless::Function named
// <Name>Function (case aside) for each function, built by `make
// build-<LogicalId>`, and none for another.
func TestSAMResources(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Resources map[string]struct {
			Type     string `yaml:"Type"`
			Metadata struct {
				BuildMethod string `yaml:"BuildMethod"`
			} `yaml:"Metadata"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tpl); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	reg := registered()
	found := map[string]bool{}
	for id, r := range tpl.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(id, "Function"))
		if _, ok := reg[name]; !ok || !strings.HasSuffix(id, "Function") {
			t.Errorf("template.yaml resource %s is no registered function (want <Name>Function)", id)
			continue
		}
		if r.Metadata.BuildMethod != "makefile" {
			t.Errorf("template.yaml %s: Metadata.BuildMethod = %q, want makefile (make build-%s)", id, r.Metadata.BuildMethod, id)
		}
		found[name] = true
	}
	for _, s := range functions.All {
		if !found[s.Name] {
			t.Errorf("template.yaml has no AWS::Serverless::Function for %q", s.Name)
		}
	}
}

// TestOpenAPIPaths: the OpenAPI document describes each function with
// exactly its methods, and no path that no function serves.
func TestOpenAPIPaths(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "internal", "openapi", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	reg := registered()
	// A function's methods are those of its path and, for a Nested one,
	// of the paths below it, together.
	methods := map[string]map[string]bool{}
	for path, ops := range doc.Paths {
		name, ok := strings.CutPrefix(path, "/api/")
		if path == "/api/openapi.json" {
			continue
		}
		first, _, nested := strings.Cut(name, "/")
		s, known := reg[first]
		switch {
		case !ok || !known:
			t.Errorf("OpenAPI path %s is served by no registered function", path)
			continue
		case nested && !s.Nested:
			t.Errorf("OpenAPI path %s is below a function that answers no nested path", path)
			continue
		}
		if methods[first] == nil {
			methods[first] = map[string]bool{}
		}
		for m := range ops {
			if m != "parameters" && m != "summary" && m != "description" {
				methods[first][strings.ToUpper(m)] = true
			}
		}
	}
	for name, got := range methods {
		if diff := cmp.Diff(slices.Sorted(slices.Values(reg[name].Methods)), slices.Sorted(maps.Keys(got))); diff != "" {
			t.Errorf("OpenAPI methods of %s and the paths below it (-registry +document):\n%s", name, diff)
		}
	}
	for _, s := range functions.All {
		if _, ok := doc.Paths["/api/"+s.Name]; !ok {
			t.Errorf("the OpenAPI document has no path /api/%s", s.Name)
		}
	}
}
