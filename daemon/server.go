package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/metrics"
	"github.com/directorlb/director/preflight"
)

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
	// bgp is the director's part in a bgp group; nil without bgp.
	bgp *scaleOut
	exp *metrics.Exporter
	// status is the director's status (daemon.status).
	status func(context.Context) (*control.Status, error)
}

// planReload is a reload's dry run: the file is read and checked as a
// reload would, and the kernel changes it would make are described, but
// nothing is changed (not the checks, not the metrics, not the kernel).
func (s *server) planReload(ctx context.Context) (*control.ReloadResult, error) {
	cfg, warns, err := loadQuiet(s.path)
	if err != nil {
		return nil, err
	}
	if _, err := checks.LoadSpecs(cfg); err != nil {
		return nil, err
	}
	if err := modeChange(s.cfg.Load(), cfg); err != nil {
		return nil, err
	}
	ops, err := s.d.Plan(ctx, cfg)
	if err != nil {
		return nil, err
	}
	out := &control.ReloadResult{Config: cfg.Path, DryRun: true, Changes: len(ops)}
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
	if o, n := old.BGP, cfg.BGP; o != nil && n != nil {
		if o.ASN != n.ASN || o.RouterID != n.RouterID || o.HoldTime != n.HoldTime {
			out = append(out, "bgp asn, router_id or hold_time changed; they take effect at the next restart")
		}
		if !reflect.DeepEqual(o.Sync, n.Sync) || !reflect.DeepEqual(o.Group, n.Group) {
			out = append(out, "bgp sync or group changed; they take effect at the next restart")
		}
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
func (s *server) reload(ctx context.Context) (*control.ReloadResult, error) {
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
	old := s.cfg.Load()
	if err := modeChange(old, cfg); err != nil {
		s.log.Error("reload refused, keeping the running config", "problem", err.Error())
		s.exp.Reloaded(false)
		return nil, err
	}
	for _, n := range restartOnly(old, cfg, s.socket) {
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
	s.reloadScaleOut(ctx, old, cfg)
	if s.pair != nil {
		if err := s.pair.setDigest(ctx, cfg.ServicesDigest()); err != nil {
			s.log.Warn("failover: cannot tell the pair about the new config", "err", err)
		}
	}
	out := &control.ReloadResult{Config: cfg.Path, Changes: res.Applied, Failed: res.Failed}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, e.Error())
	}
	s.log.Info("reloaded", "config", cfg.Path, "services", len(cfg.Services), "changes", res.Applied, "failed", res.Failed)
	return out, nil
}

func (s *server) handle(ctx context.Context, req control.Request) (any, error) {
	switch req.Cmd {
	case control.CmdStatus:
		return s.status(ctx) // as the status page shows it (statuspage.go)
	case control.CmdTakeover:
		return nil, s.pair.takeover(ctx)
	case control.CmdRelease:
		return nil, s.pair.release(ctx)
	case control.CmdReload:
		if req.DryRun {
			return s.planReload(ctx)
		}
		return s.reload(ctx)
	case control.CmdDrain, control.CmdEnable:
		if req.Service == "" || req.Address == "" {
			return nil, fmt.Errorf("%s needs a service and a real server address", req.Cmd)
		}
		return s.d.Drain(ctx, req.Service, req.Address, req.Cmd == control.CmdDrain)
	case control.CmdDrainNode, control.CmdEnableNode:
		if s.bgp == nil {
			return nil, fmt.Errorf("%s: this director has no bgp block; drain-node takes a director of a bgp group out of the routers' paths", req.Cmd)
		}
		if err := s.bgp.ann.SetDrained(ctx, req.Cmd == control.CmdDrainNode); err != nil {
			return nil, err
		}
		return s.bgp.status(ctx)
	case control.CmdReconcile:
		res, err := s.d.Reconcile(ctx)
		if err != nil {
			return nil, err
		}
		return control.ReloadResult{Changes: res.Applied, Failed: res.Failed}, nil
	}
	return nil, fmt.Errorf("unknown command %q", req.Cmd)
}

// modeChange refuses a reload that adds or removes the bgp block: the
// mode decides how the kernel is programmed (forwarding, schedulers,
// quiescing) and whether a BGP speaker runs, so it changes only with a
// restart.
func modeChange(old, cfg *config.Config) error {
	if (old.BGP == nil) == (cfg.BGP == nil) {
		return nil
	}
	what := "adds"
	if cfg.BGP == nil {
		what = "removes"
	}
	p, _ := cfg.Where("bgp")
	if cfg.BGP == nil {
		p = config.Pos{File: cfg.Path, Line: 1, Col: 1}
	}
	return config.Errors{{Pos: p, Key: "bgp", Msg: "the new config " + what + " the bgp block; a change of mode needs a restart of directord"}}
}
