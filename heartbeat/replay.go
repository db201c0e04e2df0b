package heartbeat

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Check's errors wrap one of these.
var (
	ErrReplay    = errors.New("replayed or out-of-order heartbeat")
	ErrClockSkew = errors.New("heartbeat time too far from ours")
)

const (
	// DefaultMaxSkew is the clock difference a ReplayGuard with no
	// MaxSkew accepts.
	DefaultMaxSkew = 30 * time.Second
	// replaySenders bounds the senders a guard remembers. A pair has one
	// peer; the room beyond it only matters while a peer is renamed.
	replaySenders = 8
)

// ReplayGuard refuses heartbeats that were already accepted, that come
// out of order, or that an attacker recorded and sends again (the MAC
// proves who wrote a message, not when). It is safe for concurrent use:
// every link's receiver checks through the same guard, so a message
// that arrives on two links is accepted once; the second copy gets
// ErrReplay, which is expected and not worth a warning.
//
// It remembers the last accepted message of the replaySenders most
// recently accepted senders. A forgotten sender starts afresh: within
// MaxSkew of its time, an old message of it would be accepted once.
type ReplayGuard struct {
	// MaxSkew is how far a message's time may be from ours, either way;
	// DefaultMaxSkew when zero. It bounds how long a recorded message
	// stays usable against a guard that has never seen its sender.
	MaxSkew time.Duration

	mu      sync.Mutex
	senders []replaySender
	stamp   uint64 // counts acceptances, to find the least recent sender
}

type replaySender struct {
	node  string
	boot  uint64
	seq   uint64
	time  time.Time
	stamp uint64
}

// Check says whether m, received at now, is new. It records m as the
// sender's last message only when it returns nil.
func (g *ReplayGuard) Check(m Message, now time.Time) error {
	maxSkew := g.MaxSkew
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	if d := m.Time.Sub(now); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: %s sent at %s, %s from our %s (at most %s)",
			ErrClockSkew, m.Node, m.Time.Format(time.RFC3339Nano), d, now.Format(time.RFC3339Nano), maxSkew)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.find(m.Node)
	if s != nil {
		if m.Boot == s.boot && m.Seq <= s.seq {
			return fmt.Errorf("%w: %s sequence %d, already accepted %d", ErrReplay, m.Node, m.Seq, s.seq)
		}
		// A new boot restarts the sequence, so only time orders it
		// against the old one: a replay of an earlier boot is older.
		if m.Boot != s.boot && !m.Time.After(s.time) {
			return fmt.Errorf("%w: %s boot %016x at %s, not after the last accepted (boot %016x at %s)",
				ErrReplay, m.Node, m.Boot, m.Time.Format(time.RFC3339Nano), s.boot, s.time.Format(time.RFC3339Nano))
		}
	} else {
		s = g.slot()
		s.node = m.Node
	}
	g.stamp++
	s.boot, s.seq, s.time, s.stamp = m.Boot, m.Seq, m.Time, g.stamp
	return nil
}

func (g *ReplayGuard) find(node string) *replaySender {
	for i := range g.senders {
		if g.senders[i].node == node {
			return &g.senders[i]
		}
	}
	return nil
}

// slot returns a free entry, or the least recently accepted sender's.
func (g *ReplayGuard) slot() *replaySender {
	if len(g.senders) < replaySenders {
		g.senders = append(g.senders, replaySender{})
		return &g.senders[len(g.senders)-1]
	}
	oldest := &g.senders[0]
	for i := range g.senders {
		if g.senders[i].stamp < oldest.stamp {
			oldest = &g.senders[i]
		}
	}
	*oldest = replaySender{}
	return oldest
}
