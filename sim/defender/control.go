package defender

import (
	"cmp"
	"slices"
	"strings"
)

// This file is the test control API: small, for tests and `mdefn dev`.

// AddMachine adds m, or replaces the machine with the same ID (compared
// case-insensitively). m.Isolated is its starting isolation state.
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
// Isolated field as of now.
func (s *Server) Machine(id string) (Machine, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.machineByID[strings.ToLower(id)]
	if m == nil {
		return Machine{}, false
	}
	c := m.clone()
	c.Isolated = s.isolatedLocked(m, s.now())
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
// Succeeded action changes the device's isolation state.
func (s *Server) SetActionOutcome(st ActionStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = cmp.Or(st, ActionSucceeded)
}

// SetRateLimits replaces the rate limits and forgets past calls. Zero
// fields disable that window.
func (s *Server) SetRateLimits(rl RateLimits) { s.limiter.set(rl) }

// Stats returns a copy of the call counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the call counters.
func (s *Server) ResetStats() { s.stats.reset() }

// Reset restores the seeded data (same seed and base time), deletes every
// action, and zeroes counters and rate-limit windows. Timings, outcome and
// limits return to the Options' values.
func (s *Server) Reset() {
	s.loadSeed()
	s.mu.Lock()
	s.timings = DefaultActionTimings
	if s.opts.ActionTimings != nil {
		s.timings = *s.opts.ActionTimings
	}
	s.outcome = ActionSucceeded
	s.mu.Unlock()
	rl := RateLimits{PerMinute: defaultPerMinute, PerHour: defaultPerHour}
	if s.opts.RateLimits != nil {
		rl = *s.opts.RateLimits
	}
	s.limiter.set(rl)
	s.stats.reset()
}
