package failover

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/directorlb/director/liveness"
)

// vipHolder adds, announces and removes the VIPs (VIPs in vip.go).
type vipHolder interface {
	Acquire(ctx context.Context) error
	Announce(ctx context.Context) error
	Release(gone func()) error
	// Prepare readies what Acquire will need, while it is not needed.
	Prepare()
}

// syncControl starts and stops the kernel's IPVS sync daemons (SyncConn).
type syncControl interface {
	Start(d SyncDaemon) error
	Stop(state SyncState) error
	Daemons() ([]SyncDaemon, error)
}

// connHandover sends this director's connections to the peer (Handover).
type connHandover interface {
	Hand(fresh bool, deadline time.Time) (HandoverStats, error)
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
	Links  []Link
	// VIPs, Sync and Pinger may be nil: no VIPs, no connection sync,
	// no ping nodes.
	VIPs vipHolder
	// VIPInterfaces are read through Interfaces every keepalive: one
	// missing, down or without carrier puts the director in fault.
	VIPInterfaces []string
	Interfaces    flagReader
	Sync          syncControl
	SyncDaemon    SyncDaemon // Interface and SyncID; State is set per role
	// Handover sends the peer's backup sync daemon this director's
	// connections when it steps down (Handover); nil: the kernel's sync
	// daemons alone. Forwarded tells whether packets for a VIP that reach
	// this director once it gave the VIP up are forwarded (Forwarded);
	// nil: they are dropped.
	Handover  connHandover
	Forwarded func() bool
	Pinger    prober
	// Notify runs as Notify + ROLE on every role change; Fence runs as
	// Fence + PEER and must succeed before taking over from a peer
	// declared dead. Empty: none.
	Notify, Fence []string
	HookTimeout   time.Duration
	// ProbeVIPs asks the network whether anything still answers for the
	// VIPs (ProbeVIPs in vipprobe.go); nil: no probe.
	ProbeVIPs func(ctx context.Context) ([]VIPAnswer, error)
	// Drains are this director's drain records at start; OnDrains is
	// given the records the peer sends, on the node's goroutine (it must
	// not block). SetDrains replaces the records later.
	Drains   []DrainRecord
	OnDrains func([]DrainRecord)
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
	forged, malformed, replayed, foreign counter
}

type counter struct {
	mu sync.Mutex
	n  uint64
}

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *counter) get() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// ErrNoPeer means a switchover was asked for with no peer to take part.
var ErrNoPeer = errors.New("no live peer")

// flagReader reads an interface's up and carrier flags (IfFlags).
type flagReader interface {
	Flags(name string) (net.Flags, error)
}

// NewNode checks the config; Run starts the node.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Node == "" || len(cfg.Node) > MaxNodeName {
		return nil, fmt.Errorf("node name %q: must be 1 to %d bytes", cfg.Node, MaxNodeName)
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
	replay     ReplayGuard
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
	newest   Message
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
	notify chan Role
	// drains are the records the peer is told of (node_drains.go).
	drains drainState
	// peerVersion is the wire format the peer last spoke (0: the
	// current one); this director answers in it.
	peerVersion uint8
	// transitions counts role changes by the role entered.
	transitions [len(roleNames)]uint64
}

// probeTimeout is how long the VIP probe listens for an answer. A live
// kernel answers ARP at once, so one keepalive is plenty. It need not
// grow when this host runs late: an answer that arrives in time waits in
// the socket, and the probe takes it even when it reads after the window
// (awaitAnswer).
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
	if len(cfg.Fence) > 0 || (cfg.ProbeVIPs == nil && !pings) || s.el.Role() == RoleActive || s.takingOver {
		return time.Time{}
	}
	m, heard, ok := s.el.Peer()
	if !ok || m.Kind == KindLeaving {
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
		var answers []VIPAnswer
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

// received is a frame from a link, decoded by the link's reader.
type received struct {
	link int
	msg  Message
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
		boot:   randomBoot(),
		links:  make([]linkState, len(n.cfg.Links)),
		since:  now,
		events: make(chan func(*state), 16),
		notify: make(chan Role, 64),
	}
	s.digestOK = true
	s.drains.set(n.cfg.Drains)
	// A VIP left from an earlier run, or added by hand, must not stay on
	// a director that is not active; the backup sync daemon keeps this
	// director's connection table warm in every role.
	s.stepDown(nil)
	if n.cfg.Sync != nil {
		d := n.cfg.SyncDaemon
		d.State = SyncBackup
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
	s.send(KindHeartbeat)
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
			s.send(KindHeartbeat)
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

func randomBoot() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// read decodes frames from one link. Authentication happens here, so a
// flood of forged frames costs the state goroutine nothing.
func (n *Node) read(ctx context.Context, i int, l Link, out chan<- received) {
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
		m, err := Decode(n.cfg.Key, buf[:k])
		switch {
		case errors.Is(err, ErrBadMAC):
			n.forged.add()
			continue
		case err != nil:
			n.malformed.add()
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
			n.foreign.add()
			n.log.Warn("failover: a heartbeat carries this director's own node name; two directors share a name", "link", n.cfg.Links[f.link].Name())
		}
		return
	}
	ls := &s.links[f.link]
	if err := ls.replay.Check(m, f.at); err != nil {
		n.replayed.add()
		n.log.Debug("failover: heartbeat refused", "link", n.cfg.Links[f.link].Name(), "err", err)
		return
	}
	ls.heard, ls.received = f.at, ls.received+1
	if !ls.up {
		ls.up = true
		n.log.Info("failover: heartbeat link up", "link", n.cfg.Links[f.link].Name(), "peer", m.Node)
	}
	if m.Kind == KindLeaving && f.at.Sub(m.Time) > n.cfg.Deadtime {
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
		n.replayed.add()
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
	} else if !wasAlive && m.Kind != KindLeaving {
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
	if m.Kind == KindLeaving {
		n.log.Info("failover: peer is leaving", "peer", m.Node)
	}
	if m.Role != prev.Role && known && m.Kind != KindLeaving {
		n.log.Info("failover: peer changed role", "peer", m.Node, "from", prev.Role, "to", m.Role)
	}
	s.fenced = false
	s.el.Heard(m, f.at)
	// A dual-active moment resolved in our favour: the peer's
	// announcements may have won the neighbours' caches, so repeat ours.
	if known && prev.Role == RoleActive && m.Role != RoleActive && s.el.Role() == RoleActive && n.cfg.VIPs != nil {
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
	// views crossed in flight may both think the other yields.
	probe := s.n.cfg.ProbeVIPs != nil && why != ReasonPeerLeft
	if want == RoleActive && (deadChecks || probe) {
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
		var answers []VIPAnswer
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
			if want, why := s.el.Want(time.Now()); want == RoleActive && s.el.Role() != RoleActive {
				s.become(ctx, want, why)
			}
		})
	}()
}

// become makes the role real: VIPs and the master sync daemon follow the
// active role, the peer is told at once, and notify runs.
func (s *state) become(ctx context.Context, r Role, why Reason) {
	n := s.n
	from := s.el.Role()
	if r == RoleActive {
		if n.cfg.VIPs != nil {
			if err := n.cfg.VIPs.Acquire(ctx); err != nil {
				n.log.Error("failover: cannot take the VIPs", "err", err)
				s.el.SetFault(fmt.Sprintf("taking the VIPs: %v", err))
				s.stepDown(nil)
				s.setRole(RoleFault, from, why)
				return
			}
		}
		if n.cfg.Sync != nil {
			d := n.cfg.SyncDaemon
			d.State = SyncMaster
			if err := n.cfg.Sync.Start(d); err != nil {
				n.log.Error("failover: cannot start the IPVS sync daemon as master; the standby's connection table will go stale", "err", err)
			}
		}
		s.setRole(r, from, why)
	} else if from == RoleActive || from == RoleInit {
		// The peer hears of the change the moment the VIPs are out.
		s.stepDown(func() { s.setRole(r, from, why) })
	} else {
		s.setRole(r, from, why)
	}
	if r != RoleActive && n.cfg.VIPs != nil {
		// After the peer has been told: nothing waits for this.
		n.cfg.VIPs.Prepare()
	}
}

func (s *state) setRole(r, from Role, why Reason) {
	s.since = time.Now()
	s.el.SetRole(r, s.since)
	s.transitions[r]++
	peer := ""
	if m, _, ok := s.el.Peer(); ok {
		peer = m.Node
	}
	s.n.log.Info("failover: role changed", "from", from, "to", r, "reason", why, "peer", peer)
	s.send(KindHeartbeat)
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
	hand := s.el.Role() == RoleActive && s.n.cfg.Handover != nil && s.el.PeerAlive(time.Now())
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
		st  HandoverStats
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
			s.send(KindHeartbeat)
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
// kernel (VIPs.Release), or at once without VIPs.
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
		if err := sd.Stop(SyncMaster); err != nil {
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
		s.el.SetRole(RoleStandby, time.Now())
		s.send(KindLeaving)
	}
	if s.el.Role() == RoleActive {
		// Told the moment the addresses are out of the kernel and the
		// last connections handed over, before the releases are logged
		// and the guard hears of them.
		s.stepDown(tell)
	} else {
		tell()
	}
	s.n.log.Info("failover: left the pair")
}

// send sends one message on every link.
func (s *state) send(kind Kind) { s.sendMessage(kind, nil) }

// sendMessage sends one message, with drain records on a KindDrains.
func (s *state) sendMessage(kind Kind, drains []DrainRecord) {
	n := s.n
	if kind == KindDrains && s.peerVersion != 0 {
		return // an earlier release's peer cannot read them
	}
	s.seq++
	pref, prefSeq := s.el.Pref()
	m := Message{
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
	frame, err := Encode(n.cfg.Key, m)
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

// runNotify runs the notify hook for each role change, in order.
func (n *Node) runNotify(ctx context.Context, roles <-chan Role) {
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
		s.send(KindHeartbeat)
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
		if m, _, _ := s.el.Peer(); m.Role == RoleFault {
			err = fmt.Errorf("the peer %s is in fault; keeping the VIPs", m.Node)
			return
		}
		s.el.Release()
		n.log.Info("failover: release requested")
		s.send(KindHeartbeat)
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
		s.send(KindHeartbeat)
	})
}
