package failover

import (
	"context"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// Status is the node's state as directorctl status shows it.
type Status struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	Priority uint8  `json:"priority"`
	// SinceMS is how long the role has been held.
	SinceMS int64  `json:"since_ms"`
	Fault   string `json:"fault,omitempty"`
	// Request is the operator's standing request: takeover, release or "".
	Request string       `json:"request,omitempty"`
	Peer    *PeerStatus  `json:"peer,omitempty"`
	Links   []LinkStatus `json:"links"`
	Ping    PingStatus   `json:"ping"`
	Sync    []SyncStatus `json:"sync,omitempty"`
	// VIPs are the addresses the active director holds, and whether
	// this director holds each now (filled in by the caller, which owns
	// the VIPs).
	VIPs []VIPStatus `json:"vips,omitempty"`
	// SyncError is why the kernel's sync daemons could not be read.
	SyncError string `json:"sync_error,omitempty"`
	// Refused heartbeats: wrong key, unreadable, replayed or stale, and
	// authentic ones carrying this director's own name from another boot.
	Forged uint64 `json:"forged"`
	// Transitions counts role changes by the role entered.
	Transitions map[string]uint64 `json:"transitions,omitempty"`
	Malformed   uint64            `json:"malformed"`
	Replayed    uint64            `json:"replayed"`
	SameName    uint64            `json:"same_name"`
}

// PeerStatus is the peer as its last heartbeat described it.
type PeerStatus struct {
	Node     string `json:"node"`
	Role     string `json:"role"`
	Priority uint8  `json:"priority"`
	Alive    bool   `json:"alive"`
	// LastHeardMS is the age of its last heartbeat on any link.
	LastHeardMS int64 `json:"last_heard_ms"`
	ConfigMatch bool  `json:"config_match"`
	PingReached uint8 `json:"ping_reached"`
}

// LinkStatus is one heartbeat link.
type LinkStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// LastHeardMS is the age of the last valid heartbeat on this link; -1
	// if none ever came.
	LastHeardMS int64  `json:"last_heard_ms"`
	Received    uint64 `json:"received"`
	Sent        uint64 `json:"sent"`
	SendErrors  uint64 `json:"send_errors"`
	LastError   string `json:"last_error,omitempty"`
}

// PingStatus is the latest ping-node probe.
type PingStatus struct {
	Reached int `json:"reached"`
	Total   int `json:"total"`
}

// VIPStatus is one VIP as the kernel has it now.
type VIPStatus struct {
	Address   string `json:"address"`
	Interface string `json:"interface"`
	Held      bool   `json:"held"`
}

// SyncStatus is one of the kernel's IPVS sync daemons.
type SyncStatus struct {
	State     string `json:"state"`
	Interface string `json:"interface"`
	SyncID    uint32 `json:"sync_id"`
}

// Status reports the node's state.
func (n *Node) Status(ctx context.Context) (Status, error) {
	var st Status
	err := n.do(ctx, func(s *state) { st = s.status(time.Now()) })
	if err != nil {
		return Status{}, err
	}
	st.Forged, st.Malformed, st.Replayed, st.SameName = n.forged.Load(), n.malformed.Load(), n.replayed.Load(), n.foreign.Load()
	// The kernel is read outside the state goroutine: a slow netlink
	// answer must not delay heartbeats.
	if n.cfg.Sync != nil {
		ds, err := n.cfg.Sync.Daemons()
		if err != nil {
			st.SyncError = err.Error()
		}
		for _, d := range ds {
			st.Sync = append(st.Sync, SyncStatus{State: d.State.String(), Interface: d.Interface, SyncID: d.SyncID})
		}
	}
	return st, nil
}

func (s *state) status(now time.Time) Status {
	st := Status{
		Node:     s.n.cfg.Node,
		Role:     s.el.Role().String(),
		Priority: s.n.cfg.Priority,
		SinceMS:  now.Sub(s.since).Milliseconds(),
		Fault:    s.el.Fault(),
		Ping:     PingStatus{Reached: s.el.PingReached(), Total: s.n.cfg.PingTotal},
	}
	for r, k := range s.transitions {
		if k > 0 {
			if st.Transitions == nil {
				st.Transitions = map[string]uint64{}
			}
			st.Transitions[heartbeat.Role(r).String()] = k
		}
	}
	switch pref, _ := s.el.Pref(); pref {
	case 1:
		st.Request = "takeover"
	case -1:
		st.Request = "release"
	}
	if m, heard, ok := s.el.Peer(); ok {
		role := m.Role.String()
		if m.Kind == heartbeat.KindLeaving {
			role = "left"
		}
		st.Peer = &PeerStatus{
			Node:        m.Node,
			Role:        role,
			Priority:    m.Priority,
			Alive:       s.el.PeerAlive(now),
			LastHeardMS: now.Sub(heard).Milliseconds(),
			ConfigMatch: m.ConfigDigest == s.n.cfg.Digest,
			PingReached: m.PingReached,
		}
	}
	for i, l := range s.n.cfg.Links {
		ls := &s.links[i]
		age := int64(-1)
		if !ls.heard.IsZero() {
			age = now.Sub(ls.heard).Milliseconds()
		}
		st.Links = append(st.Links, LinkStatus{
			Name: l.Name(), Up: ls.up, LastHeardMS: age,
			Received: ls.received, Sent: ls.sent, SendErrors: ls.sendErrors, LastError: ls.lastErr,
		})
	}
	return st
}

// Role reports the role in force.
func (n *Node) Role(ctx context.Context) (heartbeat.Role, error) {
	var r heartbeat.Role
	err := n.do(ctx, func(s *state) { r = s.el.Role() })
	return r, err
}
