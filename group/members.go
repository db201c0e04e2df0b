package group

// The member table, owned by Run's goroutine.

import (
	"cmp"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/heartbeat"
)

// member is another director, as last heard.
type member struct {
	node string
	// replay guards this member's frames alone: one guard per member,
	// so that a group larger than a guard's memory never makes it
	// forget a sender.
	replay    heartbeat.ReplayGuard
	boot      uint64
	lastSeen  time.Time
	interval  time.Duration
	digest    [16]byte
	announced []netip.Prefix
	drained   bool
	leaving   bool
	truncated bool
	alive     bool // as last logged
	// warned is the digest pair (theirs, ours) last warned about; a
	// warning is logged once per change of either.
	warned      bool
	warnedPair  [2][16]byte
	skewWarned  bool
	truncWarned bool
}

func (m *member) aliveAt(now time.Time) bool {
	return !m.leaving && now.Sub(m.lastSeen) <= deadIntervals*m.interval
}

type state struct {
	g       *Group
	seq     uint64
	self    Local // as last sent
	sent    bool
	members map[string]*member
	// sendFailing is set per link while sending fails, so that a link
	// failing for good is logged once.
	sendFailing []bool
	// clashBoot is the boot of the last other director heard with this
	// director's name, warned about once.
	clashBoot uint64
	// skewWarned are senders not yet members whose clock is off, warned
	// about once each.
	skewWarned map[string]bool
	selfTrunc  bool
}

func newState(g *Group) *state {
	return &state{
		g:           g,
		members:     map[string]*member{},
		sendFailing: make([]bool, len(g.links)),
		skewWarned:  map[string]bool{},
	}
}

// send says what this director is now, on every link.
func (s *state) send(leaving bool) {
	g := s.g
	l := g.local()
	l.Announced = s.normalise(l.Announced)
	if s.sent && l.Digest != s.self.Digest {
		g.log.Info("group: this director's digest changed", "digest", hex.EncodeToString(l.Digest[:]))
		now := g.now()
		for _, m := range s.members {
			if m.aliveAt(now) {
				s.judgeDigest(m, l.Digest)
			}
		}
	}
	s.self, s.sent = l, true
	s.seq++
	msg := heartbeat.GroupMessage{
		Node:      g.cfg.Node,
		Boot:      g.boot,
		Seq:       s.seq,
		Time:      g.now(),
		Interval:  g.cfg.Interval,
		Digest:    l.Digest,
		Announced: l.Announced,
		Drained:   l.Drained,
		Leaving:   leaving,
		Truncated: s.selfTrunc,
	}
	frame, err := heartbeat.EncodeGroup(g.cfg.Key, msg)
	if err != nil {
		// New checked the name and key; normalise the VIPs.
		g.log.Error("group: cannot encode this director's heartbeat", "err", err)
		return
	}
	for i, link := range g.links {
		err := link.Send(frame)
		switch {
		case err != nil && !s.sendFailing[i]:
			s.sendFailing[i] = true
			g.log.Warn("group: cannot send on a link; the others will not hear this director on it", "link", link.Name(), "err", err)
		case err != nil:
			g.log.Debug("group: send", "link", link.Name(), "err", err)
		case s.sendFailing[i]:
			s.sendFailing[i] = false
			g.log.Info("group: sending on a link again", "link", link.Name())
		}
	}
}

// normalise keeps the VIPs a heartbeat can carry, sorted, at most
// heartbeat.MaxGroupPrefixes of them, and says when it cut the list.
func (s *state) normalise(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if err := heartbeat.CheckGroupPrefix(p); err != nil {
			s.g.log.Debug("group: a VIP left out of the heartbeat", "err", err)
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	out = slices.Compact(out)
	trunc := len(out) > heartbeat.MaxGroupPrefixes
	if trunc {
		out = out[:heartbeat.MaxGroupPrefixes]
	}
	if trunc != s.selfTrunc {
		s.selfTrunc = trunc
		if trunc {
			s.g.log.Warn("group: more VIPs announced than a heartbeat carries; the others see the first only", "carried", heartbeat.MaxGroupPrefixes)
		}
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// heard takes an authenticated frame.
func (s *state) heard(f received) {
	g := s.g
	msg := f.msg
	if msg.Node == g.cfg.Node {
		if msg.Boot != g.boot && msg.Boot != s.clashBoot {
			s.clashBoot = msg.Boot
			g.log.Warn("group: a heartbeat carries this director's own node name; two directors share a name", "link", g.links[f.link].Name(), "node", msg.Node)
		}
		g.note(event{kind: evRefused, node: msg.Node, err: errors.New("own name")})
		return
	}
	m := s.members[msg.Node]
	known := m != nil
	if !known {
		m = &member{node: msg.Node}
	}
	if err := m.replay.CheckGroup(msg, f.at); err != nil {
		s.refused(m, known, f, err)
		return
	}
	if !known && !s.makeRoom(f.at) {
		g.log.Warn("group: member table full; a director left out", "node", msg.Node, "members", len(s.members))
		g.note(event{kind: evRefused, node: msg.Node, err: errors.New("table full")})
		return
	}
	if !known {
		s.members[msg.Node] = m
		delete(s.skewWarned, msg.Node)
	}
	m.skewWarned = false
	wasAlive := known && m.aliveAt(f.at)
	restarted := known && m.boot != msg.Boot
	silent := f.at.Sub(m.lastSeen)
	m.boot, m.lastSeen, m.interval = msg.Boot, f.at, msg.Interval
	m.digest, m.announced = msg.Digest, msg.Announced
	m.leaving = msg.Leaving
	drainedChanged := known && m.drained != msg.Drained
	m.drained = msg.Drained
	switch {
	case !known:
		g.log.Info("group: member heard", "node", m.node, "announced", len(m.announced), "drained", m.drained)
	case msg.Leaving:
		g.log.Info("group: member is leaving", "node", m.node)
	case restarted:
		g.log.Info("group: member restarted", "node", m.node, "announced", len(m.announced))
	case !wasAlive:
		g.log.Info("group: member heard again", "node", m.node, "silent", silent.Round(time.Millisecond))
	}
	if drainedChanged {
		g.log.Info("group: member drain changed", "node", m.node, "drained", m.drained)
	}
	if msg.Truncated != m.truncated {
		m.truncated = msg.Truncated
		m.truncWarned = false
	}
	if m.truncated && !m.truncWarned {
		m.truncWarned = true
		g.log.Warn("group: a member announces more VIPs than its heartbeat carries; its list is partial", "node", m.node)
	}
	m.alive = m.aliveAt(f.at)
	if m.alive {
		s.judgeDigest(m, s.self.Digest)
	}
	g.note(event{kind: evAccepted, node: m.node})
}

// refused logs an authenticated frame the replay guard refused.
func (s *state) refused(m *member, known bool, f received, err error) {
	g := s.g
	if errors.Is(err, heartbeat.ErrClockSkew) {
		warned := m.skewWarned
		if !known {
			warned = s.skewWarned[m.node]
		}
		if !warned {
			g.log.Warn("group: a member's clock is too far from ours; its heartbeats are refused", "node", m.node, "link", g.links[f.link].Name(), "err", err)
			if known {
				m.skewWarned = true
			} else if len(s.skewWarned) < maxMembers {
				s.skewWarned[m.node] = true
			}
		}
	} else {
		// A copy heard on a second link is one; not worth more.
		g.log.Debug("group: heartbeat refused", "node", m.node, "link", g.links[f.link].Name(), "err", err)
	}
	g.note(event{kind: evRefused, node: m.node, err: err})
}

// makeRoom says whether a new member fits, forgetting the member heard
// least recently among the dead if the table is full.
func (s *state) makeRoom(now time.Time) bool {
	if len(s.members) < maxMembers {
		return true
	}
	var oldest *member
	for _, m := range s.members {
		if !m.aliveAt(now) && (oldest == nil || m.lastSeen.Before(oldest.lastSeen)) {
			oldest = m
		}
	}
	if oldest == nil {
		return false
	}
	s.g.log.Info("group: a long-dead member forgotten to make room", "node", oldest.node, "last_seen", oldest.lastSeen)
	delete(s.members, oldest.node)
	return true
}

// judgeDigest warns once per change when a live member's digest differs
// from ours, and says when it matches again.
func (s *state) judgeDigest(m *member, ours [16]byte) {
	pair := [2][16]byte{m.digest, ours}
	switch {
	case m.digest != ours && (!m.warned || m.warnedPair != pair):
		m.warned, m.warnedPair = true, pair
		s.g.log.Warn("group: a member's service config or kernel differs from this director's; flows moved between them may change real server",
			"node", m.node, "member_digest", hex.EncodeToString(m.digest[:]), "digest", hex.EncodeToString(ours[:]))
	case m.digest == ours && m.warned:
		m.warned = false
		s.g.log.Info("group: a member's digest matches this director's again", "node", m.node)
	}
}

// sweep marks the members not heard within their dead time.
func (s *state) sweep(now time.Time) {
	for _, m := range s.members {
		alive := m.aliveAt(now)
		if alive == m.alive {
			continue
		}
		m.alive = alive
		if !alive && !m.leaving {
			s.g.log.Warn("group: member not heard; considered gone", "node", m.node, "last_seen", m.lastSeen, "silent", now.Sub(m.lastSeen).Round(time.Millisecond))
		}
	}
}

// status is the table as control reports it.
func (s *state) status() control.GroupStatus {
	ours := s.self.Digest
	st := control.GroupStatus{
		Digest: hex.EncodeToString(ours[:]),
		Members: []control.GroupMember{{
			Node:        s.g.cfg.Node,
			Self:        true,
			Alive:       true,
			Announced:   prefixStrings(s.self.Announced),
			Drained:     s.self.Drained,
			DigestMatch: true,
			Digest:      hex.EncodeToString(ours[:]),
		}},
	}
	others := make([]control.GroupMember, 0, len(s.members))
	for _, m := range s.members {
		match := m.digest == ours
		if m.alive && !match {
			st.Mismatched++
		}
		others = append(others, control.GroupMember{
			Node:        m.node,
			Alive:       m.alive,
			LastSeen:    m.lastSeen,
			Announced:   prefixStrings(m.announced),
			Drained:     m.drained,
			DigestMatch: match,
			Digest:      hex.EncodeToString(m.digest[:]),
		})
	}
	slices.SortFunc(others, func(a, b control.GroupMember) int { return cmp.Compare(a.Node, b.Node) })
	st.Members = append(st.Members, others...)
	return st
}

// prefixStrings is never nil, so that JSON says [] for none.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
