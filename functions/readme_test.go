package functions_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/functions"
)

// TestRouteTables: the route tables of the README and of docs/http.md list
// every registered function, and no route that none serves.
func TestRouteTables(t *testing.T) {
	row := regexp.MustCompile("(?m)^\\| `/api/([a-z]+)[^`]*`")
	want := slices.Sorted(slices.Values(append(functions.Names(), "openapi")))
	for _, file := range []string{"README.md", "docs/http.md"} {
		b, err := os.ReadFile(filepath.Join("..", file))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range row.FindAllSubmatch(b, -1) {
			if name := string(m[1]); !slices.Contains(got, name) {
				got = append(got, name)
			}
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s route table (-registry +document):\n%s", file, diff)
		}
	}
}
