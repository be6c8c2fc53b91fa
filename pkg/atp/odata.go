package atp

import (
	"strconv"
	"strings"
	"time"
)

// MaxTop is the largest $top Defender accepts on list endpoints.
const MaxTop = 10000

// ODataString returns s as an OData string literal: enclosed in single
// quotes, with each single quote doubled. No value of s can end the literal
// early, so no input changes the structure of a filter built with it.
func ODataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// odataTime formats t as Defender expects unquoted datetimes in $filter:
// UTC, second precision (truncated), e.g. 2024-01-02T03:04:05Z.
func odataTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z")
}

// anyOf returns "field eq 'a'" for one value or "(field eq 'a' or field eq
// 'b')" for several.
func anyOf[T ~string](field string, vals []T) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = field + " eq " + ODataString(string(v))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, " or ") + ")"
}

// pageQuery appends $filter, $top and $skip (when set) to q.
func pageQuery(q [][2]string, filter string, top, skip int) [][2]string {
	if filter != "" {
		q = append(q, [2]string{"$filter", filter})
	}
	if top > 0 {
		q = append(q, [2]string{"$top", strconv.Itoa(top)})
	}
	if skip > 0 {
		q = append(q, [2]string{"$skip", strconv.Itoa(skip)})
	}
	return q
}

// validatePage checks Top and Skip.
func validatePage(top, skip int) error {
	if top < 0 || top > MaxTop {
		return argErr("Top", "%d is outside 0..%d", top, MaxTop)
	}
	if skip < 0 {
		return argErr("Skip", "%d is negative", skip)
	}
	return nil
}

// isMachineID reports whether id is 40 hexadecimal characters.
func isMachineID(id string) bool { return isHex40(id) }

// isHex40 reports whether s is 40 hexadecimal characters (a machine ID or a
// SHA-1).
func isHex40(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ValidMachineID reports whether id has the form of a Defender machine ID
// (40 hexadecimal characters).
func ValidMachineID(id string) bool { return isMachineID(id) }

func checkMachineID(name, id string) error {
	if !isMachineID(id) {
		return argErr(name, "want 40 hexadecimal characters")
	}
	return nil
}
