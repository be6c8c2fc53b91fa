package devserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/httpguard"
	"github.com/mdefn/mdefn/sim"
)

func sign(cfg *config.Config, body []byte) string {
	return httpguard.Sign([]byte(cfg.WebhookSecret), body)
}

// demoTick is how far the simulator's clock moves between two polls.
const demoTick = 10 * time.Second

// demo is one run of the scripted walk: its output, the functions' base URL
// and what each step hands to the next.
type demo struct {
	out  io.Writer
	base string
	sim  *sim.Sim
	cfg  *config.Config
	n    int // the current step's number
}

// step starts the next step.
func (d *demo) step(title string) {
	d.n++
	fmt.Fprintf(d.out, "\n%d. %s\n", d.n, title)
}

// send shows a request, sends it and shows the status.
func (d *demo) send(method, path string, body []byte, header http.Header) ([]byte, int, http.Header, error) {
	fmt.Fprintf(d.out, "   %s %s", method, path)
	for k, v := range header {
		fmt.Fprintf(d.out, "  %s: %s", k, strings.Join(v, ","))
	}
	if len(body) > 0 {
		fmt.Fprintf(d.out, "  %s", body)
	}
	fmt.Fprintln(d.out)
	b, status, h, err := callWith(d.base, d.cfg, method, path, body, header)
	if err != nil {
		return nil, 0, nil, err
	}
	fmt.Fprintf(d.out, "   → %d\n", status)
	return b, status, h, nil
}

func (d *demo) fail(what string, status int, body []byte) error {
	return fmt.Errorf("%w: %s answered %d: %s", errDemo, what, status, strings.TrimSpace(string(body)))
}

// actionAnswer is what the action functions and the actions function
// answer, as far as the demo reads it.
type actionAnswer struct {
	AlreadyPending bool `json:"alreadyPending"`
	Pending        bool `json:"pending"`
	Action         struct {
		ID, Type, Status, RequestorComment string
	} `json:"action"`
	URI string `json:"uri"`
}

// act sends an action request and wants 201 or 200 (or 202 when async).
func (d *demo) act(what, path, body string, header http.Header) (actionAnswer, http.Header, error) {
	var a actionAnswer
	b, status, h, err := d.send(http.MethodPost, path, []byte(body), header)
	if err != nil {
		return a, nil, err
	}
	if status != http.StatusCreated && status != http.StatusOK && status != http.StatusAccepted {
		return a, nil, d.fail(what, status, b)
	}
	_ = json.Unmarshal(b, &a)
	fmt.Fprintf(d.out, "   action %s: %s, %s, comment %q\n", a.Action.ID, a.Action.Type, a.Action.Status, a.Action.RequestorComment)
	return a, h, nil
}

// wait polls the actions function at location until the action has ended,
// moving the simulator's clock one tick between polls, as a playbook's wait
// loop would (the 202 answers carry Retry-After).
func (d *demo) wait(location string) (actionAnswer, error) {
	var a actionAnswer
	for i := 0; i < 12; i++ {
		b, status, err := call(d.base, d.cfg, http.MethodGet, location, nil)
		if err != nil {
			return a, err
		}
		if status != http.StatusOK && status != http.StatusAccepted {
			return a, d.fail("actions", status, b)
		}
		a = actionAnswer{}
		_ = json.Unmarshal(b, &a)
		fmt.Fprintf(d.out, "   t+%03ds  GET %s → %d %s\n", i*int(demoTick/time.Second), pathOf(location), status, a.Action.Status)
		if !a.Pending {
			return a, nil
		}
		d.sim.Advance(demoTick)
	}
	return a, fmt.Errorf("%w: action %s still %s after two minutes", errDemo, a.Action.ID, a.Action.Status)
}

// pathOf is the path of an absolute or relative URL, for display.
func pathOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Path != "" {
		return p.Path
	}
	return u
}

// runDemo walks a newcomer through the functions against the simulator:
// High alerts → isolate the device of the first → a repeated delivery →
// wait for the isolation → scan → collect an investigation package
// asynchronously → wait → its download link → release → tokencheck.
func runDemo(out io.Writer, base string, s *sim.Sim, cfg *config.Config) error {
	d := &demo{out: out, base: base, sim: s, cfg: cfg}
	fmt.Fprintf(out, "mdefn demo against the embedded simulator (functions on %s)\n", base)

	d.step("List the newest High-severity alerts")
	b, status, _, err := d.send(http.MethodGet, "/api/alerts?severity=High&status=New&top=3", nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return d.fail("alerts", status, b)
	}
	var page struct {
		Value []struct {
			ID, Title, MachineID, ComputerDNSName string
			AlertCreationTime                     time.Time
		} `json:"value"`
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Value) == 0 {
		return fmt.Errorf("%w: no High alerts in the simulator", errDemo)
	}
	for _, a := range page.Value {
		fmt.Fprintf(out, "   • %s  %-40.40s  %s\n", a.AlertCreationTime.Format("2006-01-02 15:04"), a.Title, a.ComputerDNSName)
	}
	first := page.Value[0]

	d.step(fmt.Sprintf("Isolate %s, the device of the first alert", first.ComputerDNSName))
	body := fmt.Sprintf(`{"machineId":%q,"comment":"demo: %s","ticket":"INC0012345","isolationType":"Selective"}`,
		first.MachineID, strings.ReplaceAll(first.Title, `"`, ""))
	iso, _, err := d.act("isolate", "/api/isolate", body, nil)
	if err != nil {
		return err
	}

	d.step("Deliver the same webhook again (a retry): no second action")
	again, _, err := d.act("repeated isolate", "/api/isolate", body, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   alreadyPending=%v, same action: %v\n", again.AlreadyPending, again.Action.ID == iso.Action.ID)

	d.step(fmt.Sprintf("Wait for the isolation: poll /api/actions/{id} (the simulator's clock moves %v a poll)", demoTick))
	if _, err := d.wait("/api/actions/" + iso.Action.ID); err != nil {
		return err
	}

	d.step("Run a full antivirus scan on it")
	if _, _, err := d.act("scan", "/api/scan", fmt.Sprintf(`{"machineId":%q,"scanType":"Full","comment":"demo: scan after isolation","ticket":"INC0012345"}`, first.MachineID), nil); err != nil {
		return err
	}

	d.step("Collect an investigation package, asynchronously (Prefer: respond-async)")
	col, h, err := d.act("collect", "/api/collect", fmt.Sprintf(`{"machineId":%q,"comment":"demo: forensics for the ticket","ticket":"INC0012345"}`, first.MachineID),
		http.Header{"Prefer": {"respond-async"}})
	if err != nil {
		return err
	}
	location := h.Get("Location")
	fmt.Fprintf(out, "   Location: %s  Retry-After: %s\n", location, h.Get("Retry-After"))
	if location == "" {
		location = "/api/actions/" + col.Action.ID
	}

	d.step("Wait for the collection on the Location")
	done, err := d.wait(location)
	if err != nil {
		return err
	}

	d.step("Get the package's download link for the ticket")
	b, status, _, err = d.send(http.MethodGet, "/api/actions/"+done.Action.ID+"/package", nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return d.fail("actions package", status, b)
	}
	var pkg actionAnswer
	_ = json.Unmarshal(b, &pkg)
	// The link carries its own credential in its query: shown without it.
	fmt.Fprintf(out, "   uri: %s?…  (short-lived; download it at once)\n", strings.SplitN(pkg.URI, "?", 2)[0])

	d.step("Release it, naming the device by host name this time")
	rel := fmt.Sprintf(`{"deviceName":%q,"comment":"demo: cleared","ticket":"INC0012345","release":true}`, first.ComputerDNSName)
	b, status, _, err = d.send(http.MethodPost, "/api/isolate", []byte(rel), nil)
	if err != nil {
		return err
	}
	if status >= 300 {
		fmt.Fprintf(out, "   %s\n", strings.TrimSpace(string(b)))
	} else {
		var res actionAnswer
		_ = json.Unmarshal(b, &res)
		fmt.Fprintf(out, "   action %s: %s, %s\n", res.Action.ID, res.Action.Type, res.Action.Status)
	}

	d.step("Check what the functions' token allows")
	b, status, _, err = d.send(http.MethodGet, "/api/tokencheck", nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return d.fail("tokencheck", status, b)
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
	for _, c := range functions.Checks() {
		f := tc.Functions[c.Name]
		fmt.Fprintf(out, "   %-18s allowed=%v %s\n", c.Name, f.Allowed, strings.Join(f.Missing, ", "))
	}
	fmt.Fprintln(out, "\nDone. `go run ./cmd/mdefn dev` keeps the stack running for your own calls.")
	return nil
}
