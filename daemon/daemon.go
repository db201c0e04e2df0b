// Package daemon is directord's lifecycle: load and validate the config,
// adopt and converge the kernel's table, answer directorctl on the control
// socket, reload on SIGHUP, and stop on SIGTERM leaving traffic flowing.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/ipvsdump"
	"github.com/directorlb/director/liveness"
	"github.com/directorlb/director/metrics"
	"github.com/directorlb/director/preflight"
)

// Options configure a daemon run.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// OpenKernel opens IPVS; nil opens the kernel's (ipvsdump.New).
	OpenKernel func() (director.Kernel, error)
}

// ErrNoIPVS means the kernel's IPVS could not be opened.
var ErrNoIPVS = errors.New("cannot open kernel IPVS")

func openIPVS() (director.Kernel, error) { return ipvsdump.New() }

// Run runs directord until ctx ends. A config that does not load is
// returned as config.Errors before anything touches the kernel.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := load(opts.ConfigPath, log)
	if err != nil {
		return err
	}
	open := opts.OpenKernel
	if open == nil {
		open = openIPVS
	}
	k, err := open()
	if err != nil {
		return fmt.Errorf("%w: %w (is the ip_vs module loaded? modprobe ip_vs)", ErrNoIPVS, err)
	}
	// A second socket lets large plans (a cold start, a big reload)
	// overlap user-space and kernel work; more gain nothing, as the
	// kernel serialises IPVS changes.
	var workers []director.Kernel
	if w, err := open(); err == nil {
		workers = append(workers, w)
	}
	// Health checks start before the director's first reconcile, seeded
	// from the kernel, so the weights it computes adopt what is serving.
	eng := checks.NewEngine(log)
	specs, err := checks.LoadSpecs(cfg) // reads password_file and ca_file
	if err != nil {
		return err
	}
	if t, err := director.ReadTable(k); err == nil {
		if n := seedAdopted(cfg, t, specs); n > 0 {
			log.Info("adopting real servers the kernel already serves as healthy", "servers", n)
		}
	} else {
		log.Warn("cannot read the kernel's table to adopt health; every server starts unhealthy", "err", err)
	}
	eng.Set(specs)
	loops := liveness.New()
	// Bounds are generous: a stalled loop gets directord restarted by
	// systemd, which must never happen to one that is merely busy (a
	// reconcile of a large table, a slow netlink answer).
	eng.SetLoop(loops.Register("checks", 15*time.Second))
	var exp *metrics.Exporter // set before anything observes through it
	var relay *drainRelay     // the pair's share of the drains
	var onDrains func([]director.DrainRecord)
	if cfg.Failover != nil {
		relay = newDrainRelay()
		onDrains = relay.fromDirector
	}
	d := director.New(director.Options{
		Loop:             loops.Register("reconcile", max(60*time.Second, 3*cfg.IPVS.ReconcileInterval)),
		ObserveReconcile: func(took time.Duration) { exp.Reconciled(took) },
		Kernel:           k,
		Weights:          checks.Weights{Engine: eng},
		Workers:          workers,
		Logger:           log,
		// Kept beside the socket: per daemon, root-only, gone at reboot
		// together with the kernel table it describes.
		StatePath: filepath.Join(filepath.Dir(cfg.Control.Socket), "owned.json"),
		// Drains must outlive a reboot: under state_dir, not /run.
		DrainPath: filepath.Join(cfg.StateDir, "drains.json"),
		OnDrains:  onDrains,
	})
	s := &server{path: opts.ConfigPath, d: d, eng: eng, log: log, socket: cfg.Control.Socket}
	s.cfg.Store(cfg)
	var ready atomic.Bool
	var pr *pair
	mk, err := open()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoIPVS, err)
	}
	exp = metrics.New(metrics.Sources{
		Config:     s.cfg.Load,
		Kernel:     mk,
		Health:     eng,
		Reconciles: d,
		Loops:      loops,
		Ready:      ready.Load,
		Log:        log,
	})
	// The pair starts after the first reconcile, but the metrics serve
	// from before it: a scrape in between reads the pointer as it is
	// then, and reports the node still in init.
	var started atomic.Pointer[pair]
	if cfg.Failover != nil {
		exp.SetPair(func(ctx context.Context) (*failover.Status, error) {
			if p := started.Load(); p != nil {
				return p.status(ctx)
			}
			return &failover.Status{Role: failover.RoleInit.String()}, nil
		})
	}
	s.exp = exp
	eng.OnResult(exp.CheckResult)

	// The socket first: a second directord started by mistake fails on
	// it before touching the kernel.
	l, err := control.Listen(cfg.Control.Socket)
	if err != nil {
		return err
	}
	var ml net.Listener
	if cfg.Metrics.Listen != "" {
		if ml, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			l.Close()
			return fmt.Errorf("metrics.listen: %w", err)
		}
	}
	// Not a child of ctx: on a signal, stopAll leaves the pair before
	// anything else stops (the handover must not wait behind the rest).
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	pending := newChanges()
	eng.OnChange(pending.add)
	eng.Start(runCtx)
	defer eng.Wait()
	go pending.run(runCtx, d)
	go s.ramp(runCtx, pending)
	dirDone := make(chan error, 1)
	go func() { dirDone <- d.Run(runCtx, cfg) }()
	if ml != nil {
		go func() {
			if err := exp.Serve(runCtx, ml); err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		}()
	}
	select {
	case <-d.Ready():
	case err := <-dirDone:
		l.Close()
		return err
	}
	// The pair starts once the services are in the kernel, so a director
	// that becomes active has something to serve.
	pairCtx, stopPair := context.WithCancel(runCtx)
	defer stopPair()
	if cfg.Failover != nil {
		bound := max(5*time.Second, 10*cfg.Failover.Keepalive)
		drains, err := d.Drains(runCtx)
		if err != nil {
			l.Close()
			stop()
			<-dirDone
			return err
		}
		if pr, err = startPair(pairCtx, cfg, s.cfg.Load, log, loops.Register("heartbeat", bound), toPair(drains), relay.peerSent); err != nil {
			l.Close()
			stop()
			<-dirDone
			return err
		}
		s.pair = pr
		started.Store(pr)
		go relay.run(pairCtx, d, pr.node, log)
	}
	// stopAll leaves the pair first: the VIPs go and the peer takes over
	// while this director's table is still whole.
	stopAll := func() {
		if pr != nil {
			stopPair()
			if err := pr.wait(); err != nil {
				log.Error("failover", "err", err)
			}
		}
		stop()
	}
	ready.Store(true)
	log.Info("directord ready", "config", cfg.Path, "node", cfg.Node, "services", len(cfg.Services))
	notifySystemd(runCtx, exp, log)

	ctlDone := make(chan error, 1)
	go func() { ctlDone <- control.Serve(runCtx, l, s.handle, log) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
			stopAll()
			err := <-dirDone
			<-ctlDone
			return err
		case <-hup:
			log.Info("SIGHUP: reloading", "config", s.path)
			_, _ = s.reload(runCtx)
		case err := <-ctlDone:
			stopAll()
			<-dirDone
			return err
		}
	}
}

// server answers the control socket.
type server struct {
	path   string
	socket string
	d      *director.Director
	eng    *checks.Engine
	cfg    atomic.Pointer[config.Config] // the config in force
	log    *slog.Logger
	mu     sync.Mutex // one reload at a time, from SIGHUP or directorctl
	// pair is the failover node; nil for a single director. Set before
	// the control socket serves.
	pair *pair
	exp  *metrics.Exporter
}

// Status is what directorctl status prints: the director's table and
// health, and the pair.
type Status struct {
	director.Status
	// Role is the pair role, or "active" for a single director, which
	// always holds its VIPs.
	Role     string           `json:"role"`
	Failover *failover.Status `json:"failover,omitempty"`
}

// ReloadResult is what directorctl reload prints.
type ReloadResult struct {
	Config  string   `json:"config"`
	Changes int      `json:"changes"`
	Failed  int      `json:"failed"`
	Errors  []string `json:"errors,omitempty"`
	// DryRun: nothing was changed; Plan is what a reload would change in
	// the kernel, and Notes what it would change that needs a restart.
	DryRun   bool     `json:"dry_run,omitempty"`
	Plan     []string `json:"plan,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// planReload is a reload's dry run: the file is read and checked as a
// reload would, and the kernel changes it would make are described, but
// nothing is changed (not the checks, not the metrics, not the kernel).
func (s *server) planReload(ctx context.Context) (*ReloadResult, error) {
	cfg, warns, err := loadQuiet(s.path)
	if err != nil {
		return nil, err
	}
	if _, err := checks.LoadSpecs(cfg); err != nil {
		return nil, err
	}
	ops, err := s.d.Plan(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := &ReloadResult{Config: cfg.Path, DryRun: true, Changes: len(ops)}
	for _, op := range ops {
		out.Plan = append(out.Plan, director.Describe(op))
	}
	for _, w := range warns {
		out.Warnings = append(out.Warnings, w.Error())
	}
	out.Notes = restartOnly(s.cfg.Load(), cfg, s.socket)
	return out, nil
}

// restartOnly says what a new config changes that only a restart puts
// in force: the sockets, the pair, the node's name and the state kept.
func restartOnly(old, cfg *config.Config, socket string) []string {
	var out []string
	if cfg.Control.Socket != socket {
		out = append(out, fmt.Sprintf("control.socket changed (%s -> %s); it takes effect at the next restart", socket, cfg.Control.Socket))
	}
	if cfg.Metrics.Listen != old.Metrics.Listen {
		out = append(out, fmt.Sprintf("metrics.listen changed (%q -> %q); it takes effect at the next restart", old.Metrics.Listen, cfg.Metrics.Listen))
	}
	if cfg.Node != old.Node {
		out = append(out, fmt.Sprintf("node changed (%s -> %s); it takes effect at the next restart", old.Node, cfg.Node))
	}
	if cfg.StateDir != old.StateDir {
		out = append(out, fmt.Sprintf("state_dir changed (%s -> %s); it takes effect at the next restart", old.StateDir, cfg.StateDir))
	}
	if !reflect.DeepEqual(old.Failover, cfg.Failover) {
		out = append(out, "the failover block changed; it takes effect at the next restart")
	}
	return out
}

// loadQuiet reads and checks a config as a start or a reload does: the
// file (config.Load), then what it names on this host (preflight), so
// that directord refuses exactly what check-config refuses. warns are the
// file's warnings and the host's, in file order.
func loadQuiet(path string) (*config.Config, []error, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	errs, hostWarns := preflight.Check(cfg)
	if len(errs) > 0 {
		out := make(config.Errors, 0, len(errs))
		for _, e := range errs {
			var ce *config.Error
			if errors.As(e, &ce) {
				out = append(out, ce)
			} else {
				out = append(out, &config.Error{Pos: config.Pos{File: path, Line: 1, Col: 1}, Msg: e.Error()})
			}
		}
		return nil, nil, out
	}
	warns := make([]error, 0, len(cfg.Warnings)+len(hostWarns))
	for _, w := range cfg.Warnings {
		warns = append(warns, w)
	}
	return cfg, append(warns, hostWarns...), nil
}

// load is loadQuiet, logging the warnings.
func load(path string, log *slog.Logger) (*config.Config, error) {
	cfg, warns, err := loadQuiet(path)
	for _, w := range warns {
		log.Warn("config", "warning", w.Error())
	}
	return cfg, err
}

// reload validates the file again; a bad file is refused as a whole and
// the running config stays in force, with the kernel untouched.
func (s *server) reload(ctx context.Context) (*ReloadResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := load(s.path, s.log)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				s.log.Error("reload refused, keeping the running config", "problem", e.Error())
			}
		} else {
			s.log.Error("reload refused, keeping the running config", "err", err)
		}
		s.exp.Reloaded(false)
		return nil, err
	}
	for _, n := range restartOnly(s.cfg.Load(), cfg, s.socket) {
		s.log.Warn(n)
	}
	specs, err := checks.LoadSpecs(cfg) // reads password_file and ca_file
	if err != nil {
		s.log.Error("reload refused, keeping the running config", "err", err)
		s.exp.Reloaded(false)
		return nil, err
	}
	s.eng.Set(specs)
	res, err := s.d.Reload(ctx, cfg)
	if err != nil {
		s.exp.Reloaded(false)
		return nil, err
	}
	s.exp.Reloaded(true)
	s.cfg.Store(cfg)
	if s.pair != nil {
		if err := s.pair.setDigest(ctx, cfg.ServicesDigest()); err != nil {
			s.log.Warn("failover: cannot tell the pair about the new config", "err", err)
		}
	}
	out := &ReloadResult{Config: cfg.Path, Changes: res.Applied, Failed: res.Failed}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, e.Error())
	}
	s.log.Info("reloaded", "config", cfg.Path, "services", len(cfg.Services), "changes", res.Applied, "failed", res.Failed)
	return out, nil
}

func (s *server) handle(ctx context.Context, req control.Request) (any, error) {
	switch req.Cmd {
	case "status":
		st, err := s.d.Status(ctx)
		if err != nil {
			return nil, err
		}
		annotate(&st, s.eng.Snapshot())
		out := Status{Status: st, Role: "active"}
		if s.pair != nil {
			fs, err := s.pair.status(ctx)
			if err != nil {
				return nil, err
			}
			out.Failover, out.Role = fs, fs.Role
		}
		return out, nil
	case "takeover":
		return nil, s.pair.takeover(ctx)
	case "release":
		return nil, s.pair.release(ctx)
	case "reload":
		if req.DryRun {
			return s.planReload(ctx)
		}
		return s.reload(ctx)
	case "drain", "enable":
		if req.Service == "" || req.Address == "" {
			return nil, fmt.Errorf("%s needs a service and a real server address", req.Cmd)
		}
		return s.d.Drain(ctx, req.Service, req.Address, req.Cmd == "drain")
	case "reconcile":
		res, err := s.d.Reconcile(ctx)
		if err != nil {
			return nil, err
		}
		return ReloadResult{Changes: res.Applied, Failed: res.Failed}, nil
	}
	return nil, fmt.Errorf("unknown command %q", req.Cmd)
}

// notifySystemd tells systemd (Type=notify) that directord is ready and,
// under WatchdogSec, pings the watchdog while every loop is turning: a
// wedged directord stops pinging and systemd restarts it. Outside systemd
// it does nothing.
func notifySystemd(ctx context.Context, exp *metrics.Exporter, log *slog.Logger) {
	if _, err := sdnotify.SdNotify(false, sdnotify.SdNotifyReady); err != nil {
		log.Warn("systemd: cannot notify readiness", "err", err)
	}
	every, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(every / 3)
		defer t.Stop()
		wasOK := true
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok, report := exp.Healthy()
			if ok {
				_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
			} else if wasOK {
				log.Error("a loop stalled; no longer pinging the systemd watchdog", "loops", report)
			}
			wasOK = ok
		}
	}()
}
