package failover

import (
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func params(node string, prio uint8) Params {
	return Params{Node: node, Priority: prio, Deadtime: 200 * time.Millisecond, Initdead: time.Second}
}

func hb(node string, prio uint8, role heartbeat.Role) heartbeat.Message {
	return heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: node, Priority: prio, Role: role}
}

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestElectionInitWaitsForInitdead(t *testing.T) {
	e := NewElection(params("a", 100), t0)
	if r, _ := e.Want(at(999)); r != heartbeat.RoleInit {
		t.Fatalf("before initdead: want %s, got %s", heartbeat.RoleInit, r)
	}
	if d := e.Deadline(); !d.Equal(at(1000)) {
		t.Errorf("deadline %v, want the end of initdead", d)
	}
	if r, why := e.Want(at(1000)); r != heartbeat.RoleActive || why != ReasonPeerDead {
		t.Fatalf("after initdead without a peer: got %s (%s), want active (peer dead)", r, why)
	}
}

func TestElectionInitHearsActivePeer(t *testing.T) {
	e := NewElection(params("a", 200), t0)
	e.Heard(hb("b", 100, heartbeat.RoleActive), at(10))
	// auto_failback off: the serving peer keeps serving even though we
	// have the higher priority.
	if r, _ := e.Want(at(10)); r != heartbeat.RoleStandby {
		t.Fatalf("got %s, want standby", r)
	}
}

func TestElectionRank(t *testing.T) {
	for _, tc := range []struct {
		name     string
		self     Params
		selfRole heartbeat.Role
		pingSelf int
		peer     heartbeat.Message
		want     heartbeat.Role
	}{
		{"higher priority, both init", params("b", 200), heartbeat.RoleInit, 0, hb("a", 100, heartbeat.RoleInit), heartbeat.RoleActive},
		{"lower priority, both init", params("a", 100), heartbeat.RoleInit, 0, hb("b", 200, heartbeat.RoleInit), heartbeat.RoleStandby},
		{"equal priority: lower name wins", params("a", 100), heartbeat.RoleInit, 0, hb("b", 100, heartbeat.RoleInit), heartbeat.RoleActive},
		{"equal priority: higher name loses", params("b", 100), heartbeat.RoleInit, 0, hb("a", 100, heartbeat.RoleInit), heartbeat.RoleStandby},
		{"no failback: the active one stays", params("a", 50), heartbeat.RoleActive, 0, hb("b", 200, heartbeat.RoleStandby), heartbeat.RoleActive},
		{"no failback: higher priority waits", params("b", 200), heartbeat.RoleStandby, 0, hb("a", 50, heartbeat.RoleActive), heartbeat.RoleStandby},
		{"failback: higher priority waits for the peer to step down", Params{Node: "b", Priority: 200, AutoFailback: true, Deadtime: time.Second}, heartbeat.RoleStandby, 0, hb("a", 50, heartbeat.RoleActive), heartbeat.RoleStandby},
		{"failback: lower priority steps down", Params{Node: "a", Priority: 50, AutoFailback: true, Deadtime: time.Second}, heartbeat.RoleActive, 0, hb("b", 200, heartbeat.RoleStandby), heartbeat.RoleStandby},
		{"failback: higher priority takes over once the peer is standby", Params{Node: "b", Priority: 200, AutoFailback: true, Deadtime: time.Second}, heartbeat.RoleStandby, 0, hb("a", 50, heartbeat.RoleStandby), heartbeat.RoleActive},
		{"dual active: the lower rank steps down", params("a", 50), heartbeat.RoleActive, 0, hb("b", 200, heartbeat.RoleActive), heartbeat.RoleStandby},
		{"dual active: the higher rank stays", params("b", 200), heartbeat.RoleActive, 0, hb("a", 50, heartbeat.RoleActive), heartbeat.RoleActive},
		{"peer in fault", params("a", 50), heartbeat.RoleStandby, 0, hb("b", 200, heartbeat.RoleFault), heartbeat.RoleActive},
		{"ipfail: fewer ping nodes yields", Params{Node: "a", Priority: 200, Deadtime: time.Second, PingTotal: 2}, heartbeat.RoleActive, 1, heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "b", Priority: 100, Role: heartbeat.RoleStandby, PingReached: 2, PingTotal: 2}, heartbeat.RoleStandby},
		{"ipfail: more ping nodes serves", Params{Node: "b", Priority: 100, Deadtime: time.Second, PingTotal: 2}, heartbeat.RoleStandby, 2, heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleStandby, PingReached: 1, PingTotal: 2}, heartbeat.RoleActive},
		{"no ping node answers: fault", Params{Node: "b", Priority: 100, Deadtime: time.Second, PingTotal: 2}, heartbeat.RoleActive, 0, hb("a", 200, heartbeat.RoleStandby), heartbeat.RoleFault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewElection(tc.self, t0)
			e.SetRole(tc.selfRole, t0)
			e.Pinged(tc.pingSelf)
			e.Heard(tc.peer, at(0))
			if got, _ := e.Want(at(1)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestElectionAgrees plays both sides of every pairing of roles and
// settings and checks they never both want to be active.
// A director in the fault role here is one whose fault has just cleared.
func TestElectionAgrees(t *testing.T) {
	roles := []heartbeat.Role{heartbeat.RoleInit, heartbeat.RoleStandby, heartbeat.RoleActive, heartbeat.RoleFault}
	for _, fb := range []bool{false, true} {
		for _, pa := range []uint8{100, 200} {
			for _, ra := range roles {
				for _, rb := range roles {
					for _, prefA := range []int8{-1, 0, 1} {
						a := NewElection(Params{Node: "a", Priority: pa, AutoFailback: fb, Deadtime: time.Second}, t0)
						b := NewElection(Params{Node: "b", Priority: 150, AutoFailback: fb, Deadtime: time.Second}, t0)
						a.SetRole(ra, t0)
						b.SetRole(rb, t0)
						a.pref = prefA
						ma := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: pa, Role: ra, Pref: prefA}
						mb := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "b", Priority: 150, Role: rb}
						a.Heard(mb, at(0))
						b.Heard(ma, at(0))
						wa, _ := a.Want(at(1))
						wb, _ := b.Want(at(1))
						// A director only becomes active from a
						// non-active role when the peer is not active.
						newA := wa == heartbeat.RoleActive && ra != heartbeat.RoleActive && rb == heartbeat.RoleActive
						newB := wb == heartbeat.RoleActive && rb != heartbeat.RoleActive && ra == heartbeat.RoleActive
						if newA || newB {
							t.Errorf("fb=%v prio a=%d roles %s/%s pref %d: a wants %s, b wants %s: takes the VIPs from an active peer", fb, pa, ra, rb, prefA, wa, wb)
						}
						if wa == heartbeat.RoleActive && wb == heartbeat.RoleActive {
							t.Errorf("fb=%v prio a=%d roles %s/%s pref %d: both want active", fb, pa, ra, rb, prefA)
						}
						if ra != heartbeat.RoleInit || rb != heartbeat.RoleInit {
							if wa != heartbeat.RoleActive && wb != heartbeat.RoleActive && !(ra == heartbeat.RoleActive || rb == heartbeat.RoleActive) {
								t.Errorf("fb=%v prio a=%d roles %s/%s pref %d: neither wants active", fb, pa, ra, rb, prefA)
							}
						}
					}
				}
			}
		}
	}
}

// A ping node both directors lost answers again: both leave fault on the
// same news, each still seeing the other in fault. Only the higher in
// rank takes over; the other waits a deadtime for a fresh word, and takes
// over after it only if the peer is still in fault.
func TestElectionBothLeaveFault(t *testing.T) {
	p := func(node string, prio uint8) Params {
		return Params{Node: node, Priority: prio, Deadtime: 200 * time.Millisecond, PingTotal: 1}
	}
	a, b := NewElection(p("a", 200), t0), NewElection(p("b", 100), t0)
	for _, e := range []*Election{a, b} {
		e.SetRole(heartbeat.RoleFault, t0)
		e.Pinged(1)
	}
	fault := func(e *Election) heartbeat.Message {
		return heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: e.p.Node, Priority: e.p.Priority, Role: heartbeat.RoleFault, PingReached: 0, PingTotal: 1}
	}
	a.Heard(fault(b), at(0))
	b.Heard(fault(a), at(0))
	if r, why := a.Want(at(1)); r != heartbeat.RoleActive || why != ReasonPeerLeft {
		t.Errorf("a (higher): got %s (%s), want active (peer not serving)", r, why)
	}
	r, _ := b.Want(at(1))
	if r != heartbeat.RoleStandby {
		t.Fatalf("b (lower): got %s, want standby until it hears from a", r)
	}
	b.SetRole(r, at(1))
	// Still in fault by a's word within the wait: b waits on.
	b.Heard(fault(a), at(100))
	if d := b.Deadline(); !d.Equal(at(201)) {
		t.Errorf("b's deadline %v, want the end of its wait at +201ms", d)
	}
	if r, _ := b.Want(at(150)); r != heartbeat.RoleStandby {
		t.Errorf("b within the wait: got %s, want standby", r)
	}
	// a stayed in fault: after the wait b serves.
	b.Heard(fault(a), at(200))
	if r, why := b.Want(at(201)); r != heartbeat.RoleActive || why != ReasonPeerLeft {
		t.Errorf("b after the wait, a still in fault: got %s (%s), want active", r, why)
	}
}

func TestElectionPeerDeath(t *testing.T) {
	e := NewElection(params("b", 100), t0)
	e.Heard(hb("a", 200, heartbeat.RoleActive), at(0))
	e.SetRole(heartbeat.RoleStandby, t0)
	if d := e.Deadline(); !d.Equal(at(200)) {
		t.Errorf("deadline %v, want last heard + deadtime", d)
	}
	if r, _ := e.Want(at(199)); r != heartbeat.RoleStandby {
		t.Fatalf("within deadtime: got %s", r)
	}
	if r, why := e.Want(at(200)); r != heartbeat.RoleActive || why != ReasonPeerDead {
		t.Fatalf("after deadtime: got %s (%s), want active (peer dead)", r, why)
	}
	// Heard again: the active peer keeps the VIPs.
	e.Heard(hb("a", 200, heartbeat.RoleActive), at(300))
	if r, _ := e.Want(at(301)); r != heartbeat.RoleStandby {
		t.Fatalf("peer back: got %s", r)
	}
}

func TestElectionLeavingPeer(t *testing.T) {
	e := NewElection(params("b", 100), t0)
	e.SetRole(heartbeat.RoleStandby, t0)
	e.Heard(hb("a", 200, heartbeat.RoleActive), at(0))
	leave := hb("a", 200, heartbeat.RoleStandby)
	leave.Kind = heartbeat.KindLeaving
	e.Heard(leave, at(10))
	if r, why := e.Want(at(10)); r != heartbeat.RoleActive || why != ReasonPeerLeft {
		t.Fatalf("got %s (%s), want active at once (peer left)", r, why)
	}
	if e.PeerAlive(at(10)) {
		t.Error("a leaving peer is not alive")
	}
}

func TestElectionSwitchover(t *testing.T) {
	a := NewElection(params("a", 200), t0)
	b := NewElection(params("b", 100), t0)
	a.SetRole(heartbeat.RoleActive, t0)
	b.SetRole(heartbeat.RoleStandby, t0)
	msg := func(e *Election) heartbeat.Message {
		p, seq := e.Pref()
		return heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: e.p.Node, Priority: e.p.Priority, Role: e.Role(), Pref: p, PrefSeq: seq}
	}
	exchange := func(ms int) {
		ma, mb := msg(a), msg(b)
		a.Heard(mb, at(ms))
		b.Heard(ma, at(ms))
	}
	step := func(e *Election, ms int) heartbeat.Role {
		r, _ := e.Want(at(ms))
		e.SetRole(r, t0)
		return r
	}
	exchange(0)
	// takeover on b: a steps down first, then b takes over.
	b.Takeover()
	if r := step(b, 1); r != heartbeat.RoleStandby {
		t.Fatalf("b must wait for a to step down, got %s", r)
	}
	exchange(2)
	if r := step(a, 3); r != heartbeat.RoleStandby {
		t.Fatalf("a after b's takeover request: %s", r)
	}
	exchange(4)
	if r := step(b, 5); r != heartbeat.RoleActive {
		t.Fatalf("b after a stepped down: %s", r)
	}
	exchange(6)
	if r := step(a, 7); r != heartbeat.RoleStandby {
		t.Fatalf("a stays standby: %s", r)
	}
	// release on b hands back to a.
	b.Release()
	if r := step(b, 8); r != heartbeat.RoleStandby {
		t.Fatalf("b after release: %s", r)
	}
	exchange(9)
	if r := step(a, 10); r != heartbeat.RoleActive {
		t.Fatalf("a after b's release: %s", r)
	}
	// A newer request on a cancels b's standing one.
	a.Release()
	exchange(11)
	if p, _ := b.Pref(); p != 0 {
		t.Errorf("b's request should be cancelled by a's newer one, pref %d", p)
	}
}

func TestElectionFault(t *testing.T) {
	e := NewElection(params("a", 200), t0)
	e.SetFault("VIP interface eth0 is down")
	if r, _ := e.Want(at(5000)); r != heartbeat.RoleFault {
		t.Fatalf("got %s, want fault", r)
	}
	e.SetFault("")
	if r, _ := e.Want(at(5000)); r != heartbeat.RoleActive {
		t.Fatalf("fault cleared, no peer: got %s", r)
	}
}
