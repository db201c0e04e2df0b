package failover

// The role changes: what becoming active or giving it up does to the
// VIPs, the sync daemons and the connections, in which order, and how the
// peer and the notify hook are told.

import (
	"context"
	"fmt"
	"time"

	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/ipvssync"
)

// become makes the role real: VIPs and the master sync daemon follow the
// active role, the peer is told at once, and notify runs.
func (s *state) become(ctx context.Context, r heartbeat.Role, why Reason) {
	n := s.n
	from := s.el.Role()
	if r == heartbeat.RoleActive {
		if n.cfg.VIPs != nil {
			if err := n.cfg.VIPs.Acquire(ctx); err != nil {
				n.log.Error("failover: cannot take the VIPs", "err", err)
				s.el.SetFault(fmt.Sprintf("taking the VIPs: %v", err))
				s.stepDown(nil)
				s.setRole(heartbeat.RoleFault, from, why)
				return
			}
		}
		if n.cfg.Sync != nil {
			d := n.cfg.SyncDaemon
			d.State = ipvssync.SyncMaster
			if err := n.cfg.Sync.Start(d); err != nil {
				n.log.Error("failover: cannot start the IPVS sync daemon as master; the standby's connection table will go stale", "err", err)
			}
		}
		s.setRole(r, from, why)
	} else if from == heartbeat.RoleActive || from == heartbeat.RoleInit {
		// The peer hears of the change the moment the VIPs are out.
		s.stepDown(func() { s.setRole(r, from, why) })
	} else {
		s.setRole(r, from, why)
	}
	if r != heartbeat.RoleActive && n.cfg.VIPs != nil {
		// After the peer has been told: nothing waits for this.
		n.cfg.VIPs.Prepare()
	}
}

func (s *state) setRole(r, from heartbeat.Role, why Reason) {
	s.since = time.Now()
	s.el.SetRole(r, s.since)
	s.transitions[r]++
	peer := ""
	if m, _, ok := s.el.Peer(); ok {
		peer = m.Node
	}
	s.n.log.Info("failover: role changed", "from", from, "to", r, "reason", why, "peer", peer)
	s.send(heartbeat.KindHeartbeat)
	if len(s.n.cfg.Notify) > 0 {
		select {
		case s.notify <- r:
		default:
			s.n.log.Error("failover: notify is too slow; a role change was not notified", "role", r)
		}
	}
}

// stepDown gives up what only the active director holds; then, if not
// nil, runs the moment the VIPs are out of the kernel (it tells the peer).
//
// An active director hands its connections to a live peer before its
// VIPs go, so the peer holds them before it answers for the VIPs; and,
// once they are out, what changed meanwhile (the handshakes in flight).
// Where packets for a VIP that reach this director once it is gone are
// forwarded, they reach the peer the moment it answers ARP, so the peer
// must know their connections first: the second pass comes before the
// peer is told. Where they are dropped, the client sends again a timeout
// later (200ms at least), long after the second pass: it comes after the
// peer is told, so as not to add to the time no director answers.
func (s *state) stepDown(then func()) {
	hand := s.el.Role() == heartbeat.RoleActive && s.n.cfg.Handover != nil && s.el.PeerAlive(time.Now())
	forwarded := hand && s.n.cfg.Forwarded != nil && s.n.cfg.Forwarded()
	if hand {
		s.handOver(true)
	}
	s.releaseVIPs(func() {
		if forwarded {
			s.handOver(false)
		}
		if then != nil {
			then()
		}
		if hand && !forwarded {
			s.handOver(false)
		}
	})
	s.stopSyncMaster()
}

// handOver sends the peer this director's connections (Handover.Hand),
// within half of deadtime. The state goroutine waits for it, and sends
// heartbeats every keepalive meanwhile: a large table takes long enough
// to read that a silent director would be taken for dead.
func (s *state) handOver(fresh bool) {
	start := time.Now()
	type result struct {
		st  ipvssync.HandoverStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := s.n.cfg.Handover.Hand(fresh, start.Add(s.n.cfg.Deadtime/2))
		done <- result{st, err}
	}()
	tick := time.NewTicker(s.n.cfg.Keepalive)
	defer tick.Stop()
	var r result
	for waiting := true; waiting; {
		select {
		case r = <-done:
			waiting = false
		case <-tick.C:
			s.send(heartbeat.KindHeartbeat)
		}
	}
	st, err := r.st, r.err
	log := s.n.log.With("read", st.Read, "sent", st.Sent, "skipped", st.Skipped, "messages", st.Messages, "took", time.Since(start).Round(time.Microsecond))
	switch {
	case err != nil:
		log.Warn("failover: cannot hand the connections to the peer; those the kernel has not synced will be reset", "err", err)
	case st.Cut:
		log.Warn("failover: the connection table was too large to hand to the peer in time; those the kernel has not synced will be reset")
	case fresh:
		log.Info("failover: connections handed to the peer")
	default:
		log.Info("failover: connections handed to the peer once the VIPs were out")
	}
}

// releaseVIPs removes the VIPs; gone runs once they are out of the
// kernel (vip.VIPs.Release), or at once without VIPs.
func (s *state) releaseVIPs(gone func()) {
	vips := s.n.cfg.VIPs
	if vips == nil {
		if gone != nil {
			gone()
		}
		return
	}
	if err := vips.Release(gone); err != nil {
		s.n.log.Error("failover: cannot remove the VIPs", "err", err)
	}
}

func (s *state) stopSyncMaster() {
	if sd := s.n.cfg.Sync; sd != nil {
		if err := sd.Stop(ipvssync.SyncMaster); err != nil {
			s.n.log.Error("failover: cannot stop the IPVS master sync daemon", "err", err)
		}
	}
}

// leave is the graceful stop: the VIPs go first, so the pair never holds
// them twice, then the peer is told, on every link, to take over now.
// The master sync daemon stops after that: the peer's takeover need not
// wait for it, and until then it syncs the last connections.
func (s *state) leave() {
	tell := func() {
		s.el.SetRole(heartbeat.RoleStandby, time.Now())
		s.send(heartbeat.KindLeaving)
	}
	if s.el.Role() == heartbeat.RoleActive {
		// Told the moment the addresses are out of the kernel and the
		// last connections handed over, before the releases are logged
		// and the guard hears of them.
		s.stepDown(tell)
	} else {
		tell()
	}
	s.n.log.Info("failover: left the pair")
}
