package failover

// The frames the node hears on its links and sends on them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// read decodes frames from one link. Authentication happens here, so a
// flood of forged frames costs the state goroutine nothing.
func (n *Node) read(ctx context.Context, i int, l heartbeat.Link, out chan<- received) {
	buf := make([]byte, 2048)
	for {
		k, err := l.Recv(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Debug("failover: link receive", "link", l.Name(), "err", err)
			continue
		}
		m, err := heartbeat.Decode(n.cfg.Key, buf[:k])
		switch {
		case errors.Is(err, heartbeat.ErrBadMAC):
			n.forged.Add(1)
			continue
		case err != nil:
			n.malformed.Add(1)
			continue
		}
		if d := time.Since(m.Time); d > n.cfg.Keepalive {
			n.log.Debug("failover: late heartbeat", "link", l.Name(), "age", d, "seq", m.Seq)
		}
		select {
		case out <- received{link: i, msg: m, at: time.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

// heard takes an authenticated frame.
func (s *state) heard(ctx context.Context, f received) {
	n := s.n
	m := f.msg
	if m.Node == n.cfg.Node {
		if m.Boot != s.boot {
			n.foreign.Add(1)
			n.log.Warn("failover: a heartbeat carries this director's own node name; two directors share a name", "link", n.cfg.Links[f.link].Name())
		}
		return
	}
	ls := &s.links[f.link]
	if err := ls.replay.Check(m, f.at); err != nil {
		n.replayed.Add(1)
		n.log.Debug("failover: heartbeat refused", "link", n.cfg.Links[f.link].Name(), "err", err)
		return
	}
	ls.heard, ls.received = f.at, ls.received+1
	if !ls.up {
		ls.up = true
		n.log.Info("failover: heartbeat link up", "link", n.cfg.Links[f.link].Name(), "peer", m.Node)
	}
	if m.Kind == heartbeat.KindLeaving && f.at.Sub(m.Time) > n.cfg.Deadtime {
		// A peer that is leaving is taken over at once, without the VIP
		// probe: only if it says so now. Said over deadtime ago, and
		// held back on the way, it tells nothing of the peer since; its
		// silence and the probe decide, as for any silent peer.
		n.log.Warn("failover: a late 'leaving' from the peer ignored", "link", n.cfg.Links[f.link].Name(), "sent", m.Time, "age", f.at.Sub(m.Time).Round(time.Millisecond))
		return
	}
	if s.newest.Node == m.Node && s.newest.Boot != m.Boot && !m.Time.After(s.newest.Time) {
		// An earlier boot's message, delivered late on a link that held
		// it (a cut cable, a queue waiting for ARP): the peer started
		// again since, and this is older news than this director has. A
		// crashed director's guard says it is gone in such a message.
		n.replayed.Add(1)
		n.log.Debug("failover: a heartbeat of the peer's earlier boot refused", "link", n.cfg.Links[f.link].Name(), "boot", fmt.Sprintf("%016x", m.Boot), "sent", m.Time)
		return
	}
	// Before the check for copies heard on another link: records are
	// merged, not replaced, so a copy does no harm, and a message
	// overtaken by the next on another link still counts.
	s.heardDrains(m, f.at)
	if s.newest.Node == m.Node && s.newest.Boot == m.Boot && m.Seq <= s.newest.Seq {
		// Already heard on another link; only the liveness of the
		// peer moves on.
		if m.Seq == s.newest.Seq {
			s.el.Heard(m, f.at)
		}
		return
	}
	s.newest = m
	prev, _, known := s.el.Peer()
	wasAlive := s.el.PeerAlive(f.at)
	if !known || prev.Node != m.Node {
		n.log.Info("failover: peer heard", "peer", m.Node, "role", m.Role, "priority", m.Priority)
	} else if !wasAlive && m.Kind != heartbeat.KindLeaving {
		n.log.Info("failover: peer heard again", "peer", m.Node, "role", m.Role)
	}
	if ok := m.ConfigDigest == n.cfg.Digest; ok != s.digestOK || !known {
		s.digestOK = ok
		if !ok {
			n.log.Warn("failover: the peer's service configuration differs from this director's; a failover will change what is served", "peer", m.Node)
		} else if known {
			n.log.Info("failover: the peer's service configuration matches again", "peer", m.Node)
		}
	}
	if m.Kind == heartbeat.KindLeaving {
		n.log.Info("failover: peer is leaving", "peer", m.Node)
	}
	if m.Role != prev.Role && known && m.Kind != heartbeat.KindLeaving {
		n.log.Info("failover: peer changed role", "peer", m.Node, "from", prev.Role, "to", m.Role)
	}
	s.fenced = false
	s.el.Heard(m, f.at)
	// A dual-active moment resolved in our favour: the peer's
	// announcements may have won the neighbours' caches, so repeat ours.
	if known && prev.Role == heartbeat.RoleActive && m.Role != heartbeat.RoleActive && s.el.Role() == heartbeat.RoleActive && n.cfg.VIPs != nil {
		if err := n.cfg.VIPs.Announce(ctx); err != nil {
			n.log.Warn("failover: announcing the VIPs again", "err", err)
		}
	}
}

// drain takes every frame already waiting.
func (s *state) drain(ctx context.Context, frames <-chan received) {
	for {
		select {
		case f := <-frames:
			s.heard(ctx, f)
		default:
			return
		}
	}
}

// watchLinks reports links that went quiet. A quiet link changes
// nothing while another still carries heartbeats.
func (s *state) watchLinks(now time.Time) {
	for i := range s.links {
		ls := &s.links[i]
		if ls.up && now.Sub(ls.heard) >= s.n.cfg.Deadtime {
			ls.up = false
			s.n.log.Warn("failover: heartbeat link down", "link", s.n.cfg.Links[i].Name(), "silent_for", now.Sub(ls.heard).Round(time.Millisecond))
		}
	}
}

// send sends one message on every link.
func (s *state) send(kind heartbeat.Kind) { s.sendMessage(kind, nil) }

// sendMessage sends one message, with drain records on a KindDrains.
func (s *state) sendMessage(kind heartbeat.Kind, drains []heartbeat.DrainRecord) {
	n := s.n
	if kind == heartbeat.KindDrains && s.peerVersion != 0 {
		return // an earlier release's peer cannot read them
	}
	s.seq++
	pref, prefSeq := s.el.Pref()
	m := heartbeat.Message{
		Kind:         kind,
		Node:         n.cfg.Node,
		Priority:     n.cfg.Priority,
		Role:         s.el.Role(),
		Boot:         s.boot,
		Seq:          s.seq,
		Time:         time.Now(),
		ConfigDigest: n.cfg.Digest,
		PingReached:  uint8(min(s.el.PingReached(), 255)),
		PingTotal:    uint8(min(n.cfg.PingTotal, 255)),
		Pref:         pref,
		PrefSeq:      prefSeq,
		DrainDigest:  s.drains.digest,
		Drains:       drains,
		Version:      s.peerVersion,
	}
	if !s.el.PingKnown() {
		m.PingReached, m.PingTotal = 0, 0
	}
	frame, err := heartbeat.Encode(n.cfg.Key, m)
	if err != nil {
		n.log.Error("failover: cannot encode a heartbeat", "err", err)
		return
	}
	for i, l := range n.cfg.Links {
		if err := l.Send(frame); err != nil {
			ls := &s.links[i]
			ls.sendErrors++
			if msg := err.Error(); msg != ls.lastErr {
				ls.lastErr = msg
				n.log.Warn("failover: heartbeat send failed", "link", l.Name(), "err", err)
			}
		} else {
			s.links[i].lastErr = ""
			s.links[i].sent++
		}
	}
}
