package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/ipvssync"
	"github.com/directorlb/director/liveness"
	"github.com/directorlb/director/vip"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// GuardArg is the hidden argument that makes directord the VIP guard: the
// child that removes the VIPs if directord dies without giving them up.
const GuardArg = vip.GuardArg

// pair is the running failover node and what it holds open.
type pair struct {
	node     *failover.Node
	vips     *vip.VIPs
	list     []vip.VIP
	guard    *vip.Guard
	farewell vip.Farewell // what the guard says for this director if it dies
	close    []func() error
	done     chan error
}

// startPair opens everything the failover block names and starts the
// node. Anything that cannot be opened (the key file, a link, the sync
// daemon's netlink) stops the start, before any VIP is touched.
// live is the config in force, which a reload may replace.
// drains are the director's drain records, onDrains takes the peer's.
func startPair(ctx context.Context, cfg *config.Config, live func() *config.Config, log *slog.Logger, loop *liveness.Loop,
	drains []heartbeat.DrainRecord, onDrains func([]heartbeat.DrainRecord)) (*pair, error) {
	fo := cfg.Failover
	p := &pair{done: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			p.closeAll()
		}
	}()
	key, err := heartbeat.ReadAuthKey(fo.AuthKeyFile)
	if err != nil {
		return nil, fmt.Errorf("failover.auth_key_file: %w", err)
	}
	var links []heartbeat.Link
	var specs []heartbeat.LinkSpec
	for i, l := range fo.Links {
		spec := heartbeat.LinkSpec{Serial: l.Serial, Interface: l.Interface, Peer: l.Peer, Multicast: l.Multicast, Port: fo.Port}
		link, err := spec.Open(log)
		if err != nil {
			return nil, fmt.Errorf("failover.links[%d]: %w", i, err)
		}
		links = append(links, link)
		specs = append(specs, spec)
		p.close = append(p.close, link.Close)
	}
	nc := failover.NodeConfig{
		Loop: loop,
		Params: failover.Params{
			Node:         cfg.Node,
			Priority:     uint8(fo.Priority),
			AutoFailback: fo.AutoFailback,
			Deadtime:     fo.Deadtime,
			Initdead:     fo.Initdead,
		},
		Keepalive:   fo.Keepalive,
		Key:         key,
		Digest:      cfg.ServicesDigest(),
		Links:       links,
		HookTimeout: fo.HookTimeout,
		Drains:      drains,
		OnDrains:    onDrains,
		Log:         log,
	}
	if fo.Notify != "" {
		nc.Notify = []string{fo.Notify}
	}
	if fo.Fence != "" {
		nc.Fence = []string{fo.Fence}
	}
	if len(fo.VIPs) > 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find directord's own binary for the VIP guard: %w", err)
		}
		// Not ctx: at a graceful stop the node gives the VIPs up itself
		// and the guard is closed with a goodbye after it.
		p.guard, err = vip.StartGuard(context.WithoutCancel(ctx), []string{exe, GuardArg}, log)
		if err != nil {
			return nil, fmt.Errorf("start the VIP guard: %w", err)
		}
		p.farewell = vip.Farewell{KeyFile: fo.AuthKeyFile, Node: cfg.Node, Priority: uint8(fo.Priority), Digest: nc.Digest, Links: specs}
		if err := p.guard.Farewell(p.farewell); err != nil {
			// The peer then finds a crash at deadtime, as without it.
			log.Warn("the VIP guard cannot tell the peer at once if this director dies", "err", err)
		}
		var vips []vip.VIP
		seen := map[string]bool{}
		for _, v := range fo.VIPs {
			vips = append(vips, vip.VIP{Prefix: v.Address, Interface: v.Interface})
			if !seen[v.Interface] {
				seen[v.Interface] = true
				nc.VIPInterfaces = append(nc.VIPInterfaces, v.Interface)
			}
		}
		// One netlink socket kept open for the VIPs: a takeover then
		// makes no socket of its own to add them.
		nh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("failover.vips: netlink: %w", err)
		}
		p.close = append(p.close, func() error { nh.Close(); return nil })
		p.vips, p.list = vip.NewVIPs(vips, log, vip.WithGuard(p.guard), vip.WithAddrTable(nh)), vips
		p.close = append(p.close, p.vips.Close)
		nc.VIPs = p.vips
		ifl, err := vip.OpenIfFlags()
		if err != nil {
			return nil, fmt.Errorf("failover.vips: %w", err)
		}
		p.close = append(p.close, ifl.Close)
		nc.Interfaces = ifl
		nc.ProbeVIPs = func(ctx context.Context) ([]vip.VIPAnswer, error) { return vip.ProbeVIPs(ctx, vips) }
		nc.Forwarded = func() bool { return vip.Forwarded(vips) }
	}
	if fo.Sync != nil {
		sc, err := ipvssync.OpenSync()
		if err != nil {
			return nil, fmt.Errorf("failover.sync: %w", err)
		}
		p.close = append(p.close, sc.Close)
		nc.Sync = sc
		nc.SyncDaemon = ipvssync.SyncDaemon{Interface: fo.Sync.Interface, SyncID: uint32(fo.Sync.SyncID)}
		if nc.Handover, err = ipvssync.NewHandover(nc.SyncDaemon, connRoutes(live)); err != nil {
			return nil, fmt.Errorf("failover.sync: %w", err)
		}
	}
	if len(fo.PingNodes) > 0 {
		pg, err := failover.NewPinger(fo.PingNodes)
		if err != nil {
			return nil, fmt.Errorf("failover.ping_nodes: %w", err)
		}
		p.close = append(p.close, pg.Close)
		nc.Pinger = pg
	}
	p.node, err = failover.NewNode(nc)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	ok = true
	go func() { p.done <- p.node.Run(ctx) }()
	return p, nil
}

// setDigest tells the peer, and the guard's farewell, the digest of a
// reloaded config.
func (p *pair) setDigest(ctx context.Context, d [16]byte) error {
	err := p.node.SetDigest(ctx, d)
	if p.guard != nil && p.farewell.Digest != d {
		p.farewell.Digest = d
		err = errors.Join(err, p.guard.Farewell(p.farewell))
	}
	return err
}

// wait waits for the node to leave the pair (ctx ended), then closes the
// guard cleanly: the node has removed the VIPs itself.
func (p *pair) wait() error {
	err := <-p.done
	p.closeAll()
	return err
}

func (p *pair) closeAll() {
	for _, c := range p.close {
		_ = c()
	}
	if p.guard != nil {
		_ = p.guard.Close()
	}
}

// RunGuard is the VIP guard child's whole life (directord -vip-guard).
func RunGuard(log *slog.Logger) error {
	return vip.RunGuard(os.Stdin, log)
}

// failoverStatus is the pair's part of directorctl status; nil without a
// failover block.
func (p *pair) status(ctx context.Context) (*failover.Status, error) {
	if p == nil {
		return nil, nil
	}
	st, err := p.node.Status(ctx)
	if err != nil {
		return nil, err
	}
	if p.vips != nil {
		held, err := p.vips.Held()
		if err != nil {
			return nil, fmt.Errorf("read the VIPs: %w", err)
		}
		for _, v := range p.list {
			st.VIPs = append(st.VIPs, failover.VIPStatus{Address: v.Prefix.String(), Interface: v.Interface, Held: slices.Contains(held, v)})
		}
	}
	return &st, nil
}

func (p *pair) takeover(ctx context.Context) error {
	if p == nil {
		return errNoPair
	}
	return p.node.Takeover(ctx)
}

func (p *pair) release(ctx context.Context) error {
	if p == nil {
		return errNoPair
	}
	return p.node.Release(ctx)
}

var errNoPair = errors.New("this director has no failover block: it is a single director and always holds its VIPs")
