package checks

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Spec subscribes one (service, real server) to a probe.
type Spec struct {
	Service    string
	RealServer netip.AddrPort // the configured real server: the subscriber's identity
	Probe      ProbeSpec
}

type subKey struct {
	service string
	rs      netip.AddrPort
}

// Status is what status output shows for one (service, real server).
type Status struct {
	Service    string
	RealServer netip.AddrPort
	Type       string
	Target     netip.AddrPort // where the probes go
	Healthy    bool
	Since      time.Time // last transition, or when the check was first set up
	// The last probe; Checked is zero before the first one.
	Checked time.Time
	OK      bool
	Error   string
	Latency time.Duration
	Weight  int // dynamic weight percentage in effect (100 unless reported)
}

// probe is one running probe stream. spec and prober never change after
// creation; everything else is guarded by Engine.mu.
type probe struct {
	key    string
	spec   ProbeSpec
	prober Prober

	cancel context.CancelFunc // nil while not running
	m      machine
	since  time.Time
	// recovered is when the probe last saw the target become healthy;
	// zero if it has only ever been healthy from the start (adopted).
	recovered time.Time
	checked   time.Time
	last      Result
	weight    int
	services  []string // sorted, unique: who to notify on a transition
}

// Engine runs health checks. The zero value is not usable; use NewEngine.
type Engine struct {
	log      *slog.Logger
	onChange func(service string)
	wg       sync.WaitGroup

	// newProber builds probers; tests substitute fakes.
	newProber func(ProbeSpec) Prober
	// observed, if set, sees every recorded result (after the lock is
	// released); tests use it to await results instead of sleeping.
	observed func(key string, res Result)

	mu     sync.Mutex
	ctx    context.Context // nil until Start
	probes map[string]*probe
	subs   map[subKey]*probe
}

// NewEngine returns an engine with no checks. log may be nil (slog's
// default logger).
func NewEngine(log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	return &Engine{log: log, newProber: NewProber, probes: map[string]*probe{}, subs: map[subKey]*probe{}}
}

// OnChange sets the function called once per service affected by each
// health transition, after the new state is visible to Health, Weights and
// Snapshot. It runs on the probe's goroutine, possibly concurrently for
// different probes, so it must be safe for concurrent use; blocking in it
// delays only that probe. Call before Start.
func (e *Engine) OnChange(f func(service string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onChange = f
}

// Start runs the probes until ctx is done; Set may be called before or
// after it. Wait returns once every probe goroutine has stopped.
func (e *Engine) Start(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx != nil {
		panic("checks: Engine started twice")
	}
	e.ctx = ctx
	for _, p := range e.probes {
		e.startLocked(p)
	}
}

// Wait blocks until all probe goroutines have exited (after Start's
// context is done).
func (e *Engine) Wait() { e.wg.Wait() }

// Set replaces the subscriptions. Probes whose key is unchanged keep
// running with their state; new keys start (a new key that differs from a
// removed one only in interval, timeout, rise, fall or start-healthy
// inherits its health, so retuning a check on reload does not take
// servers out); probes nobody subscribes to any more stop. Set does not
// call OnChange: the caller recomputes the whole table after a reload.
func (e *Engine) Set(specs []Spec) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	probes := make(map[string]*probe, len(specs))
	subs := make(map[subKey]*probe, len(specs))
	for _, s := range specs {
		key := s.Probe.Key()
		p := probes[key]
		if p == nil {
			p = e.probes[key]
		}
		if p == nil {
			p = &probe{key: key, spec: s.Probe, prober: e.newProber(s.Probe), since: now, weight: 100,
				m: newMachine(s.Probe.Rise, s.Probe.Fall, s.Probe.StartHealthy || s.Probe.Type == "none")}
			e.inherit(p)
		}
		probes[key] = p
		subs[subKey{s.Service, s.RealServer}] = p
	}
	for key, p := range e.probes {
		if probes[key] == nil && p.cancel != nil {
			p.cancel()
			p.cancel = nil
		}
	}
	for _, p := range probes {
		p.services = p.services[:0]
	}
	for k, p := range subs {
		p.services = append(p.services, k.service)
	}
	for _, p := range probes {
		slices.Sort(p.services)
		p.services = slices.Compact(p.services)
	}
	e.probes, e.subs = probes, subs
	if e.ctx != nil {
		for _, p := range probes {
			e.startLocked(p)
		}
	}
}

// inherit copies health from a probe being replaced by p that differs
// only in timing or thresholds. Called with e.mu held, before e.probes is
// replaced.
func (e *Engine) inherit(p *probe) {
	id := p.spec.identity()
	for _, old := range e.probes {
		if old.spec.identity() != id {
			continue
		}
		p.m.healthy = old.m.healthy
		p.since, p.checked, p.last, p.weight = old.since, old.checked, old.last, old.weight
		p.recovered = old.recovered
		return
	}
}

// startLocked starts p's goroutine unless it runs already or is type none
// (always healthy: nothing to probe). Called with e.mu held.
func (e *Engine) startLocked(p *probe) {
	if p.cancel != nil || p.spec.Type == "none" || e.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	p.cancel = cancel
	e.wg.Add(1)
	go e.run(ctx, p)
}

// run is one probe's loop. The first probe comes after a random delay in
// [0, interval) so that a reload or start does not fire every check at
// once; later ones every interval (FastInterval while transitional),
// measured from the start of the previous probe.
func (e *Engine) run(ctx context.Context, p *probe) {
	defer e.wg.Done()
	interval := max(p.spec.Interval, time.Millisecond)
	timer := time.NewTimer(rand.N(interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		timeout := p.spec.Timeout
		if timeout <= 0 {
			timeout = interval
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		res := p.prober.Probe(pctx, p.spec.Target)
		cancel()
		if ctx.Err() != nil {
			// Stopped mid-probe (reload removed it, or shutdown): the
			// result says nothing about the target.
			return
		}
		next := e.record(p, res, time.Now())
		timer.Reset(max(0, next-time.Since(start)))
	}
}

// record applies one result and returns the delay before the next probe.
func (e *Engine) record(p *probe, res Result, now time.Time) time.Duration {
	e.mu.Lock()
	if e.probes[p.key] != p {
		e.mu.Unlock() // removed by Set while probing
		return p.spec.Interval
	}
	if !res.OK && res.Err == nil {
		// Status must always say why a probe failed.
		res.Err = errors.New("failed")
	}
	p.last, p.checked = res, now
	if res.OK {
		p.weight = 100
		if res.Weight != NoWeight {
			p.weight = res.Weight
		}
	}
	changed := p.m.observe(res.OK)
	var notify []string
	var onChange func(string)
	if changed {
		p.since = now
		if p.m.healthy {
			p.recovered = now
		}
		notify, onChange = slices.Clone(p.services), e.onChange
		attrs := []any{"type", p.spec.Type, "target", p.spec.Target, "services", notify}
		if p.m.healthy {
			e.log.Info("real server healthy", attrs...)
		} else {
			e.log.Warn("real server unhealthy", append(attrs, "error", errText(res.Err))...)
		}
	}
	next := p.spec.Interval
	if p.spec.FastInterval > 0 && p.m.transitional() {
		next = p.spec.FastInterval
	}
	e.mu.Unlock()
	if e.observed != nil {
		e.observed(p.key, res)
	}
	if onChange != nil {
		for _, s := range notify {
			onChange(s)
		}
	}
	return next
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Health reports whether a (service, real server) is healthy and its
// dynamic weight percentage. known is false for a pair no Spec mentions.
func (e *Engine) Health(service string, rs netip.AddrPort) (healthy bool, percent int, known bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.subs[subKey{service, rs}]
	if p == nil {
		return false, 0, false
	}
	return p.m.healthy, p.weight, true
}

// Snapshot returns the state of every subscription, sorted by service and
// real server.
func (e *Engine) Snapshot() []Status {
	e.mu.Lock()
	out := make([]Status, 0, len(e.subs))
	for k, p := range e.subs {
		out = append(out, Status{
			Service: k.service, RealServer: k.rs, Type: p.spec.Type, Target: p.spec.Target,
			Healthy: p.m.healthy, Since: p.since, Checked: p.checked,
			OK: p.last.OK, Error: errText(p.last.Err), Latency: p.last.Latency, Weight: p.weight,
		})
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), a.RealServer.Compare(b.RealServer))
	})
	return out
}

// Recovered reports when a subscription's target last became healthy
// after being unhealthy (zero if it never did: healthy from the start, or
// not known). Slow start ramps from that moment.
func (e *Engine) Recovered(service string, rs netip.AddrPort) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.subs[subKey{service, rs}]; p != nil {
		return p.recovered
	}
	return time.Time{}
}
