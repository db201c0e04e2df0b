package failover

import (
	"context"
	"slices"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// drainState is what the node tells the peer of the drains.
type drainState struct {
	recs   []heartbeat.DrainRecord
	digest [8]byte
	// sent is when the records last went out whole; pending, that they
	// changed since and go out at the next keepalive.
	sent    time.Time
	pending bool
}

func (d *drainState) set(recs []heartbeat.DrainRecord) {
	d.recs = slices.Clone(recs)
	heartbeat.SortDrains(d.recs)
	d.digest = heartbeat.DrainDigest(d.recs)
}

// drainResend bounds how often the records go out again while the
// peer's digest differs: a lost message is repaired within it, and a
// peer whose config lacks some server (so never agrees) costs one
// message a period.
func (s *state) drainResend() time.Duration { return max(time.Second, 2*s.n.cfg.Deadtime) }

// sendDrains sends every record, in as many messages as they need.
func (s *state) sendDrains(now time.Time) {
	s.drains.sent, s.drains.pending = now, false
	for _, part := range heartbeat.SplitDrains(s.drains.recs) {
		s.sendMessage(heartbeat.KindDrains, part)
	}
}

// heardDrains passes the peer's records on, and sends this director's
// when the peer's digest says it holds other ones.
func (s *state) heardDrains(m heartbeat.Message, now time.Time) {
	if m.Version != s.peerVersion {
		// A pair upgraded one director at a time: answer in the peer's
		// format, or the peer, hearing nothing it can read, would take
		// this director for dead and the VIPs with it.
		s.peerVersion = m.Version
		if m.Version != 0 {
			s.n.log.Warn("failover: the peer runs an earlier release (heartbeat version 1); answering in it, and drains are not shared until it is upgraded", "peer", m.Node)
		} else {
			s.n.log.Info("failover: the peer speaks the current heartbeat version; drains are shared", "peer", m.Node)
		}
	}
	if m.Kind == heartbeat.KindDrains && len(m.Drains) > 0 && s.n.cfg.OnDrains != nil {
		s.n.cfg.OnDrains(m.Drains)
	}
	if m.DrainDigest != s.drains.digest && now.Sub(s.drains.sent) >= s.drainResend() {
		s.sendDrains(now)
	}
}

// sendPendingDrains sends records that changed since they last went
// out; the keepalive tick calls it.
func (s *state) sendPendingDrains(now time.Time) {
	if s.drains.pending {
		s.sendDrains(now)
	}
}

// SetDrains replaces the records the peer is told of, and tells it: at
// once, or at the next keepalive if they went out less than a keepalive
// ago. A burst of changes (a merge of many messages, a script draining a
// rack) then costs one set a keepalive, not one per change.
func (n *Node) SetDrains(ctx context.Context, recs []heartbeat.DrainRecord) error {
	return n.do(ctx, func(s *state) { s.setDrains(recs, time.Now()) })
}

func (s *state) setDrains(recs []heartbeat.DrainRecord, now time.Time) {
	s.drains.set(recs)
	if now.Sub(s.drains.sent) >= s.n.cfg.Keepalive {
		s.sendDrains(now)
	} else {
		s.drains.pending = true
	}
}
