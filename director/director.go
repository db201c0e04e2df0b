package director

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/liveness"
)

// Director owns the configuration in force and the reconciler. One
// goroutine (Run) holds that state; everything else asks it through
// channels, so no lock guards the table.
type Director struct {
	rec     *Reconciler
	weights Weights
	// drained are the manual overrides (directorctl drain); owned by
	// Run's goroutine, consulted through weights.
	drained   map[DrainKey]drainMark
	drainPath string
	onDrains  func([]DrainRecord)
	log       *slog.Logger
	reqs      chan func(*state)
	ready     chan struct{}
	stopped   chan struct{}
	loop      *liveness.Loop
	observe   func(time.Duration)
	sysctl    Sysctl
	// lastOK is when a reconcile last left the kernel as configured
	// (unix ns); atomic for the metrics endpoint.
	lastOK atomic.Int64
}

// state is what only Run's goroutine touches.
type state struct {
	cfg *config.Config
	// desired is the table cfg and the weights ask for. It changes only
	// on reload and weight changes, so it is kept, not rebuilt each tick.
	desired   Table
	lastOK    time.Time
	lastErr   error
	reconcile int
	// lastRead is when the kernel's table was last read: the view that
	// Status reports is what the kernel held then, plus what the
	// director changed since.
	lastRead time.Time
}

// Options are the Director's collaborators.
type Options struct {
	Kernel  Kernel
	Weights Weights // nil: ConfiguredWeights
	Logger  *slog.Logger
	// StatePath keeps the list of owned services; "" keeps it in memory.
	StatePath string
	// Workers are extra handles on the same kernel for large plans.
	Workers []Kernel
	// DrainPath keeps the drain records across restarts and reboots;
	// "" keeps them in memory.
	DrainPath string
	// OnDrains, if set, is given every drain record after each change,
	// made here or merged from the peer (MergeDrains). It is called on
	// the director's goroutine and must not block.
	OnDrains func([]DrainRecord)
	// Loop beats on every turn of Run's loop, and at least every
	// liveness.Period; nil: nobody watches.
	Loop *liveness.Loop
	// ObserveReconcile, if set, is given the duration of every
	// reconcile (read, diff, apply).
	ObserveReconcile func(time.Duration)
	// Sysctl is written in bgp mode (sysctl.go); nil: ProcSysctl, this
	// network namespace's.
	Sysctl Sysctl
}

// New makes a Director for an already validated configuration.
func New(opts Options) *Director {
	if opts.Weights == nil {
		opts.Weights = ConfiguredWeights{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	rec := NewReconciler(opts.Kernel, opts.Logger, opts.StatePath)
	rec.SetWorkers(opts.Workers...)
	if opts.Sysctl == nil {
		opts.Sysctl = ProcSysctl{}
	}
	rec.sysctl = opts.Sysctl
	d := &Director{
		rec:       rec,
		drained:   map[DrainKey]drainMark{},
		drainPath: opts.DrainPath,
		onDrains:  opts.OnDrains,
		log:       opts.Logger,
		reqs:      make(chan func(*state)),
		ready:     make(chan struct{}),
		stopped:   make(chan struct{}),
		loop:      opts.Loop,
		observe:   opts.ObserveReconcile,
		sysctl:    opts.Sysctl,
	}
	d.weights = drainWeights{inner: opts.Weights, drained: d.drained}
	d.loadDrains()
	return d
}

// ErrStopped is returned by requests made after Run has returned.
var ErrStopped = errors.New("director stopped")

// Run adopts what the kernel holds (no flush), converges it to cfg, then
// keeps it converged: on every reload, on every tick of the reconcile
// interval (repairing drift), and on request. It returns when ctx ends,
// leaving the kernel's table in place unless cfg asks for cleanup.
func (d *Director) Run(ctx context.Context, cfg *config.Config) error {
	defer close(d.stopped)
	d.pruneDrains(cfg)
	st := &state{cfg: cfg, desired: DesiredTable(cfg, d.weights)}
	if err := d.rec.SetTimeouts(cfg.IPVS.Timeouts); err != nil {
		d.log.Error("ipvs timeouts", "err", err)
	}
	if cfg.BGP != nil {
		d.writeSysctls()
	}
	d.reconcile(st, true)
	close(d.ready)
	tick := time.NewTicker(cfg.IPVS.ReconcileInterval)
	defer tick.Stop()
	alive := time.NewTicker(liveness.Period)
	defer alive.Stop()
	for {
		d.loop.Beat()
		select {
		case <-alive.C:
		case <-ctx.Done():
			if st.cfg.IPVS.CleanupOnExit {
				res := d.rec.RemoveOwned()
				d.log.Info("removed the services directord owned (cleanup_on_exit)", "removed", res.Applied, "failed", res.Failed)
			} else {
				d.log.Info("stopping; the kernel keeps the table so traffic continues")
			}
			return nil
		case <-tick.C:
			d.reconcile(st, false)
		case req := <-d.reqs:
			before := st.cfg.IPVS.ReconcileInterval
			req(st)
			if st.cfg.IPVS.ReconcileInterval != before {
				tick.Reset(st.cfg.IPVS.ReconcileInterval)
			}
		}
	}
}

// Counters are the reconciler's totals since start; safe to read at any
// time.
func (d *Director) Counters() *Counters { return d.rec.Counters }

// LastSuccess is when a reconcile last left the kernel as configured;
// zero before the first. Safe to call at any time.
func (d *Director) LastSuccess() time.Time {
	if ns := d.lastOK.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Ready is closed once the first reconcile has been done.
func (d *Director) Ready() <-chan struct{} { return d.ready }

// reconcile re-reads the kernel, logs drift, and converges. The timer's
// reconciles read large tables' destinations in rotation (full false);
// the first one and those asked for read everything.
func (d *Director) reconcile(st *state, full bool) Result {
	st.reconcile++
	if d.observe != nil {
		defer func(start time.Time) { d.observe(time.Since(start)) }(time.Now())
	}
	refresh := d.rec.RefreshRotating
	if full {
		refresh = d.rec.Refresh
	}
	drift, err := refresh()
	if err == nil {
		st.lastRead = time.Now()
	}
	if err != nil {
		st.lastErr = err
		d.rec.Counters.Errors.Add(1)
		d.log.Error("cannot read the kernel's IPVS table", "err", err)
		return Result{Failed: 1, Errors: []error{err}}
	}
	for _, line := range drift {
		d.log.Warn("drift: repairing a change made behind directord's back", "what", line)
	}
	res := d.rec.Apply(st.desired)
	if res.Failed == 0 {
		st.lastOK, st.lastErr = time.Now(), nil
		d.lastOK.Store(st.lastOK.UnixNano())
	} else {
		st.lastErr = errors.Join(res.Errors...)
	}
	return res
}

// do runs fn on the director's goroutine and waits for it.
func (d *Director) do(ctx context.Context, fn func(*state)) error {
	done := make(chan struct{})
	select {
	case d.reqs <- func(st *state) { fn(st); close(done) }:
	case <-d.stopped:
		return ErrStopped
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

// Reload puts a new, already validated configuration in force and
// converges to it. The kernel is not touched unless cfg is valid: that is
// the caller's job (config.Load), done before Reload.
func (d *Director) Reload(ctx context.Context, cfg *config.Config) (Result, error) {
	var res Result
	err := d.do(ctx, func(st *state) {
		d.pruneDrains(cfg)
		st.cfg, st.desired = cfg, NextDesiredTable(cfg, d.weights, st.desired)
		if err := d.rec.SetTimeouts(cfg.IPVS.Timeouts); err != nil {
			d.log.Error("ipvs timeouts", "err", err)
		}
		if cfg.BGP != nil {
			d.writeSysctls()
		}
		res = d.rec.Apply(st.desired)
		if res.Failed == 0 {
			d.lastOK.Store(time.Now().UnixNano())
		}
	})
	return res, err
}

// Reconcile re-reads the kernel and converges now.
func (d *Director) Reconcile(ctx context.Context) (Result, error) {
	var res Result
	err := d.do(ctx, func(st *state) { res = d.reconcile(st, true) })
	return res, err
}

// WeightsChanged converges one service after its weights source changed
// (a health transition, a drain), without dumping the table.
func (d *Director) WeightsChanged(ctx context.Context, service string) error {
	return d.do(ctx, func(st *state) {
		for i := range st.cfg.Services {
			if s := &st.cfg.Services[i]; s.Name == service {
				for _, e := range desiredEntriesIn(st.cfg, s, d.weights) {
					st.desired[KeyOf(e.Service)] = e
					d.rec.ApplyEntry(e)
				}
			}
		}
	})
}

// Status is a snapshot for directorctl status.
type Status struct {
	Config        string    `json:"config"`
	Node          string    `json:"node"`
	Reconciles    int       `json:"reconciles"`
	LastReconcile time.Time `json:"last_good_reconcile"`
	// KernelRead is when the kernel's table was last read; the table
	// shown is what it held then, with the director's own changes since.
	KernelRead time.Time       `json:"kernel_read"`
	LastError  string          `json:"last_error,omitempty"`
	Services   []ServiceStatus `json:"services"`
	Foreign    []string        `json:"foreign_services,omitempty"`
}

// ServiceStatus is one configured service as the kernel holds it.
type ServiceStatus struct {
	Name        string         `json:"name"`
	Key         string         `json:"key"`
	InKernel    bool           `json:"in_kernel"`
	Scheduler   string         `json:"scheduler"`
	RealServers []ServerStatus `json:"real_servers"`
	// OrderCanonical, for an mh or sh service in bgp mode, is whether
	// the kernel's list of destinations is in the canonical order every
	// director of the group uses (see order.go); nil otherwise.
	OrderCanonical *bool `json:"order_canonical,omitempty"`
}

// ServerStatus is one real server (or the sorry server).
type ServerStatus struct {
	Address          string `json:"address"`
	Sorry            bool   `json:"sorry,omitempty"`
	Forward          string `json:"forward"`
	Drained          bool   `json:"drained,omitempty"`
	ConfiguredWeight int    `json:"configured_weight"`
	// KernelWeight is the weight in the kernel, -1 when the destination
	// is not in the kernel.
	KernelWeight int     `json:"kernel_weight"`
	Health       *Health `json:"health,omitempty"`
}

// Health is a real server's check state, as the check engine sees it.
type Health struct {
	Check     string    `json:"check"`
	Healthy   bool      `json:"healthy"`
	Since     time.Time `json:"since"`
	Checked   time.Time `json:"last_checked,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}

// Status reports every configured service as the kernel held it at the
// last read (see KernelRead). It never reads or writes the kernel:
// looking must change nothing, and drift is the timer's and Reconcile's
// to repair.
func (d *Director) Status(ctx context.Context) (Status, error) {
	var out Status
	err := d.do(ctx, func(st *state) { out = d.status(st) })
	return out, err
}

func (d *Director) status(st *state) Status {
	out := Status{Config: st.cfg.Path, Node: st.cfg.Node, Reconciles: st.reconcile, LastReconcile: st.lastOK, KernelRead: st.lastRead}
	if st.lastErr != nil {
		out.LastError = st.lastErr.Error()
	}
	view := d.rec.View()
	for i := range st.cfg.Services {
		s := &st.cfg.Services[i]
		for _, svc := range ServicesOf(s) {
			out.Services = append(out.Services, d.serviceStatus(s, svc, view, st))
		}
	}
	for key := range view {
		if !d.rec.Owned(key) {
			out.Foreign = append(out.Foreign, key.String())
		}
	}
	return out
}

// serviceStatus is one kernel service of s: a service with vips has one
// per VIP, each under the service's name with its own key, listing the
// real servers of its family.
func (d *Director) serviceStatus(s *config.Service, svc ipvs.Service, view Table, st *state) ServiceStatus {
	e, inKernel := view[KeyOf(svc)]
	ss := ServiceStatus{Name: s.Name, Key: KeyOf(svc).String(), InKernel: inKernel, Scheduler: s.Scheduler}
	if want := st.desired[KeyOf(svc)]; want != nil && want.Ordered {
		ok := canonical(want, e)
		ss.OrderCanonical = &ok
	}
	add := func(rs *config.RealServer, sorry bool) {
		kw := -1
		if inKernel {
			if kd, ok := e.Dests.Get(DestKey{Addr: rs.Address, Port: rs.Port}); ok {
				kw = int(kd.Weight)
			}
		}
		ss.RealServers = append(ss.RealServers, ServerStatus{
			Address: netip.AddrPortFrom(rs.Address, rs.Port).String(), Sorry: sorry,
			Drained: !sorry && d.drained[DrainKey{s.Name, rs.AddrPort()}].drained,
			Forward: string(rs.Forward), ConfiguredWeight: rs.Weight, KernelWeight: kw,
		})
	}
	for j := range s.RealServers {
		if s.ServesFrom(svc.Address, &s.RealServers[j]) {
			add(&s.RealServers[j], false)
		}
	}
	if s.SorryServer != nil && s.ServesFrom(svc.Address, s.SorryServer) {
		add(s.SorryServer, true)
	}
	return ss
}
