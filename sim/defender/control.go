package defender

import (
	"cmp"
	"slices"
	"strings"
)

// This file is the test control API: small, for tests and `mdefn dev`.

// AddMachine adds m, or replaces the machine with the same ID (compared
// case-insensitively). m.Isolated and m.CodeRestricted are its starting
// states.
func (s *Server) AddMachine(m Machine) {
	c := m.clone()
	key := strings.ToLower(c.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.machineByID[key]; old != nil {
		i := slices.Index(s.machines, old)
		s.machines = slices.Clone(s.machines)
		s.machines[i] = &c
	} else {
		s.machines = append(slices.Clip(s.machines), &c)
	}
	s.machineByID[key] = &c
}

// RemoveMachine deletes the machine with id; it reports whether it existed.
func (s *Server) RemoveMachine(id string) bool {
	key := strings.ToLower(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.machineByID[key]
	if old == nil {
		return false
	}
	s.machines = slices.DeleteFunc(slices.Clone(s.machines), func(m *Machine) bool { return m == old })
	delete(s.machineByID, key)
	return true
}

// Machine returns a copy of the machine with id (case-insensitive), its
// Isolated and CodeRestricted fields as of now.
func (s *Server) Machine(id string) (Machine, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.machineByID[strings.ToLower(id)]
	if m == nil {
		return Machine{}, false
	}
	c := m.clone()
	now := s.now()
	c.Isolated = s.isolatedLocked(m, now)
	c.CodeRestricted = s.restrictedLocked(m, now)
	return c, true
}

// Machines returns copies of all machines in insertion order.
func (s *Server) Machines() []Machine {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	out := make([]Machine, 0, len(s.machines))
	for _, m := range s.machines {
		c := m.clone()
		c.Isolated = s.isolatedLocked(m, now)
		c.CodeRestricted = s.restrictedLocked(m, now)
		out = append(out, c)
	}
	return out
}

// AddAlerts adds alerts, replacing any with the same ID.
func (s *Server) AddAlerts(alerts ...Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make([]*Alert, 0, len(s.alerts)+len(alerts))
	added := make(map[string]bool, len(alerts))
	for i := range alerts {
		a := alerts[i]
		a.evSeed = 0
		next = append(next, &a)
		added[a.ID] = true
		s.alertByID[a.ID] = &a
	}
	for _, a := range s.alerts {
		if !added[a.ID] {
			next = append(next, a)
		}
	}
	sortAlerts(next)
	s.alerts = next
}

// Alert returns a copy of the alert with id, its evidence filled in.
func (s *Server) Alert(id string) (Alert, bool) {
	s.mu.RLock()
	a := s.alertByID[id]
	s.mu.RUnlock()
	if a == nil {
		return Alert{}, false
	}
	c := *a
	c.Evidence = a.evidence()
	return c, true
}

// Alerts returns copies of all alerts in page order (newest first),
// without generated evidence.
func (s *Server) Alerts() []Alert {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Alert, len(s.alerts))
	for i, a := range s.alerts {
		out[i] = *a
	}
	return out
}

// AlertCount returns the number of alerts.
func (s *Server) AlertCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.alerts)
}

// Actions returns every machine action as of now, newest first.
func (s *Server) Actions() []MachineAction {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.now()
	out := make([]MachineAction, 0, len(s.actions))
	for i := len(s.actions) - 1; i >= 0; i-- {
		out = append(out, s.actions[i].at(now))
	}
	slices.SortStableFunc(out, func(a, b MachineAction) int {
		return b.CreationDateTimeUTC.Compare(a.CreationDateTimeUTC)
	})
	return out
}

// SetActionTimings sets the timings of actions created from now on.
func (s *Server) SetActionTimings(t ActionTimings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timings = t
}

// SetActionOutcome sets the final status of actions created from now on:
// ActionSucceeded (the default), ActionFailed or ActionTimeOut. Only a
// Succeeded action changes the device's isolation or restriction state, and
// only a Succeeded collection has a package.
func (s *Server) SetActionOutcome(st ActionStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = cmp.Or(st, ActionSucceeded)
}

// FailAction makes the Pending or InProgress action with id end Failed
// (still at its completion time). It reports false, changing nothing, when
// there is no such action or it has already ended.
func (s *Server) FailAction(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.actionByID[strings.ToLower(id)]
	if a == nil || !a.active(s.now()) {
		return false
	}
	a.final = ActionFailed
	return true
}

// failRule is one FailNextAction: empty fields match anything.
type failRule struct {
	machineID string // lowercase
	typ       ActionType
}

// FailNextAction makes the next action created on machineID ("" for any
// device) of type typ ("" for any type) end Failed instead of with the
// SetActionOutcome status. Each call fails one action; calls queue up, the
// oldest matching rule is used first. Reset forgets them. For example
// FailNextAction(DCMachineID, ActionIsolate) fails the next isolation of
// the domain controller, and FailNextAction("", "") the next action of all.
func (s *Server) FailNextAction(machineID string, typ ActionType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRules = append(s.failRules, failRule{machineID: strings.ToLower(machineID), typ: typ})
}

// takeFailRuleLocked removes and reports the oldest FailNextAction rule
// matching an action of type typ on machineID (lowercase).
func (s *Server) takeFailRuleLocked(machineID string, typ ActionType) bool {
	for i, r := range s.failRules {
		if (r.machineID == "" || r.machineID == machineID) && (r.typ == "" || r.typ == typ) {
			s.failRules = slices.Delete(s.failRules, i, i+1)
			return true
		}
	}
	return false
}

// SetRateLimits replaces the rate limits and forgets past calls. Zero
// fields disable that window.
func (s *Server) SetRateLimits(rl RateLimits) {
	s.limiter.set(rl)
	s.pkgLimiter.set(RateLimits{PerMinute: rl.PackageURIPerMinute, PerHour: rl.PackageURIPerHour})
}

// Stats returns a copy of the call counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the call counters.
func (s *Server) ResetStats() { s.stats.reset() }

// Reset restores the seeded data (same seed and base time), deletes every
// action (so package links stop working), forgets FailNextAction rules,
// and zeroes counters and rate-limit windows. Timings, outcome and limits
// return to the Options' values.
func (s *Server) Reset() {
	s.loadSeed()
	s.mu.Lock()
	s.timings = DefaultActionTimings
	if s.opts.ActionTimings != nil {
		s.timings = *s.opts.ActionTimings
	}
	s.outcome = ActionSucceeded
	s.failRules = nil
	s.mu.Unlock()
	s.indicators.mu.Lock()
	s.indicators.next, s.indicators.byID, s.indicators.byItem = 0, nil, nil
	s.indicators.mu.Unlock()
	s.SetRateLimits(s.optRateLimits())
	s.stats.reset()
}
