package atp

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// odataToken is one lexical token of an OData expression.
type odataToken struct {
	Kind  string // "str" (literal, Value unescaped), "word", "punct"
	Value string
}

// lexOData splits an OData $filter into tokens the way a server would:
// string literals in single quotes with ” as an escaped quote, words, and
// the punctuation ( ) , / :. ok is false on an unterminated literal.
func lexOData(s string) (toks []odataToken, ok bool) {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case c == '\'':
			var v strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, false
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						v.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				v.WriteByte(s[i])
				i++
			}
			toks = append(toks, odataToken{"str", v.String()})
		case strings.IndexByte("(),/:", c) >= 0:
			toks = append(toks, odataToken{"punct", string(c)})
			i++
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\'' && strings.IndexByte("(),/:", s[j]) < 0 {
				j++
			}
			toks = append(toks, odataToken{"word", s[i:j]})
			i = j
		}
	}
	return toks, true
}

// shape replaces literal values so filters can be compared by structure.
func shape(toks []odataToken) []odataToken {
	out := make([]odataToken, len(toks))
	for i, t := range toks {
		if t.Kind == "str" {
			t.Value = "?"
		}
		out[i] = t
	}
	return out
}

func FuzzODataString(f *testing.F) {
	for _, s := range []string{"", "a", "'", "''", "o'brien", "x') or (1 eq 1", "a' or machineId ne '", "\x00\xff", "é'ü"} {
		f.Add(s)
	}
	ref, _ := lexOData("computerDnsName eq 'a' and machineTags/any(tag: tag eq 'b')")
	f.Fuzz(func(t *testing.T, s string) {
		lit := ODataString(s)
		toks, ok := lexOData(lit)
		if !ok || len(toks) != 1 || toks[0].Kind != "str" || toks[0].Value != s {
			t.Fatalf("ODataString(%q) = %q lexes to %v, want one literal round-tripping", s, lit, toks)
		}
		filter := "computerDnsName eq " + lit + " and machineTags/any(tag: tag eq " + lit + ")"
		got, ok := lexOData(filter)
		if !ok || !cmp.Equal(shape(ref), shape(got)) {
			t.Fatalf("filter %q changed structure: %v", filter, got)
		}
		if got[2].Value != s || got[len(got)-2].Value != s {
			t.Fatalf("filter %q literals = %q, %q, want %q", filter, got[2].Value, got[len(got)-2].Value, s)
		}
		if f, err := MachineNameFilter(s); err == nil {
			toks, ok := lexOData(f)
			n, _ := normalizeName(s)
			var want []odataToken
			if strings.Contains(n, ".") {
				want = []odataToken{{"word", "computerDnsName"}, {"word", "eq"}, {"str", n}}
			} else {
				want = []odataToken{{"word", "startswith"}, {"punct", "("}, {"word", "computerDnsName"}, {"punct", ","}, {"str", n}, {"punct", ")"}}
			}
			if !ok || !cmp.Equal(want, toks) {
				t.Fatalf("MachineNameFilter(%q) = %q lexes to %v, want %v", s, f, toks, want)
			}
			if !utf8.ValidString(f) {
				t.Fatalf("MachineNameFilter(%q) = %q is not UTF-8", s, f)
			}
		}
	})
}

func FuzzBuildMachineActionFilter(f *testing.F) {
	f.Add("app-id", "Isolate", "Pending")
	f.Add("a' or '1' eq '1", "Isolate", "x")
	f.Add("o''neil') or (", "Unisolate", "InProgress")
	ref, _ := lexOData("machineId eq 'x' and type eq 'x' and status eq 'x' and requestor eq 'x' and creationDateTimeUtc ge 2024-06-01T11:00:00Z")
	f.Fuzz(func(t *testing.T, requestor, typ, status string) {
		o := &ListMachineActionsOptions{
			MachineID: machineID1, Types: []ActionType{ActionType(typ)}, Statuses: []ActionStatus{ActionStatus(status)},
			Requestor: requestor, CreatedFrom: time.Date(2024, 6, 1, 11, 0, 0, 0, time.UTC),
		}
		filter, err := BuildMachineActionFilter(o)
		if err != nil {
			return
		}
		if requestor == "" {
			return
		}
		got, ok := lexOData(filter)
		if !ok || !cmp.Equal(shape(ref), shape(got)) {
			t.Fatalf("BuildMachineActionFilter(%+v) = %q changed structure: %v", o, filter, got)
		}
		if got[14].Value != requestor {
			t.Fatalf("requestor literal = %q, want %q", got[14].Value, requestor)
		}
	})
}
