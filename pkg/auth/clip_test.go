package auth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc…"},
		{"é", 1, "…"},     // a 2-byte rune is not cut in half
		{"aé", 2, "a…"},   // the cut falls inside é
		{"a€b", 3, "a…"},  // inside the 3-byte €
		{"a€b", 4, "a€…"}, // right after €
		{"😀😀", 5, "😀…"},   // inside the second 4-byte rune
		{strings.Repeat("ü", 400), 301, strings.Repeat("ü", 150) + "…"},
	}
	for _, tt := range tests {
		got := clip(tt.s, tt.n)
		if got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("clip(%q, %d) = %q, not valid UTF-8", tt.s, tt.n, got)
		}
	}
}
