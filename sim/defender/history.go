package defender

import (
	"cmp"
	"strings"
	"time"
)

// AddAction records a machine action that ended before now, as the action
// history of a real tenant holds them (an analyst's collection of last
// week, say), and returns it as stored. The device must exist. ID is
// generated when empty; Status is the final status (Succeeded when empty;
// Pending and InProgress are taken as Succeeded, since the action has
// ended); CreationDateTimeUTC defaults to an hour before now and
// LastUpdateDateTimeUTC to a minute after creation. A Succeeded
// CollectInvestigationPackage action has a package (GetPackageUri).
func (s *Server) AddAction(a MachineAction) (MachineAction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machineByID[strings.ToLower(a.MachineID)]
	if m == nil {
		return MachineAction{}, false
	}
	now := s.now()
	final := a.Status
	if final == "" || final == ActionPending || final == ActionInProgress {
		final = ActionSucceeded
	}
	base := a
	base.ID = cmp.Or(strings.ToLower(a.ID), newGUID())
	base.MachineID, base.ComputerDNSName = m.ID, m.ComputerDNSName
	base.RequestSource = cmp.Or(a.RequestSource, "Portal")
	if base.CreationDateTimeUTC.IsZero() || base.CreationDateTimeUTC.After(now) {
		base.CreationDateTimeUTC = now.Add(-time.Hour)
	}
	done := a.LastUpdateDateTimeUTC
	if done.IsZero() || done.Before(base.CreationDateTimeUTC) {
		done = base.CreationDateTimeUTC.Add(time.Minute)
	}
	if done.After(now) {
		done = now
	}
	base.Status, base.LastUpdateDateTimeUTC = "", time.Time{}
	st := &action{base: base, inProgressAt: base.CreationDateTimeUTC, doneAt: done, final: final}
	s.actions = append(s.actions, st)
	s.actionByID[base.ID] = st
	s.actionsByMachine[m.ID] = append(s.actionsByMachine[m.ID], st)
	return st.at(now), true
}
