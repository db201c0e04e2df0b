package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/ipvsdump"
	"github.com/directorlb/director/liveness"
	"github.com/directorlb/director/metrics"
)

func openIPVS() (director.Kernel, error) { return ipvsdump.New() }

// daemon is directord built: its config loaded and checked, its sockets
// and kernel handles open, its parts made and wired together. Nothing
// runs yet (run starts it) and nothing in the kernel has changed.
type daemon struct {
	log *slog.Logger
	cfg *config.Config // the config at start; srv holds the one in force
	ctl net.Listener   // the control socket
	ml  net.Listener   // the metrics endpoint; nil without metrics.listen
	// kernels are the IPVS handles opened, in order; close closes them.
	kernels []director.Kernel
	loops   *liveness.Loops
	eng     *checks.Engine
	changes *changes // the checks' transitions, on their way to dir
	dir     *director.Director
	exp     *metrics.Exporter
	srv     *server
	bgp     *scaleOut   // nil without bgp
	relay   *drainRelay // the pair's share of the drains; nil without a pair
	// pair is the running pair, set once it has started: the metrics
	// serve from before, and report the node in init until then.
	pair atomic.Pointer[pair]
	// stopPair makes the running pair leave (leavePair); nil without one.
	stopPair func() error
	ready    atomic.Bool
	// events are the state changes the status page lists.
	events *events
}

// build makes a daemon, in an order that keeps directord's promises: the
// config, what it names on this host (load: config.Load and preflight)
// and the checks' files are judged before anything is opened; the
// control socket is opened first, so that a second directord started by
// mistake fails on it before it opens the kernel; then the metrics
// listener and the kernel's IPVS. On an error, what was opened is closed.
func build(opts Options) (_ *daemon, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := load(opts.ConfigPath, log)
	if err != nil {
		return nil, err
	}
	specs, err := checks.LoadSpecs(cfg) // reads password_file and ca_file
	if err != nil {
		return nil, err
	}
	d := &daemon{log: log, cfg: cfg, loops: liveness.New(), events: newEvents()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.ctl, err = control.Listen(cfg.Control.Socket); err != nil {
		return nil, err
	}
	if cfg.Metrics.Listen != "" {
		if d.ml, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return nil, fmt.Errorf("metrics.listen: %w", err)
		}
	}
	open := opts.OpenKernel
	if open == nil {
		open = openIPVS
	}
	k, err := d.openKernel(open)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (is the ip_vs module loaded? modprobe ip_vs)", ErrNoIPVS, err)
	}
	// A second socket lets large plans (a cold start, a big reload)
	// overlap user-space and kernel work; more gain nothing, as the
	// kernel serialises IPVS changes.
	var workers []director.Kernel
	if w, err := d.openKernel(open); err == nil {
		workers = append(workers, w)
	}
	// The metrics read the kernel on their own handle, so that a scrape
	// never waits behind a reconcile.
	mk, err := d.openKernel(open)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoIPVS, err)
	}
	d.newChecks(k, specs)
	d.newDirector(k, workers)
	d.srv = &server{path: opts.ConfigPath, d: d.dir, eng: d.eng, log: log, socket: cfg.Control.Socket, status: d.status}
	d.srv.cfg.Store(cfg)
	d.newExporter(mk)
	d.srv.exp = d.exp
	if cfg.BGP != nil {
		if err := d.newScaleOut(); err != nil {
			return nil, err
		}
		d.exp.SetBGP(d.bgpStatus)
	}
	return d, nil
}

func (d *daemon) openKernel(open func() (director.Kernel, error)) (director.Kernel, error) {
	k, err := open()
	if err != nil {
		return nil, err
	}
	d.kernels = append(d.kernels, k)
	return k, nil
}

// newChecks makes the health checks, seeded from the kernel: a server
// it already serves starts healthy, so the weights of the director's
// first reconcile adopt what is serving.
func (d *daemon) newChecks(k director.Kernel, specs []checks.Spec) {
	d.eng = checks.NewEngine(d.log)
	if t, err := director.ReadTable(k); err == nil {
		if n := seedAdopted(d.cfg, t, specs); n > 0 {
			d.log.Info("adopting real servers the kernel already serves as healthy", "servers", n)
		}
	} else {
		d.log.Warn("cannot read the kernel's table to adopt health; every server starts unhealthy", "err", err)
	}
	d.eng.Set(specs)
	d.events.seedHealth(d.eng.Snapshot())
	// Bounds are generous: a stalled loop gets directord restarted by
	// systemd, which must never happen to one that is merely busy (a
	// reconcile of a large table, a slow netlink answer).
	d.eng.SetLoop(d.loops.Register("checks", 15*time.Second))
	d.changes = newChanges()
	d.eng.OnChange(d.checkChanged) // changes.add, and the status page's events
}

func (d *daemon) newDirector(k director.Kernel, workers []director.Kernel) {
	cfg := d.cfg
	var onDrains func([]director.DrainRecord)
	if cfg.Failover != nil {
		d.relay = newDrainRelay()
		onDrains = d.relay.fromDirector
	}
	d.dir = director.New(director.Options{
		Loop: d.loops.Register("reconcile", max(60*time.Second, 3*cfg.IPVS.ReconcileInterval)),
		// d.exp is made after the director, and before anything runs.
		ObserveReconcile: func(took time.Duration) {
			d.exp.Reconciled(took)
			if d.bgp != nil {
				d.bgp.ann.Poke() // a service back in the kernel may be announced
			}
		},
		Kernel:  k,
		Weights: checks.Weights{Engine: d.eng},
		Workers: workers,
		Logger:  d.log,
		// Kept beside the socket: per daemon, root-only, gone at reboot
		// together with the kernel table it describes.
		StatePath: filepath.Join(filepath.Dir(cfg.Control.Socket), "owned.json"),
		// Drains must outlive a reboot: under state_dir, not /run.
		DrainPath: filepath.Join(cfg.StateDir, "drains.json"),
		OnDrains:  onDrains,
	})
}

func (d *daemon) newExporter(mk director.Kernel) {
	d.exp = metrics.New(metrics.Sources{
		Config:     d.srv.cfg.Load,
		Kernel:     mk,
		Health:     d.eng,
		Reconciles: d.dir,
		Loops:      d.loops,
		Ready:      d.ready.Load,
		Log:        d.log,
		Page:       d.statusPage(mk),
	})
	if d.cfg.Failover != nil {
		d.exp.SetPair(d.pairStatus)
	}
	d.eng.OnResult(d.exp.CheckResult)
}

// close closes what build opened, once nothing that uses it runs. The
// listeners may have been closed already, by the loops that served them.
func (d *daemon) close() {
	if d.bgp != nil && d.bgp.group != nil {
		d.bgp.group.Close() // its links, if Run never ran
	}
	if d.ctl != nil {
		_ = d.ctl.Close()
	}
	if d.ml != nil {
		_ = d.ml.Close()
	}
	for _, k := range slices.Backward(d.kernels) {
		if c, ok := k.(io.Closer); ok {
			if err := c.Close(); err != nil {
				d.log.Warn("closing an IPVS handle", "err", err)
			}
		}
	}
}
