package failover

// What this director knows of its own ability to serve: the ping nodes
// it reaches and the state of its VIP interfaces. Either can put it in
// fault.

import (
	"context"
	"fmt"
	"net"
	"time"
)

// probeResult is one ping-node probe: when, and how many nodes answered.
type probeResult struct {
	at      time.Time
	reached int
}

// pingWindow is how long a ping node counts as reached after its last
// answer: longer than deadtime, as a router that drops a few echoes
// under load has not gone away, and a director must not give up the
// VIPs for that.
func (s *state) pingWindow() time.Duration {
	return max(4*s.n.cfg.Deadtime, time.Second)
}

// pinged records a probe and hands the election the best result within
// the ping window.
func (s *state) pinged(now time.Time, reached int) {
	s.probes = append(s.probes, probeResult{now, reached})
	best, keep := 0, s.probes[:0]
	for _, p := range s.probes {
		if now.Sub(p.at) <= s.pingWindow() {
			keep = append(keep, p)
			best = max(best, p.reached)
		}
	}
	s.probes = keep
	if best != s.el.PingReached() || !s.el.pinged {
		s.n.log.Info("failover: ping nodes", "reached", best, "of", s.n.cfg.PingTotal)
	}
	s.el.Pinged(best)
}

// pingInterval is how often the ping nodes are asked. While every one
// counts as reached: four times per ping window, so that three lost
// echoes in a row change nothing. More would cost the director and the
// router CPU without telling anything sooner: a node counts for the
// whole window after its last answer anyway, and a takeover asks afresh
// (earlyCheck). While one is missing: every keepalive, so that a
// director back on its network serves again at once.
func (s *state) pingInterval() time.Duration {
	if !s.el.PingKnown() || s.el.PingReached() < s.n.cfg.PingTotal {
		return s.n.cfg.Keepalive
	}
	return max(s.pingWindow()/4, s.n.cfg.Keepalive)
}

// probe asks the ping nodes, in the background, once per pingInterval.
func (s *state) probe(ctx context.Context, now time.Time) {
	p := s.n.cfg.Pinger
	if p == nil || p.Total() == 0 || s.probing || now.Sub(s.probed) < s.pingInterval() {
		return
	}
	s.probing, s.probed = true, now
	timeout := s.n.cfg.Deadtime / 2
	go func() {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		reached := p.Probe(pctx)
		cancel()
		s.post(ctx, func(s *state) {
			s.probing = false
			s.pinged(time.Now(), reached)
		})
	}()
}

// checkInterfaces puts the director in fault while a VIP's interface is
// missing or down, and takes it out when the interface is back.
func (s *state) checkInterfaces() {
	reason := ""
	for _, name := range s.n.cfg.VIPInterfaces {
		f, err := s.n.cfg.Interfaces.Flags(name)
		if err != nil {
			reason = fmt.Sprintf("VIP interface %s: %v", name, err)
			break
		}
		// Running is the carrier: a pulled cable leaves the interface up
		// but unable to serve.
		if f&net.FlagUp == 0 || f&net.FlagRunning == 0 {
			reason = fmt.Sprintf("VIP interface %s is down or has no carrier", name)
			break
		}
	}
	if reason != s.el.fault {
		if reason != "" {
			s.n.log.Error("failover: fault", "reason", reason)
		}
		s.el.SetFault(reason)
	}
}
