package failover

// What the node checks before it takes over from a peer that fell
// silent, or that yields by rank: the ping nodes (is this director the
// one cut off?), the fence, and the VIP probe (does anything still answer
// for the VIPs?). The early check runs them shortly before deadtime.

import (
	"context"
	"sync"
	"time"

	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/vip"
)

// evaluate asks the election what to be, and gets there.
func (s *state) evaluate(ctx context.Context) {
	now := time.Now()
	s.evaluated = now
	// Links are judged with the same clock as the peer, first: when the
	// peer is dead, every link it spoke on is already down, in the log
	// and in the status an admin reads at that moment.
	s.watchLinks(now)
	if at := s.earlyAt(); !at.IsZero() && !now.Before(at) && s.el.PeerAlive(now) {
		s.checkEarly(ctx)
	}
	want, why := s.el.Want(now)
	cur := s.el.Role()
	if want == cur || s.takingOver {
		return
	}
	deadChecks := why == ReasonPeerDead && (s.n.cfg.Fence != nil || (s.n.cfg.Pinger != nil && s.n.cfg.Pinger.Total() > 0))
	// Taking over by rank needs the VIP probe too: two directors whose
	// views crossed in flight may both think the other yields. So does
	// taking over from a peer in fault: its word may be old news, held
	// back on a link (a queue waiting for ARP while a cable was out) and
	// delivered to a director that has heard nothing newer (one just
	// restarted), while the peer has since left fault and holds the
	// VIPs. Only a peer that said it is leaving is taken over at once:
	// a graceful stop is the switchover no client may notice.
	probe := s.n.cfg.ProbeVIPs != nil && (why != ReasonPeerLeft || !s.peerLeaving())
	if want == heartbeat.RoleActive && (deadChecks || probe) {
		if now.Before(s.retryAt) {
			return
		}
		if _, heard, _ := s.el.Peer(); why == ReasonPeerDead && s.early != nil && s.early.heard.Equal(heard) {
			if !s.early.done {
				return // evaluated again when its result comes
			}
			if s.earlyFresh(now) {
				s.n.log.Info("failover: peer dead; the ping nodes and the VIPs were checked just before deadtime", "checked_ago", now.Sub(s.early.ended).Round(time.Millisecond))
				s.become(ctx, want, why)
				return
			}
		}
		s.confirmTakeover(ctx, why)
		return
	}
	s.become(ctx, want, why)
}

// probeTimeout is how long the VIP probe listens for an answer. A live
// kernel answers ARP at once, so one keepalive is plenty. It need not
// grow when this host runs late: an answer that arrives in time waits in
// the socket, and the probe takes it even when it reads after the window
// (vip.ProbeVIPs reads what is queued).
func (s *state) probeTimeout() time.Duration { return s.n.cfg.Keepalive }

// earlyCheck is a fresh ping-node probe and VIP probe run while the peer
// is silent but not yet dead, so that the takeover at deadtime does not
// wait for them. It counts only for the silence it started in.
type earlyCheck struct {
	heard time.Time // the peer's last message when it started
	done  bool
	// clear: a ping node answered (or none is configured) and nothing
	// answered for the VIPs.
	clear bool
	// answered: only the VIPs stood in the way (something still answered
	// for them), so a repeat may find them gone (earlyAt).
	answered bool
	ended    time.Time
}

// earlyAt is when to start the early check of the current silence of the
// peer, or zero if there is none to run: with a fence (which must wait
// until the peer is declared dead), with nothing to probe, on the active
// director, or when this silence already has its check. It starts one
// probe window (and half a keepalive) before deadtime, so that its result
// is fresh when deadtime comes, but never before half of deadtime has
// passed in silence.
//
// A check that found only the VIPs in the way is repeated at once, for as
// long as a repeat can end before deadtime: a crashed director's kernel
// answers for its VIPs until its guard removes them, a moment after the
// crash, and a clear result just before deadtime spares the takeover a
// probe of its own after it.
func (s *state) earlyAt() time.Time {
	cfg := &s.n.cfg
	pings := cfg.Pinger != nil && cfg.Pinger.Total() > 0
	if len(cfg.Fence) > 0 || (cfg.ProbeVIPs == nil && !pings) || s.el.Role() == heartbeat.RoleActive || s.takingOver {
		return time.Time{}
	}
	m, heard, ok := s.el.Peer()
	if !ok || m.Kind == heartbeat.KindLeaving {
		return time.Time{}
	}
	if e := s.early; e != nil && e.heard.Equal(heard) {
		if !e.done || !e.answered || e.ended.Add(s.probeTimeout()).After(heard.Add(cfg.Deadtime)) {
			return time.Time{}
		}
		return e.ended
	}
	lead := s.probeTimeout() + cfg.Keepalive/2
	return heard.Add(max(cfg.Deadtime-lead, cfg.Deadtime/2))
}

// earlyFresh is how old a clear early check may be at deadtime and still
// stand for a probe made then.
func (s *state) earlyFresh(now time.Time) bool {
	return s.early.clear && now.Sub(s.early.ended) <= s.n.cfg.Keepalive
}

// checkEarly runs the early check in the background: the ping nodes and
// the VIPs are probed side by side, each within one probe window.
func (s *state) checkEarly(ctx context.Context) {
	_, heard, _ := s.el.Peer()
	e := &earlyCheck{heard: heard}
	s.early = e
	p, probeVIPs, window := s.n.cfg.Pinger, s.n.cfg.ProbeVIPs, s.probeTimeout()
	go func() {
		var wg sync.WaitGroup
		reached, probed := 0, p != nil && p.Total() > 0
		if probed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, window)
				reached = p.Probe(pctx)
				cancel()
			}()
		}
		var answers []vip.VIPAnswer
		var perr error
		if probeVIPs != nil {
			pctx, cancel := context.WithTimeout(ctx, window)
			answers, perr = probeVIPs(pctx)
			cancel()
		}
		wg.Wait()
		s.post(ctx, func(s *state) {
			if probed && reached > 0 {
				// A miss within this short window is no news: the
				// regular probes and the takeover's own decide that.
				s.pinged(time.Now(), reached)
			}
			e.done, e.ended = true, time.Now()
			conclusive := (!probed || reached > 0) && perr == nil
			e.clear = conclusive && len(answers) == 0
			e.answered = conclusive && len(answers) > 0
		})
	}()
}

// confirmTakeover checks, before taking over from a silent peer, that
// this director is not the one cut off (a fresh ping-node probe), and
// runs the fence. Both run in the background; the result comes back as
// an event, and the election is asked again then.
func (s *state) confirmTakeover(ctx context.Context, why Reason) {
	s.takingOver = true
	peerName := ""
	if m, _, ok := s.el.Peer(); ok {
		peerName = m.Node
	}
	p, fence, fenced, probeVIPs := s.n.cfg.Pinger, s.n.cfg.Fence, s.fenced, s.n.cfg.ProbeVIPs
	if why != ReasonPeerDead {
		// The peer is alive and not serving: no fence, no ping check.
		p, fence = nil, nil
	}
	timeout, hookTimeout, probeTimeout := s.n.cfg.Deadtime, s.n.cfg.HookTimeout, s.probeTimeout()
	go func() {
		// A live kernel answers ARP at once, even when its directord is
		// stalled (see probeTimeout).
		var answers []vip.VIPAnswer
		var perr error
		vipsProbed := false
		checkVIPs := func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			answers, perr = probeVIPs(pctx)
			cancel()
			vipsProbed = true
		}
		reached, probed := 0, false
		if p != nil && p.Total() > 0 {
			// With no fence to run between them, the VIPs are probed
			// while the ping nodes are: their answer counts only if a
			// ping node answers too.
			var wg sync.WaitGroup
			if probeVIPs != nil && (len(fence) == 0 || fenced) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					checkVIPs()
				}()
			}
			pctx, cancel := context.WithTimeout(ctx, timeout)
			reached, probed = p.Probe(pctx), true
			cancel()
			wg.Wait()
		}
		var ferr error
		if len(fence) > 0 && !fenced && (!probed || reached > 0) {
			ferr = runHook(ctx, hookTimeout, fence, peerName)
		}
		if probeVIPs != nil && !vipsProbed && (!probed || reached > 0) && ferr == nil {
			checkVIPs()
		}
		s.post(ctx, func(s *state) {
			s.takingOver = false
			if probed {
				s.pinged(time.Now(), reached)
			}
			if probed && reached == 0 {
				s.n.log.Warn("failover: the peer is silent but no ping node answers either; not taking over", "peer", peerName)
				return
			}
			if len(fence) > 0 && !fenced {
				if ferr != nil {
					s.retryAt = time.Now().Add(s.n.cfg.Deadtime)
					s.n.log.Error("failover: fence failed; not taking over", "peer", peerName, "err", ferr)
					return
				}
				s.fenced = true
				s.n.log.Info("failover: peer fenced", "peer", peerName)
			}
			if perr != nil {
				s.n.log.Warn("failover: cannot probe the VIPs before taking them", "err", perr)
			}
			if len(answers) > 0 {
				s.retryAt = time.Now().Add(s.n.cfg.Keepalive)
				if !s.vipBusy {
					s.vipBusy = true
					s.n.log.Warn("failover: the VIPs still answer on the network; not taking them twice", "peer", peerName, "vip", answers[0].VIP.Prefix.Addr(), "mac", answers[0].MAC)
				}
				return
			}
			s.vipBusy = false
			if want, why := s.el.Want(time.Now()); want == heartbeat.RoleActive && s.el.Role() != heartbeat.RoleActive {
				s.become(ctx, want, why)
			}
		})
	}()
}

// peerLeaving reports whether the peer's last word was that it is leaving
// (a graceful stop or its guard's farewell), rather than a fault.
func (s *state) peerLeaving() bool {
	m, _, ok := s.el.Peer()
	return ok && m.Kind == heartbeat.KindLeaving
}
