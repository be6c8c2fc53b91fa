package doctor

import (
	"fmt"
	"io"
	"strings"
)

// outcome is the result of one doctor check.
type outcome int

const (
	passed  outcome = iota // works
	warned                 // works, but something needs attention
	failed                 // would fail in production
	skipped                // not run: a check it depends on failed
)

// mark is the symbol a report line starts with.
func (o outcome) mark() string {
	return [...]string{"✓", "!", "✗", "-"}[o]
}

// report writes the doctor's findings, one line per check with its fix
// indented below, and counts them for the summary.
type report struct {
	w      io.Writer
	counts [4]int
}

// add writes one finding. detail lines (may be empty) follow the headline;
// fix, when set, is the exact action that resolves it.
func (r *report) add(o outcome, check, what, fix string, detail ...string) {
	r.counts[o]++
	fmt.Fprintf(r.w, "%s %-13s %s\n", o.mark(), check, what)
	for _, d := range detail {
		if d != "" {
			fmt.Fprintf(r.w, "  %-13s   %s\n", "", d)
		}
	}
	if fix != "" {
		lines := strings.Split(fix, "\n")
		fmt.Fprintf(r.w, "  %-13s   fix: %s\n", "", lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(r.w, "  %-13s        %s\n", "", l)
		}
	}
}

// skip records a check that could not run because of an earlier failure.
func (r *report) skip(check, why string) {
	r.add(skipped, check, "skipped: "+why, "")
}

// ok reports whether nothing would fail in production.
func (r *report) ok() bool { return r.counts[failed] == 0 }

// summary writes the closing line.
func (r *report) summary() {
	verdict := "this configuration should work in production."
	if r.counts[warned] > 0 {
		verdict = "this configuration should work in production; review the warnings (!)."
	}
	if !r.ok() {
		verdict = "this configuration would fail in production: apply the fixes above (✗) and run mdefn doctor again."
	}
	fmt.Fprintf(r.w, "\nsummary: %d ok, %s, %d failed, %d skipped: %s\n",
		r.counts[passed], plural(r.counts[warned], "warning"), r.counts[failed], r.counts[skipped], verdict)
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
