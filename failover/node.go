// Package failover runs the director pair: heartbeats over redundant,
// authenticated links (package heartbeat) elect the active director,
// which holds the VIPs (package vip) and runs the kernel's IPVS sync
// daemon as master (package ipvssync).
//
// The election (election.go) is pure: it is told what happened and says
// what role to be in. The Node drives it: node.go holds its loop and its
// API; frames.go what it hears from the peer and says to it; health.go
// the ping nodes and the VIP interfaces, which put it in fault;
// takeover.go the checks made before it becomes active; transitions.go
// the role changes themselves (VIPs, sync daemons, handover, notify).
package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/ipvssync"
	"github.com/directorlb/director/liveness"
	"github.com/directorlb/director/vip"
)

// vipHolder adds, announces and removes the VIPs (vip.VIPs).
type vipHolder interface {
	Acquire(ctx context.Context) error
	Announce(ctx context.Context) error
	Release(gone func()) error
	// Prepare readies what Acquire will need, while it is not needed.
	Prepare()
}

// syncControl starts and stops the kernel's IPVS sync daemons
// (ipvssync.SyncConn).
type syncControl interface {
	Start(d ipvssync.SyncDaemon) error
	Stop(state ipvssync.SyncState) error
	Daemons() ([]ipvssync.SyncDaemon, error)
}

// connHandover sends this director's connections to the peer
// (ipvssync.Handover).
type connHandover interface {
	Hand(fresh bool, deadline time.Time) (ipvssync.HandoverStats, error)
}

// prober asks the ping nodes (Pinger).
type prober interface {
	Probe(ctx context.Context) int
	Total() int
}

// NodeConfig is what a Node needs: the election's parameters, the key,
// the links, and the effects of a role change.
type NodeConfig struct {
	Params
	Keepalive time.Duration
	Key       []byte
	// Digest summarises the service config; it is sent to the peer.
	Digest [16]byte
	Links  []heartbeat.Link
	// VIPs, Sync and Pinger may be nil: no VIPs, no connection sync,
	// no ping nodes.
	VIPs vipHolder
	// VIPInterfaces are read through Interfaces every keepalive: one
	// missing, down or without carrier puts the director in fault.
	VIPInterfaces []string
	Interfaces    flagReader
	Sync          syncControl
	SyncDaemon    ipvssync.SyncDaemon // Interface and SyncID; State is set per role
	// Handover sends the peer's backup sync daemon this director's
	// connections when it steps down (ipvssync.Handover); nil: the
	// kernel's sync daemons alone. Forwarded tells whether packets for a
	// VIP that reach this director once it gave the VIP up are forwarded
	// (vip.Forwarded); nil: they are dropped.
	Handover  connHandover
	Forwarded func() bool
	Pinger    prober
	// Notify runs as Notify + ROLE on every role change; Fence runs as
	// Fence + PEER and must succeed before taking over from a peer
	// declared dead. Empty: none.
	Notify, Fence []string
	HookTimeout   time.Duration
	// ProbeVIPs asks the network whether anything still answers for the
	// VIPs (vip.ProbeVIPs); nil: no probe.
	ProbeVIPs func(ctx context.Context) ([]vip.VIPAnswer, error)
	// Drains are this director's drain records at start; OnDrains is
	// given the records the peer sends, on the node's goroutine (it must
	// not block). SetDrains replaces the records later.
	Drains   []heartbeat.DrainRecord
	OnDrains func([]heartbeat.DrainRecord)
	Log      *slog.Logger
	// Loop beats on every turn of the state goroutine (liveness); nil:
	// nobody watches.
	Loop *liveness.Loop
}

// Node is one director of the pair. One goroutine (Run) owns all its
// state; the control socket reaches it through requests on a channel.
type Node struct {
	cfg  NodeConfig
	log  *slog.Logger
	reqs chan func(*state)
	done chan struct{}
	// Counters the status and the metrics report, updated by the readers.
	forged, malformed, replayed, foreign atomic.Uint64
}

// ErrNoPeer means a switchover was asked for with no peer to take part.
var ErrNoPeer = errors.New("no live peer")

// flagReader reads an interface's up and carrier flags (vip.IfFlags).
type flagReader interface {
	Flags(name string) (net.Flags, error)
}

// NewNode checks the config; Run starts the node.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Node == "" || len(cfg.Node) > heartbeat.MaxNodeName {
		return nil, fmt.Errorf("node name %q: must be 1 to %d bytes", cfg.Node, heartbeat.MaxNodeName)
	}
	if len(cfg.Links) == 0 {
		return nil, errors.New("no heartbeat link")
	}
	if cfg.Keepalive <= 0 || cfg.Deadtime <= cfg.Keepalive {
		return nil, fmt.Errorf("keepalive %s must be positive and shorter than deadtime %s", cfg.Keepalive, cfg.Deadtime)
	}
	if len(cfg.VIPInterfaces) > 0 && cfg.Interfaces == nil {
		return nil, errors.New("VIP interfaces to watch but nothing to read them with")
	}
	if cfg.HookTimeout <= 0 {
		cfg.HookTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Pinger != nil {
		cfg.PingTotal = cfg.Pinger.Total()
	}
	return &Node{cfg: cfg, log: cfg.Log, reqs: make(chan func(*state)), done: make(chan struct{})}, nil
}

// linkState is what the node knows of one link.
type linkState struct {
	// replay is per link: every message goes out on every link, so the
	// same sequence number legitimately arrives once per link.
	replay     heartbeat.ReplayGuard
	heard      time.Time
	up         bool
	received   uint64
	sent       uint64
	sendErrors uint64
	lastErr    string
}

// state is owned by Run's goroutine.
type state struct {
	n     *Node
	el    *Election
	boot  uint64
	seq   uint64
	links []linkState
	since time.Time
	// newest is the newest message fed to the election; a copy that a
	// slower link delivers later is older news and is not fed again.
	newest   heartbeat.Message
	digestOK bool
	// takingOver is set while the ping confirmation and the fence run
	// before taking over from a dead peer.
	takingOver bool
	// retryAt holds off another takeover attempt after a failed one.
	retryAt time.Time
	// fenced is true once the fence succeeded for the current silence
	// of the peer; hearing the peer again clears it.
	fenced  bool
	probing bool
	// probed is when the last periodic ping-node probe started.
	probed time.Time
	// evaluated is when evaluate last ran.
	evaluated time.Time
	// vipBusy is set while a silent peer's VIPs still answer.
	vipBusy bool
	// early is the takeover check started shortly before a silent peer
	// reaches deadtime (earlyAt); nil before the first.
	early *earlyCheck
	// probes are the recent ping-node results: a node counts as reached
	// if it answered any probe within pingWindow, so late answers do not
	// flap the role. Before a takeover a fresh probe decides alone.
	probes []probeResult
	events chan func(*state)
	notify chan heartbeat.Role
	// drains are the records the peer is told of (node_drains.go).
	drains drainState
	// peerVersion is the wire format the peer last spoke (0: the
	// current one); this director answers in it.
	peerVersion uint8
	// transitions counts role changes by the role entered.
	transitions [heartbeat.RoleFault + 1]uint64
}

// received is a frame from a link, decoded by the link's reader.
type received struct {
	link int
	msg  heartbeat.Message
	at   time.Time
}

// Run runs the node until ctx ends, then leaves gracefully: it gives up
// the VIPs and tells the peer, which takes over at once.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.done)
	now := time.Now()
	s := &state{
		n:      n,
		el:     NewElection(n.cfg.Params, now),
		boot:   heartbeat.NewBoot(),
		links:  make([]linkState, len(n.cfg.Links)),
		since:  now,
		events: make(chan func(*state), 16),
		notify: make(chan heartbeat.Role, 64),
	}
	s.digestOK = true
	s.drains.set(n.cfg.Drains)
	// A VIP left from an earlier run, or added by hand, must not stay on
	// a director that is not active; the backup sync daemon keeps this
	// director's connection table warm in every role.
	s.stepDown(nil)
	if n.cfg.Sync != nil {
		d := n.cfg.SyncDaemon
		d.State = ipvssync.SyncBackup
		if err := n.cfg.Sync.Start(d); err != nil {
			n.log.Error("cannot start the IPVS sync daemon as backup; connections will not survive a failover to this director", "err", err)
		}
	}
	var wg sync.WaitGroup
	hookCtx, stopHooks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHooks()
	// At a stop the role changes already made are still notified, in
	// order, each within the hook timeout: an admin's notify script
	// must not miss the last change because directord stopped after it.
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); n.runNotify(hookCtx, s.notify) }()
	defer close(s.notify)

	frames := make(chan received, 64)
	readCtx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	for i, l := range n.cfg.Links {
		wg.Add(1)
		go func() { defer wg.Done(); n.read(readCtx, i, l, frames) }()
	}
	defer func() {
		for _, l := range n.cfg.Links {
			l.Close()
		}
	}()

	lastTick := time.Now()
	tick := time.NewTicker(n.cfg.Keepalive)
	defer tick.Stop()
	deadline := time.NewTimer(time.Hour)
	defer deadline.Stop()
	n.log.Info("failover: started", "node", n.cfg.Node, "priority", n.cfg.Priority, "links", len(n.cfg.Links), "initdead", n.cfg.Initdead)
	s.checkInterfaces()
	s.send(heartbeat.KindHeartbeat)
	s.probe(ctx, now)
	for {
		n.cfg.Loop.Beat()
		s.evaluate(ctx)
		if d := s.wakeAt(); !d.IsZero() {
			deadline.Reset(max(time.Until(d), 0) + time.Millisecond)
		}
		select {
		case <-ctx.Done():
			s.leave()
			return nil
		case f := <-frames:
			s.heard(ctx, f)
		case <-tick.C:
			if lag := time.Since(lastTick); lag > n.cfg.Deadtime/2 {
				// The peer may already count this director as dead.
				n.log.Warn("failover: heartbeats went out late; the host is overloaded", "interval", lag.Round(time.Millisecond), "keepalive", n.cfg.Keepalive)
			}
			lastTick = time.Now()
			s.drain(ctx, frames)
			s.send(heartbeat.KindHeartbeat)
			s.sendPendingDrains(lastTick)
			s.probe(ctx, lastTick)
			s.checkInterfaces()
		case <-deadline.C:
			// Frames already received count before the peer is judged
			// dead: a busy loop must not turn into a failover.
			s.drain(ctx, frames)
		case ev := <-s.events:
			ev(s)
		case req := <-n.reqs:
			req(s)
		}
	}
}

// post hands a result from a helper goroutine to the state goroutine.
func (s *state) post(ctx context.Context, ev func(*state)) {
	select {
	case s.events <- ev:
	case <-ctx.Done():
	}
}

// wakeAt is when the loop must evaluate again though nothing happens,
// or zero. A deadline the last evaluation already saw pass is not one:
// re-armed, it would turn the loop every millisecond for as long as the
// peer stays dead; ticks and frames wake the loop anyway.
func (s *state) wakeAt() time.Time {
	d := s.el.Deadline()
	if at := s.earlyAt(); at.After(time.Now()) && (d.IsZero() || at.Before(d)) {
		d = at
	}
	if !d.After(s.evaluated) {
		return time.Time{}
	}
	return d
}

// runNotify runs the notify hook for each role change, in order.
func (n *Node) runNotify(ctx context.Context, roles <-chan heartbeat.Role) {
	for r := range roles {
		if err := runHook(ctx, n.cfg.HookTimeout, n.cfg.Notify, r.String()); err != nil {
			n.log.Error("failover: notify failed", "role", r, "err", err)
		}
	}
}

// do runs f on the state goroutine.
func (n *Node) do(ctx context.Context, f func(*state)) error {
	done := make(chan struct{})
	select {
	case n.reqs <- func(s *state) { f(s); close(done) }:
	case <-n.done:
		return errors.New("failover: node stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Takeover asks for this director to become active. The switchover
// completes a heartbeat round trip later, when the peer has stepped down.
func (n *Node) Takeover(ctx context.Context) error {
	var err error
	if e := n.do(ctx, func(s *state) {
		if s.el.Fault() != "" {
			err = fmt.Errorf("this director is in fault (%s) and cannot take over", s.el.Fault())
			return
		}
		s.el.Takeover()
		n.log.Info("failover: takeover requested")
		s.send(heartbeat.KindHeartbeat)
	}); e != nil {
		return e
	}
	return err
}

// Release asks for the peer to become active. Without a live peer that
// could take the VIPs it is refused, as it would leave them unowned.
func (n *Node) Release(ctx context.Context) error {
	var err error
	if e := n.do(ctx, func(s *state) {
		if !s.el.PeerAlive(time.Now()) {
			err = fmt.Errorf("%w to hand the VIPs to; keeping them", ErrNoPeer)
			return
		}
		if m, _, _ := s.el.Peer(); m.Role == heartbeat.RoleFault {
			err = fmt.Errorf("the peer %s is in fault; keeping the VIPs", m.Node)
			return
		}
		s.el.Release()
		n.log.Info("failover: release requested")
		s.send(heartbeat.KindHeartbeat)
	}); e != nil {
		return e
	}
	return err
}

// SetDigest updates the service-config digest sent to the peer, after a
// reload.
func (n *Node) SetDigest(ctx context.Context, d [16]byte) error {
	return n.do(ctx, func(s *state) {
		if s.n.cfg.Digest == d {
			return
		}
		s.n.cfg.Digest = d
		if m, _, ok := s.el.Peer(); ok {
			s.digestOK = m.ConfigDigest == d
			if !s.digestOK {
				s.n.log.Warn("failover: after the reload this director's service configuration differs from the peer's", "peer", m.Node)
			}
		}
		s.send(heartbeat.KindHeartbeat)
	})
}
