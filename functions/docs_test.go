package functions_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/pkg/auth"
)

// needsText writes needs as the permissions table does: groups joined by
// " + ", alternatives by " or ", "none" for nothing.
func needsText(needs []auth.AnyOf) string {
	if len(needs) == 0 {
		return "none"
	}
	groups := make([]string, len(needs))
	for i, alt := range needs {
		groups[i] = strings.Join(alt, " or ")
	}
	return strings.Join(groups, " + ")
}

// TestPermissionsTable: docs/permissions.md's table has one row per
// tokencheck entry of the registry, with exactly its needs.
func TestPermissionsTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "permissions.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Za-z]+)` \\| ([^|]+) \\| ([^|]+) \\|$")
	got := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		if _, dup := got[m[1]]; dup {
			t.Errorf("docs/permissions.md lists %s twice", m[1])
		}
		got[m[1]] = [2]string{strings.TrimSpace(m[2]), strings.TrimSpace(m[3])}
	}
	want := map[string][2]string{}
	for _, c := range functions.Checks() {
		want[c.Name] = [2]string{needsText(c.Needs.App), needsText(c.Needs.Delegated)}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("docs/permissions.md table (-registry +document):\n%s", diff)
	}
}
