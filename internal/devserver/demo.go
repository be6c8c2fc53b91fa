package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/httpguard"
	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/sim"
)

func sign(cfg *config.Config, body []byte) string {
	return httpguard.Sign([]byte(cfg.WebhookSecret), body)
}

// runDemo walks a newcomer through the functions against the simulator:
// High alerts → isolate the device of the first → watch the action complete
// → release → tokencheck.
func runDemo(base string, s *sim.Sim, c *wiring.Components, cfg *config.Config) error {
	out := os.Stdout
	step := func(n int, title string) { fmt.Fprintf(out, "\n%d. %s\n", n, title) }
	show := func(method, path string, body []byte) ([]byte, int, error) {
		fmt.Fprintf(out, "   %s %s", method, path)
		if len(body) > 0 {
			fmt.Fprintf(out, "  %s", body)
		}
		fmt.Fprintln(out)
		b, status, err := call(base, cfg, method, path, body)
		if err != nil {
			return nil, 0, err
		}
		fmt.Fprintf(out, "   → %d\n", status)
		return b, status, nil
	}
	fail := func(what string, status int, body []byte) error {
		return fmt.Errorf("%w: %s answered %d: %s", errDemo, what, status, strings.TrimSpace(string(body)))
	}

	fmt.Fprintf(out, "mdefn demo against the embedded simulator (functions on %s)\n", base)

	step(1, "List the newest High-severity alerts")
	b, status, err := show(http.MethodGet, "/api/alerts?severity=High&status=New&top=3", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fail("alerts", status, b)
	}
	var page struct {
		Value []struct {
			ID, Title, MachineID, ComputerDNSName string
			AlertCreationTime                     time.Time
		} `json:"value"`
		Count int `json:"count"`
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Value) == 0 {
		return fmt.Errorf("%w: no High alerts in the simulator", errDemo)
	}
	for _, a := range page.Value {
		fmt.Fprintf(out, "   • %s  %-40.40s  %s\n", a.AlertCreationTime.Format("2006-01-02 15:04"), a.Title, a.ComputerDNSName)
	}
	first := page.Value[0]

	step(2, fmt.Sprintf("Isolate %s, the device of the first alert", first.ComputerDNSName))
	body := fmt.Sprintf(`{"machineId":%q,"comment":"demo: %s","ticket":"INC0012345","isolationType":"Selective"}`,
		first.MachineID, strings.ReplaceAll(first.Title, `"`, ""))
	b, status, err = show(http.MethodPost, "/api/isolate", []byte(body))
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return fail("isolate", status, b)
	}
	var res struct {
		AlreadyPending bool `json:"alreadyPending"`
		Action         struct {
			ID, Type, Status, RequestorComment string
		} `json:"action"`
	}
	_ = json.Unmarshal(b, &res)
	fmt.Fprintf(out, "   action %s: %s, %s, comment %q\n", res.Action.ID, res.Action.Type, res.Action.Status, res.Action.RequestorComment)

	step(3, "Deliver the same webhook again (a retry): no second action")
	b, status, err = show(http.MethodPost, "/api/isolate", []byte(body))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fail("repeated isolate", status, b)
	}
	var again struct {
		AlreadyPending bool                `json:"alreadyPending"`
		Action         struct{ ID string } `json:"action"`
	}
	_ = json.Unmarshal(b, &again)
	fmt.Fprintf(out, "   alreadyPending=%v, same action: %v\n", again.AlreadyPending, again.Action.ID == res.Action.ID)

	step(4, "Watch the action complete (the simulator's clock moves 10 s a tick)")
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		a, err := c.Defender.GetMachineAction(ctx, res.Action.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "   t+%02ds  %s\n", i*10, a.Status)
		if a.Status == "Succeeded" || a.Status == "Failed" || a.Status == "Cancelled" || a.Status == "TimeOut" {
			break
		}
		s.Advance(10 * time.Second)
	}

	step(5, "Release it, naming the device by host name this time")
	rel := fmt.Sprintf(`{"deviceName":%q,"comment":"demo: cleared","ticket":"INC0012345","release":true}`, first.ComputerDNSName)
	b, status, err = show(http.MethodPost, "/api/isolate", []byte(rel))
	if err != nil {
		return err
	}
	if status >= 300 {
		fmt.Fprintf(out, "   %s\n", strings.TrimSpace(string(b)))
	} else {
		_ = json.Unmarshal(b, &res)
		fmt.Fprintf(out, "   action %s: %s, %s\n", res.Action.ID, res.Action.Type, res.Action.Status)
	}

	step(6, "Check what the functions' token allows")
	b, status, err = show(http.MethodGet, "/api/tokencheck", nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fail("tokencheck", status, b)
	}
	var tc struct {
		Valid     bool     `json:"valid"`
		TokenType string   `json:"tokenType"`
		Roles     []string `json:"roles"`
		Functions map[string]struct {
			Allowed bool     `json:"allowed"`
			Missing []string `json:"missing"`
		} `json:"functions"`
	}
	_ = json.Unmarshal(b, &tc)
	fmt.Fprintf(out, "   valid=%v %s token, roles %s\n", tc.Valid, tc.TokenType, strings.Join(tc.Roles, ", "))
	for _, name := range []string{"alerts", "isolate", "isolateByName", "tokencheck"} {
		f := tc.Functions[name]
		fmt.Fprintf(out, "   %-14s allowed=%v %s\n", name, f.Allowed, strings.Join(f.Missing, ", "))
	}
	fmt.Fprintln(out, "\nDone. `go run ./cmd/mdefn dev` keeps the stack running for your own calls.")
	return nil
}
