package failover

import (
	"time"

	"github.com/directorlb/director/heartbeat"
)

// Params are the election's settings, from the config's failover block.
type Params struct {
	Node         string
	Priority     uint8
	AutoFailback bool
	Deadtime     time.Duration
	Initdead     time.Duration
	// PingTotal is how many ping nodes are configured; 0 disables the
	// ping-node rules.
	PingTotal int
}

// peer is what the election knows of the other director: its last
// authenticated message and when it arrived.
type peer struct {
	msg   heartbeat.Message
	heard time.Time
}

// Reason says why the election wants the role it wants. It decides what
// must happen before a standby may become active.
type Reason uint8

const (
	// ReasonNone: no change of role wanted.
	ReasonNone Reason = iota
	// ReasonPeerDead: the peer fell silent (or was never heard within
	// initdead). Taking over needs the ping nodes' confirmation and the
	// fence, where configured.
	ReasonPeerDead
	// ReasonPeerLeft: the peer said it is leaving, stepped down or is in
	// fault. It is alive and not serving, so no fence is needed.
	ReasonPeerLeft
	// ReasonRank: both are healthy and the rank decides.
	ReasonRank
)

func (r Reason) String() string {
	switch r {
	case ReasonPeerDead:
		return "peer dead"
	case ReasonPeerLeft:
		return "peer not serving"
	case ReasonRank:
		return "rank"
	}
	return "none"
}

// Election is the pair's state machine, for one director. It is pure:
// the caller feeds it what happened and the time, and asks it what role
// to be in. It never acts itself, so every rule is unit-tested with a
// fake clock, and the node that drives it owns all the effects.
type Election struct {
	p     Params
	start time.Time
	role  heartbeat.Role
	peer  *peer
	// pingReached is how many ping nodes answered lately; pinged is
	// false until the first probe has reported.
	pingReached int
	pinged      bool
	// fault is why this director cannot serve, "" when it can.
	fault string
	// faultEnded is when this director last left the fault role.
	faultEnded time.Time
	// pref and prefSeq are the operator's standing request on this
	// director (see Message.Pref); peerPrefSeq is the newest request seen
	// from the peer.
	pref        int8
	prefSeq     uint32
	peerPrefSeq uint32
}

// NewElection starts an election at now in the init role.
func NewElection(p Params, now time.Time) *Election {
	return &Election{p: p, start: now, role: heartbeat.RoleInit}
}

// Role is the role in force.
func (e *Election) Role() heartbeat.Role { return e.role }

// SetRole records the role the node now really holds, from now.
func (e *Election) SetRole(r heartbeat.Role, now time.Time) {
	if e.role == heartbeat.RoleFault && r != heartbeat.RoleFault {
		e.faultEnded = now
	}
	e.role = r
}

// recovering reports whether this director is coming out of fault: in
// it still, its cause gone, or out of it for less than deadtime.
func (e *Election) recovering(now time.Time) bool {
	return e.role == heartbeat.RoleFault || (!e.faultEnded.IsZero() && now.Sub(e.faultEnded) < e.p.Deadtime)
}

// Heard records an authenticated, fresh message from the peer.
func (e *Election) Heard(m heartbeat.Message, now time.Time) {
	e.peer = &peer{msg: m, heard: now}
	// The operator's newest request wins: a request made on the peer
	// after ours cancels ours.
	if m.PrefSeq != e.peerPrefSeq {
		e.peerPrefSeq = m.PrefSeq
		if m.Pref != 0 {
			e.pref = 0
		}
	}
}

// Pinged records how many ping nodes answered lately.
func (e *Election) Pinged(reached int) { e.pingReached, e.pinged = reached, true }

// PingReached is what the latest probe found.
func (e *Election) PingReached() int { return e.pingReached }

// PingKnown reports whether a probe has reported yet.
func (e *Election) PingKnown() bool { return e.pinged }

// SetFault marks this director unable to serve ("" clears it).
func (e *Election) SetFault(reason string) { e.fault = reason }

// Fault is why this director cannot serve, or "" when it can.
func (e *Election) Fault() string {
	if e.fault != "" {
		return e.fault
	}
	if e.p.PingTotal > 0 && e.pinged && e.pingReached == 0 {
		return "no ping node answers"
	}
	return ""
}

// Takeover records the operator's request to make this director active.
func (e *Election) Takeover() { e.pref, e.prefSeq = 1, e.prefSeq+1 }

// Release records the operator's request to hand the VIPs to the peer.
func (e *Election) Release() { e.pref, e.prefSeq = -1, e.prefSeq+1 }

// Pref is the operator's standing request and its sequence number.
func (e *Election) Pref() (int8, uint32) { return e.pref, e.prefSeq }

// PeerAlive reports whether the peer is heard within deadtime and has
// not said it is leaving.
func (e *Election) PeerAlive(now time.Time) bool {
	return e.peer != nil && e.peer.msg.Kind != heartbeat.KindLeaving && now.Sub(e.peer.heard) < e.p.Deadtime
}

// Peer is the peer's last message and when it came; ok is false if the
// peer was never heard.
func (e *Election) Peer() (m heartbeat.Message, heard time.Time, ok bool) {
	if e.peer == nil {
		return heartbeat.Message{}, time.Time{}, false
	}
	return e.peer.msg, e.peer.heard, true
}

// Deadline is when the election must be asked again even if nothing
// happens: the end of initdead, the moment the peer would be dead, or
// the end of the wait after leaving fault.
func (e *Election) Deadline() time.Time {
	var d time.Time
	if e.peer == nil && e.role != heartbeat.RoleActive {
		d = e.start.Add(e.p.Initdead)
	}
	if e.peer != nil && e.peer.msg.Kind != heartbeat.KindLeaving {
		if dead := e.peer.heard.Add(e.p.Deadtime); d.IsZero() || dead.Before(d) {
			d = dead
		}
	}
	if e.role == heartbeat.RoleStandby && !e.faultEnded.IsZero() {
		if end := e.faultEnded.Add(e.p.Deadtime); d.IsZero() || end.Before(d) {
			d = end
		}
	}
	return d
}

// Want is the role this director should be in at now, and why. Active
// is wanted only when the peer is not active too, so two directors that
// see the same messages never both want the VIPs: the loser steps down
// first, says so at once, and the winner takes over on hearing it.
func (e *Election) Want(now time.Time) (heartbeat.Role, Reason) {
	if e.Fault() != "" {
		return heartbeat.RoleFault, ReasonNone
	}
	if !e.PeerAlive(now) {
		if e.peer != nil && e.peer.msg.Kind == heartbeat.KindLeaving {
			return heartbeat.RoleActive, ReasonPeerLeft
		}
		if e.role != heartbeat.RoleActive && e.peer == nil && now.Sub(e.start) < e.p.Initdead {
			return heartbeat.RoleInit, ReasonNone
		}
		if e.role == heartbeat.RoleActive {
			return heartbeat.RoleActive, ReasonNone
		}
		return heartbeat.RoleActive, ReasonPeerDead
	}
	pm := e.peer.msg
	if pm.Role != heartbeat.RoleActive && e.recovering(now) {
		// Out of fault this moment, perhaps on the same news as the peer
		// (a ping node both had lost answers again), and each side's
		// view of the other is a heartbeat old: of two directors in
		// fault the higher in rank serves first; otherwise this one waits
		// a deadtime for a fresh word from the peer, which serves now or
		// soon will.
		if pm.Role == heartbeat.RoleFault && e.ranksAbove(pm) {
			return heartbeat.RoleActive, ReasonPeerLeft
		}
		return heartbeat.RoleStandby, ReasonRank
	}
	if pm.Role == heartbeat.RoleFault {
		return heartbeat.RoleActive, ReasonPeerLeft
	}
	if !e.outranks(pm) {
		return heartbeat.RoleStandby, ReasonRank
	}
	if pm.Role == heartbeat.RoleActive && e.role != heartbeat.RoleActive {
		// Ours by rank, but the peer still holds the VIPs: wait for it
		// to step down, which it does as soon as it hears us.
		return heartbeat.RoleStandby, ReasonRank
	}
	if e.role == heartbeat.RoleActive {
		return heartbeat.RoleActive, ReasonNone
	}
	return heartbeat.RoleActive, ReasonRank
}

// ranksAbove is the order configured: priority, then the lower name.
func (e *Election) ranksAbove(pm heartbeat.Message) bool {
	if e.p.Priority != pm.Priority {
		return e.p.Priority > pm.Priority
	}
	return e.p.Node < pm.Node
}

// outranks decides between two healthy directors that hear each other.
// Both sides apply the same rules to the same facts, so they agree.
func (e *Election) outranks(pm heartbeat.Message) bool {
	// heartbeat's ipfail: the director that reaches more ping nodes serves.
	// A director that has not probed yet says PingTotal 0: its count is
	// unknown, not zero, and must not lose it the election.
	if e.p.PingTotal > 0 && e.pinged && pm.PingTotal > 0 && int(pm.PingReached) != e.pingReached {
		return e.pingReached > int(pm.PingReached)
	}
	// The operator's standing request.
	if e.pref != pm.Pref {
		return e.pref > pm.Pref
	}
	// Without auto_failback the director that serves keeps serving.
	if !e.p.AutoFailback && (e.role == heartbeat.RoleActive) != (pm.Role == heartbeat.RoleActive) {
		return e.role == heartbeat.RoleActive
	}
	return e.ranksAbove(pm)
}
