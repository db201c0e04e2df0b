package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/announce"
	"github.com/directorlb/director/bgp"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/group"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/ipvssync"
	"github.com/directorlb/director/preflight"
)

// scaleOut is a director's part in a bgp group: the BGP speaker and the
// announcer that tells it what to announce.
type scaleOut struct {
	speaker *bgp.Speaker
	ann     *announce.Announcer
	stop    func() // stops the announcer's goroutine and waits for it
	// group is the directors' heartbeats; nil without bgp.group.
	group     *group.Group
	stopGroup func() // says this director leaves, and waits
	// digest is this director's group digest (services and kernel),
	// set at start and at each reload.
	digest  atomic.Pointer[[16]byte]
	release string // the kernel's, part of the digest
}

// speakerConfig turns the bgp block into the speaker's config, reading
// each peer's MD5 password (the file rules of preflight).
func speakerConfig(b *config.BGP, d *daemon) (bgp.Config, error) {
	peers, err := speakerPeers(b)
	if err != nil {
		return bgp.Config{}, err
	}
	return bgp.Config{ASN: b.ASN, RouterID: b.RouterID, HoldTime: b.HoldTime, Peers: peers, Logger: d.log}, nil
}

func speakerPeers(b *config.BGP) ([]bgp.Peer, error) {
	var out []bgp.Peer
	for i, p := range b.Peers {
		bp := bgp.Peer{Address: p.Address, ASN: p.ASN}
		if p.BFD != nil {
			bp.BFD = &bgp.BFD{Interval: p.BFD.Interval, Multiplier: p.BFD.Multiplier}
		}
		if p.PasswordFile != "" {
			pw, err := preflight.ReadBGPPassword(p.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("bgp.peers[%d].password_file: %w", i, err)
			}
			bp.Password = string(pw)
		}
		out = append(out, bp)
	}
	return out, nil
}

// newScaleOut makes the speaker and the announcer; nothing runs yet.
func (d *daemon) newScaleOut() error {
	sc, err := speakerConfig(d.cfg.BGP, d)
	if err != nil {
		return err
	}
	sp, err := bgp.New(sc)
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	d.bgp = &scaleOut{speaker: sp}
	d.bgp.ann = announce.New(announce.Options{
		Speaker: sp,
		View: func(ctx context.Context) (director.Status, error) {
			st, err := d.dir.Status(ctx)
			if err == nil {
				annotate(&st, d.eng.Snapshot())
			}
			return st, err
		},
		Config:    d.srv.cfg.Load,
		StatePath: filepath.Join(d.cfg.StateDir, "node-drain.json"),
		Logger:    d.log,
		Loop:      d.loops.Register("announce", 30*time.Second),
		OnChange:  d.announced, // groupChanged, and the status page's events
	})
	d.changes.applied = d.bgp.ann.Poke
	d.srv.bgp = d.bgp
	if g := d.cfg.BGP.Group; g != nil {
		if err := d.newGroup(g); err != nil {
			return err
		}
	}
	return nil
}

// newGroup opens the group's links; its heartbeats say what the
// announcer decided and the digest of the config in force.
func (d *daemon) newGroup(g *config.BGPGroup) error {
	key, err := heartbeat.ReadAuthKey(g.AuthKeyFile)
	if err != nil {
		return fmt.Errorf("bgp.group.auth_key_file: %w", err)
	}
	var links []heartbeat.LinkSpec
	for _, l := range g.Links {
		links = append(links, heartbeat.LinkSpec{Interface: l.Interface, Peer: l.Peer, Multicast: l.Multicast})
	}
	b := d.bgp
	b.release = group.KernelRelease()
	b.setDigest(d.cfg)
	b.group, err = group.New(group.Config{Node: d.cfg.Node, Links: links, Key: key, Logger: d.log}, func() group.Local {
		l := b.ann.Local()
		return group.Local{Digest: *b.digest.Load(), Announced: l.Announced, Drained: l.Drained}
	})
	if err != nil {
		return fmt.Errorf("bgp.group: %w", err)
	}
	return nil
}

func (b *scaleOut) setDigest(cfg *config.Config) {
	dg := group.Digest(cfg, b.release)
	b.digest.Store(&dg)
}

// groupChanged tells the group at once what the announcer changed.
func (b *scaleOut) groupChanged() {
	if b.group != nil {
		b.group.Changed()
	}
}

// startScaleOut starts the speaker and the announcer, once the first
// reconcile has converged the kernel: the announcer announces a VIP only
// when the kernel serves it, so nothing is announced before there is
// something to serve.
func (d *daemon) startScaleOut(base context.Context) error {
	if sy := d.cfg.BGP.Sync; sy != nil {
		d.startGroupSync(sy)
	}
	if err := d.bgp.speaker.Start(base); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(base)
	t := goTask(func() error { return d.bgp.ann.Run(ctx) })
	d.bgp.stop = func() {
		cancel()
		t.wait()
	}
	if g := d.bgp.group; g != nil {
		gctx, gcancel := context.WithCancel(base)
		gt := goTask(func() error { return g.Run(gctx) })
		d.bgp.stopGroup = func() {
			gcancel()
			gt.wait()
		}
	}
	return nil
}

// leaveScaleOut is a graceful stop's first step in bgp mode: withdraw
// every VIP and wait (drain_time at most) until the routers have the
// withdrawal, while the kernel still forwards what they send; then stop
// the announcer and close the sessions.
func (d *daemon) leaveScaleOut() {
	if d.bgp == nil || d.bgp.stop == nil {
		return
	}
	drain := d.srv.cfg.Load().BGP.DrainTime
	ctx, cancel := context.WithTimeout(context.Background(), drain+5*time.Second)
	defer cancel()
	d.log.Info("bgp: graceful stop: withdrawing every VIP", "drain_time", drain)
	if err := d.bgp.ann.Leave(ctx, drain); err != nil {
		d.log.Error("bgp: graceful stop", "err", err)
	}
	d.bgp.stop()
	d.bgp.stop = nil
	if d.bgp.stopGroup != nil {
		d.bgp.stopGroup() // says it is leaving
		d.bgp.stopGroup = nil
	}
	if err := d.bgp.speaker.Stop(ctx); err != nil {
		d.log.Error("bgp: stopping the speaker", "err", err)
	}
}

// reloadScaleOut puts a reloaded bgp block in force: the peers through
// SetPeers (an unchanged peer keeps its session), the VIPs through the
// announcer. The AS, the router ID and the hold time need a restart.
func (s *server) reloadScaleOut(ctx context.Context, old, cfg *config.Config) {
	if s.bgp == nil || cfg.BGP == nil {
		return
	}
	peers, err := speakerPeers(cfg.BGP)
	if err == nil {
		err = s.bgp.speaker.SetPeers(ctx, peers)
	}
	if err != nil {
		s.log.Error("bgp: cannot put the reloaded peers in force; the old ones stay", "err", err)
	}
	s.bgp.ann.Poke()
	if s.bgp.group != nil {
		s.bgp.setDigest(cfg)
		s.bgp.group.Changed()
	}
}

// status is directorctl status's bgp part, and the metrics'.
func (b *scaleOut) status(ctx context.Context) (*control.BGPStatus, error) {
	st, err := b.ann.Status(ctx)
	if err != nil || b.group == nil {
		return st, err
	}
	// The group stops after the announcer (a graceful stop says it
	// leaves once withdrawn): a status then has no group, not an error.
	if gs, err := b.group.Status(ctx); err == nil {
		st.Group = &gs
	}
	return st, nil
}

// bgpStatus serves the metrics from before the speaker starts: nothing
// is reported until it runs.
func (d *daemon) bgpStatus(ctx context.Context) (*control.BGPStatus, error) {
	if d.bgp == nil || !d.ready.Load() {
		return nil, nil
	}
	return d.bgp.status(ctx)
}

// startGroupSync runs the kernel's master and backup sync daemons at
// once, so that this director holds every other's connections and they
// hold its own: a flow the routers move keeps its real server even on a
// scheduler that is not a hash. Daemons already running with this setup
// are kept (a restart loses no sync message); they are left running at
// the stop, like the kernel's table. A failure is loud but not fatal:
// mh with sloppy_tcp still picks the same real server without sync.
func (d *daemon) startGroupSync(sy *config.Sync) {
	c, err := ipvssync.OpenSync()
	if err == nil {
		err = ipvssync.StartBoth(c, sy.Interface, sy.SyncID, d.log)
		_ = c.Close()
	}
	if err != nil {
		d.log.Error("bgp.sync: the kernel's sync daemons are not both running; flows moved between directors rely on mh alone", "err", err)
		return
	}
	d.log.Info("bgp.sync: master and backup sync daemons running", "interface", sy.Interface, "sync_id", sy.SyncID)
}
