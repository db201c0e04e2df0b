package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
)

// run starts the daemon's loops, in order, answers reloads until ctx ends
// or the control socket fails, then stops them.
//
// Start order, each step relying on those before it:
//  1. the health checks, with the slow-start ramp and the queue that
//     brings their changes to the director (build seeded them from the
//     kernel, so the first reconcile's weights adopt what is serving);
//  2. the metrics endpoint, which serves from before the first reconcile;
//  3. the director, whose first reconcile converges the kernel;
//  4. once the first reconcile is done, the pair (a director that
//     becomes active then has something to serve) or, in bgp mode, the
//     BGP speaker and the announcer (a VIP is announced only while the
//     kernel serves it);
//  5. readiness: the log line, systemd's READY and its watchdog;
//  6. the control socket's answers, once all they report on runs.
//
// Stop order: the pair leaves first, its VIPs released and its
// connections handed over to the peer while this director's table is
// whole and everything else still runs (in bgp mode the VIPs are
// withdrawn and the routers given drain_time to move the flows); then the other steps stop one
// by one, in the reverse of their start.
func (d *daemon) run(ctx context.Context, reload <-chan struct{}) error {
	// Not children of ctx: when it ends, the pair must leave before
	// anything else stops (the handover must not wait behind the rest).
	base := context.WithoutCancel(ctx)
	var started stages
	started.push(d.startChecks(base))
	if d.ml != nil {
		started.push(d.startMetrics(base))
	}
	dir, dirDone := d.startDirector(base)
	started.push(dir)
	select {
	case <-d.dir.Ready():
	case <-dirDone.done:
		started.stop()
		return dirDone.err
	}
	if d.cfg.Failover != nil {
		if err := d.startPair(base); err != nil {
			started.stop()
			return err
		}
	}
	if d.bgp != nil {
		if err := d.startScaleOut(base); err != nil {
			started.stop()
			return err
		}
	}
	d.ready.Store(true)
	d.log.Info("directord ready", "config", d.cfg.Path, "node", d.cfg.Node, "services", len(d.cfg.Services))
	started.push(d.startSystemd(base))
	ctl, ctlDone := d.startControl(base)
	started.push(ctl)

	stopAll := func() {
		d.leaveScaleOut()
		d.leavePair()
		started.stop()
	}
	for {
		select {
		case <-ctx.Done():
			_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
			stopAll()
			return dirDone.err
		case <-reload:
			_, _ = d.srv.reload(base)
		case <-ctlDone.done:
			stopAll()
			return ctlDone.err
		}
	}
}

// stage is one started step of run: stop cancels its context and waits
// for its goroutines.
type stage struct {
	cancel context.CancelFunc
	wait   func()
}

// stages are the steps started, in order.
type stages []stage

func (s *stages) push(st stage) { *s = append(*s, st) }

// stop stops the steps in the reverse of their start, each once the
// next has ended.
func (s *stages) stop() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i].cancel()
		(*s)[i].wait()
	}
	*s = nil
}

// task is a goroutine whose end may be awaited from several places.
type task struct {
	done chan struct{}
	err  error // set before done is closed
}

func goTask(fn func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = fn()
	}()
	return t
}

func (t *task) wait() { <-t.done }

// startChecks starts the health checks, the slow-start ramp and the
// queue that brings their changes to the director.
func (d *daemon) startChecks(base context.Context) stage {
	ctx, cancel := context.WithCancel(base)
	d.eng.Start(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.changes.run(ctx, d.dir) })
	wg.Go(func() { checks.Ramp{Engine: d.eng, Config: d.srv.cfg.Load}.Run(ctx) })
	return stage{cancel, func() {
		wg.Wait()
		d.eng.Wait()
	}}
}

// startDirector starts the director's loop; the task ends with it.
func (d *daemon) startDirector(base context.Context) (stage, *task) {
	ctx, cancel := context.WithCancel(base)
	t := goTask(func() error { return d.dir.Run(ctx, d.cfg) })
	return stage{cancel, t.wait}, t
}

func (d *daemon) startMetrics(base context.Context) stage {
	ctx, cancel := context.WithCancel(base)
	t := goTask(func() error {
		if err := d.exp.Serve(ctx, d.ml); err != nil {
			d.log.Error("metrics endpoint stopped", "err", err)
		}
		return nil
	})
	return stage{cancel, t.wait}
}

// startSystemd tells systemd (Type=notify) that directord is ready and,
// under WatchdogSec, pings the watchdog while every loop is turning: a
// wedged directord stops pinging and systemd restarts it. Outside
// systemd it does nothing.
func (d *daemon) startSystemd(base context.Context) stage {
	if _, err := sdnotify.SdNotify(false, sdnotify.SdNotifyReady); err != nil {
		d.log.Warn("systemd: cannot notify readiness", "err", err)
	}
	ctx, cancel := context.WithCancel(base)
	t := goTask(func() error {
		watchdog(ctx, d.exp.Healthy, d.log)
		return nil
	})
	return stage{cancel, t.wait}
}

// startControl answers the control socket; the task ends when the
// socket fails (or at the stop).
func (d *daemon) startControl(base context.Context) (stage, *task) {
	ctx, cancel := context.WithCancel(base)
	t := goTask(func() error { return control.Serve(ctx, d.ctl, d.srv.handle, d.log) })
	return stage{cancel, t.wait}, t
}

// startPair starts the failover node, with the director's drains, and
// the relay that carries drains between them. leavePair stops both.
func (d *daemon) startPair(base context.Context) error {
	fo := d.cfg.Failover
	bound := max(5*time.Second, 10*fo.Keepalive)
	drains, err := d.dir.Drains(base)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(base)
	pr, err := startPair(ctx, d.cfg, d.srv.cfg.Load, d.log, d.loops.Register("heartbeat", bound), toPair(drains), d.relay.peerSent)
	if err != nil {
		cancel()
		return err
	}
	relay := goTask(func() error {
		d.relay.run(ctx, d.dir, pr.node, d.log)
		return nil
	})
	d.srv.pair = pr // before the control socket answers
	d.stopPair = func() error {
		cancel()
		err := pr.wait()
		relay.wait()
		return err
	}
	d.pair.Store(pr)
	return nil
}

// leavePair makes the node leave the pair, if it runs: it gives up the
// VIPs and hands its connections over, then its links are closed.
func (d *daemon) leavePair() {
	if d.stopPair == nil {
		return
	}
	if err := d.stopPair(); err != nil {
		d.log.Error("failover", "err", err)
	}
	d.stopPair = nil
}

// pairStatus is the pair's part of the metrics. They serve from before
// the pair starts: a scrape then reports the node in init.
func (d *daemon) pairStatus(ctx context.Context) (*failover.Status, error) {
	if p := d.pair.Load(); p != nil {
		st, err := p.status(ctx)
		d.events.rolesSeen(st)
		return st, err
	}
	return &failover.Status{Role: heartbeat.RoleInit.String()}, nil
}

// watchdog pings systemd's watchdog every third of WatchdogSec while
// healthy reports every loop turning, until ctx ends. Without a
// watchdog it returns at once.
func watchdog(ctx context.Context, healthy func() (bool, string), log *slog.Logger) {
	every, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	wasOK := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, report := healthy()
		if ok {
			_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
		} else if wasOK {
			log.Error("a loop stalled; no longer pinging the systemd watchdog", "loops", report)
		}
		wasOK = ok
	}
}
