// Package announce decides which VIPs this director announces to the
// routers in bgp mode, and keeps the BGP speaker and the VIP addresses in
// step with that decision: a VIP is announced only while its service is
// in this director's kernel with announce.min_healthy real servers
// serving, and nothing is while the node is drained (drain-node) or
// stopping gracefully.
//
// One goroutine (Run) owns the decision's state. It re-decides when
// poked (a health change applied, a reconcile, a reload) and on a slow
// timer besides, so that a change nobody pokes about (a service removed
// from the kernel by hand) is seen within Every.
package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/bgp"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/liveness"
)

// Speaker is the part of the BGP speaker the announcer drives.
type Speaker interface {
	Announce(ctx context.Context, prefix netip.Prefix) error
	Withdraw(ctx context.Context, prefix netip.Prefix) error
	Peers(ctx context.Context) ([]bgp.PeerStatus, error)
}

// DefaultEvery is how often the announcer re-decides unpoked.
const DefaultEvery = 2 * time.Second

// Options make an Announcer.
type Options struct {
	Speaker Speaker
	// View is the director's status with each server's health.
	View func(ctx context.Context) (director.Status, error)
	// Config is the config in force (it changes on a reload).
	Config func() *config.Config
	Addrs  Addrs // nil: KernelAddrs
	// StatePath keeps drain-node through restarts; "" keeps it in memory.
	StatePath string
	Logger    *slog.Logger
	// OnChange is called, on the announcer's goroutine, after the set of
	// announced prefixes or the drain changed (the group's heartbeat
	// says so at once).
	OnChange func()
	Every    time.Duration // 0: DefaultEvery
	Loop     *liveness.Loop
	Now      func() time.Time // nil: time.Now
}

// Announcer is the decision's owner; see the package comment.
type Announcer struct {
	o    Options
	log  *slog.Logger
	reqs chan func(*state)
	poke chan struct{}
	done chan struct{}
	// local is the last decision's outcome, for readers on other
	// goroutines (the group's heartbeat, the metrics).
	local atomic.Pointer[Local]
}

// Local is what this director announces now, and whether it is drained.
type Local struct {
	Announced []netip.Prefix // sorted
	Drained   bool
	Stopping  bool
	VIPs      []control.BGPVIP
}

// Local returns the last decision; the zero Local before the first.
func (a *Announcer) Local() Local {
	if l := a.local.Load(); l != nil {
		return *l
	}
	return Local{}
}

// state is owned by Run's goroutine.
type state struct {
	drained  bool
	stopping bool
	// announced is what the speaker was told; held is what is on the
	// interface, by prefix.
	announced map[netip.Prefix]bool
	held      map[netip.Prefix]string
	vips      []control.BGPVIP
	holdErr   map[netip.Prefix]string // last failure to hold, logged once
	// peers is each peer's session state when last looked at, so that
	// a session that comes up or goes down is logged once; peerWarned
	// the peers said not to have come up since the start.
	peers      map[netip.Addr]string
	peerWarned map[netip.Addr]bool
	started    time.Time
}

// New makes an announcer; Run runs it.
func New(o Options) *Announcer {
	if o.Addrs == nil {
		o.Addrs = KernelAddrs{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Announcer{
		o:    o,
		log:  o.Logger,
		reqs: make(chan func(*state)),
		poke: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

// Poke asks for a new decision soon; it never blocks.
func (a *Announcer) Poke() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// Run decides and announces until ctx ends. It does not withdraw at the
// end: Leave does, for a graceful stop, and a killed directord's routes
// go with its BGP sessions.
func (a *Announcer) Run(ctx context.Context) error {
	defer close(a.done)
	st := &state{announced: map[netip.Prefix]bool{}, held: map[netip.Prefix]string{}, holdErr: map[netip.Prefix]string{}, peers: map[netip.Addr]string{}, peerWarned: map[netip.Addr]bool{}, started: a.o.Now()}
	if a.o.StatePath != "" {
		d, err := loadNodeDrain(a.o.StatePath)
		if err != nil {
			a.log.Error("bgp: not trusting the saved drain-node; announcing (directorctl drain-node drains again)", "err", err)
		}
		st.drained = d
		if d {
			a.log.Warn("bgp: this director is drained (directorctl drain-node); it announces nothing until directorctl enable-node")
		}
	}
	t := time.NewTicker(a.o.Every)
	defer t.Stop()
	// Sessions are looked at every second, so that their coming and
	// going is logged near when it happens.
	pt := time.NewTicker(time.Second)
	defer pt.Stop()
	a.decide(ctx, st)
	for {
		if a.o.Loop != nil {
			a.o.Loop.Beat()
		}
		select {
		case <-ctx.Done():
			return nil
		case fn := <-a.reqs:
			fn(st)
		case <-a.poke:
			a.decide(ctx, st)
		case <-t.C:
			a.decide(ctx, st)
		case <-pt.C:
			a.watchPeers(ctx, st)
		}
	}
}

var errStopped = errors.New("bgp: the announcer is not running")

// do runs fn on Run's goroutine and waits for it.
func (a *Announcer) do(ctx context.Context, fn func(*state)) error {
	done := make(chan struct{})
	select {
	case a.reqs <- func(st *state) { fn(st); close(done) }:
	case <-a.done:
		return errStopped
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

// decide holds the configured VIPs on the interface, decides what to
// announce and tells the speaker what changed: withdrawals first, so a
// director never announces more than it should, even for a moment.
func (a *Announcer) decide(ctx context.Context, st *state) {
	cfg := a.o.Config()
	if cfg == nil || cfg.BGP == nil {
		return
	}
	a.hold(cfg, st)
	view, err := a.o.View(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("bgp: cannot read the director's status; announcements unchanged", "err", err)
		}
		return
	}
	vips, want := Decide(cfg, view, State{Drained: st.drained, Stopping: st.stopping})
	reasons := make(map[string]string, len(vips))
	for _, v := range vips {
		if !v.Announced {
			reasons[v.VIP] = v.Service + ": " + v.Reason
		}
	}
	changed := false
	for _, p := range sorted(st.announced) {
		if want[p] {
			continue
		}
		if err := a.o.Speaker.Withdraw(ctx, p); err != nil {
			a.log.Error("bgp: cannot withdraw a VIP", "vip", p, "err", err)
			continue
		}
		delete(st.announced, p)
		changed = true
		a.log.Info("bgp: VIP withdrawn", "vip", p, "why", reasons[p.String()])
	}
	for _, p := range sorted(want) {
		if st.announced[p] {
			continue
		}
		if _, ok := st.held[p]; !ok {
			continue // not on the interface: the router would send traffic the kernel drops
		}
		if err := a.o.Speaker.Announce(ctx, p); err != nil {
			a.log.Error("bgp: cannot announce a VIP", "vip", p, "err", err)
			continue
		}
		st.announced[p] = true
		changed = true
		a.log.Info("bgp: VIP announced", "vip", p)
	}
	for i := range vips {
		p, _ := netip.ParsePrefix(vips[i].VIP)
		if vips[i].Announced && !st.announced[p] {
			vips[i].Announced = false
			vips[i].Reason = "could not be announced (see the log)"
			if _, ok := st.held[p]; !ok {
				vips[i].Reason = fmt.Sprintf("cannot hold the VIP on %s: %s", cfg.BGP.VIPInterface, st.holdErr[p])
			}
		}
	}
	a.dropStale(cfg, st)
	st.vips = vips
	a.local.Store(&Local{Announced: sorted(st.announced), Drained: st.drained, Stopping: st.stopping, VIPs: vips})
	if changed && a.o.OnChange != nil {
		a.o.OnChange()
	}
}

// hold puts every configured VIP on bgp.vip_interface.
func (a *Announcer) hold(cfg *config.Config, st *state) {
	iface := cfg.BGP.VIPInterface
	want := make(map[netip.Prefix]bool)
	for _, p := range Prefixes(cfg) {
		want[p] = true
		if st.held[p] == iface {
			continue
		}
		if err := a.o.Addrs.Hold(iface, p); err != nil {
			if st.holdErr[p] != err.Error() {
				a.log.Error("bgp: cannot hold a VIP; it is not announced", "vip", p, "interface", iface, "err", err)
			}
			st.holdErr[p] = err.Error()
			continue
		}
		delete(st.holdErr, p)
		if old, ok := st.held[p]; ok && old != iface {
			if err := a.o.Addrs.Drop(old, p); err != nil {
				a.log.Warn("bgp: cannot remove a VIP from its old interface", "vip", p, "interface", old, "err", err)
			}
		}
		st.held[p] = iface
	}
}

// dropStale takes off the interface the VIPs no longer configured, once
// they are withdrawn.
func (a *Announcer) dropStale(cfg *config.Config, st *state) {
	want := make(map[netip.Prefix]bool)
	for _, p := range Prefixes(cfg) {
		want[p] = true
	}
	for p, on := range st.held {
		if want[p] || st.announced[p] {
			continue
		}
		if err := a.o.Addrs.Drop(on, p); err != nil {
			a.log.Warn("bgp: cannot remove a VIP no longer configured", "vip", p, "interface", on, "err", err)
			continue
		}
		delete(st.held, p)
	}
}

func sorted(m map[netip.Prefix]bool) []netip.Prefix {
	out := slices.Collect(maps.Keys(m))
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// watchPeers logs each session that came up or went down since the last
// look, with gobgp's reason: the admin's first question when a router
// shows no route is whether the session is up, and why not. A session
// that has not come up since the start is reported once it has had
// sessionGrace to do so.
func (a *Announcer) watchPeers(ctx context.Context, st *state) {
	peers, err := a.o.Speaker.Peers(ctx)
	if err != nil {
		return
	}
	for _, p := range peers {
		was := st.peers[p.Address]
		st.peers[p.Address] = p.State
		switch {
		case p.Established() && was != p.State:
			a.log.Info("bgp: session established", "peer", p.Address, "asn", p.ASN, "bfd", p.BFD)
		case p.Established():
		case was == "established":
			a.log.Warn("bgp: session down; nothing is announced to this peer", "peer", p.Address, "state", p.State, "why", PeerHint(p))
		case !st.peerWarned[p.Address] && a.o.Now().Sub(st.started) >= sessionGrace:
			st.peerWarned[p.Address] = true
			a.log.Warn("bgp: session not established; nothing is announced to this peer", "peer", p.Address, "state", p.State, "why", PeerHint(p))
		}
	}
}

// sessionGrace is how long a session may take to come up at the start
// before the log says it has not: an OPEN exchange takes a second or two.
const sessionGrace = 5 * time.Second

// PeerHint says why a session is not established, as far as this side
// can tell: gobgp's last disconnect reason, or what to check.
func PeerHint(p bgp.PeerStatus) string {
	switch {
	case p.Established():
		return ""
	case p.LastError != "":
		return p.LastError
	default:
		return "the router has not answered: is it up, does it list this director as a neighbor with this AS, and the same MD5 password?"
	}
}
