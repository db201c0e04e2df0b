package checks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/liveness"
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
	Type       config.CheckType
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

// probe is one running probe stream. Its key, id, timing and prober
// never change after creation; stopped is atomic; everything else but
// due and index is guarded by Engine.mu.
type probe struct {
	key    string // ProbeSpec.Key
	id     string // ProbeSpec.identity: shared by specs differing in timing only
	timing timing
	prober Prober

	// stopped is set once Set drops the probe: the scheduler forgets it
	// and a result still in flight is discarded.
	stopped atomic.Bool
	// soon makes the first run come within the fast interval (when set)
	// rather than the interval: set by Set before the scheduler takes the
	// probe in, for a probe carrying the health of a check that no longer
	// applies (see carry).
	soon bool
	// due and index belong to the scheduler, or to the worker it handed
	// the probe to until that hands it back.
	due   int64 // when the next run should start, on the engine's clock (Engine.at)
	index int   // position in the scheduler's heap, -1 if not in it

	m     machine
	since time.Time
	// recovered is when the probe last saw the target become healthy;
	// zero if it has only ever been healthy from the start (adopted).
	recovered time.Time
	checked   time.Time
	last      Result
	weight    int
	services  []string // sorted, unique: who to notify on a transition
}

// timing is what the engine itself needs of a ProbeSpec; the rest is the
// prober's. Keeping only this (not the whole spec, with every type's
// options) makes a probe a third of the size: it counts ten thousand
// times over.
type timing struct {
	typ                             config.CheckType
	target                          netip.AddrPort
	interval, fastInterval, timeout time.Duration
	rise                            int
}

func timingOf(s ProbeSpec) timing {
	return timing{typ: s.Type, target: s.Target, interval: s.Interval, fastInterval: s.FastInterval,
		timeout: s.Timeout, rise: max(s.Rise, 1)}
}

// every is the interval between runs, at least a millisecond.
func (t timing) every() time.Duration { return max(t.interval, time.Millisecond) }

// maxRunning bounds the probes running at once. A run costs a goroutine
// and usually a socket or a process for at most its timeout, so this
// bounds the engine's memory and descriptors when many targets hang; the
// normal load (thousands of checks a second, each a few milliseconds)
// keeps only tens running. Due probes beyond the bound wait for a free
// slot; the wait counts as lateness (see inconclusiveAfter).
const maxRunning = 4096

// overloadQuiet is how long without an inconclusive result ends an
// overload episode, so that an engine hovering at its limit logs one
// warning rather than one per burst.
const overloadQuiet = 30 * time.Second

// Engine runs health checks. The zero value is not usable; use NewEngine.
//
// One scheduler goroutine keeps every probe in a heap ordered by due
// time and hands each due run to a worker goroutine, idle or new: a hung
// target holds only its own run's worker, and a probe between runs costs
// no goroutine or stack.
type Engine struct {
	// base is the origin of the scheduler's clock (see at).
	base     time.Time
	log      *slog.Logger
	onChange func(service string)
	wg       sync.WaitGroup

	// newProber builds probers; tests substitute fakes.
	newProber func(ProbeSpec) Prober
	// observed, if set, sees every recorded result (after the lock is
	// released); tests use it to await results instead of sleeping.
	observed func(key string, res Result)
	// firstDelay is the delay before a new probe's first run, given its
	// interval (default: random in [0, interval)); tests make it negative
	// to make a run start late.
	firstDelay func(interval time.Duration) time.Duration
	// maxRunning bounds the runs in flight (default the constant).
	maxRunning int
	// loop beats on every turn of the scheduler (SetLoop).
	loop *liveness.Loop
	// onResult sees every probe's outcome (OnResult).
	onResult func(typ config.CheckType, outcome Outcome, took time.Duration)

	// lateMarks[k] is when (Unix nanoseconds) a run last started at least
	// lateBounds[k] after its due time: how late the engine has been
	// recently, for judging the timeouts of runs in flight meanwhile.
	lateMarks [lateBuckets]atomic.Int64

	// idle counts the workers waiting for a probe to run (see maxIdle).
	idle atomic.Int32

	// wake tells the scheduler that added or removed changed, or that a
	// probe handed back is due before its planned turn.
	wake chan struct{}
	// back holds finished runs' probes until the scheduler's next turn;
	// until is when that turn is planned, on the engine's clock
	// (math.MaxInt64: not planned). See handBack.
	backMu sync.Mutex
	back   []*probe
	until  atomic.Int64

	mu     sync.RWMutex
	ctx    context.Context // nil until Start
	probes map[string]*probe
	subs   map[subKey]*probe
	// added and removed are probes Set started or stopped that the
	// scheduler has not taken in yet.
	added, removed []*probe
	// The current overload episode: when its last inconclusive result
	// was recorded (zero if none) and how many it has had.
	overloadLast time.Time
	overloadN    int
}

// NewEngine returns an engine with no checks. log may be nil (slog's
// default logger).
func NewEngine(log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	return &Engine{base: time.Now(), log: log, newProber: NewProber, probes: map[string]*probe{}, subs: map[subKey]*probe{},
		firstDelay: func(d time.Duration) time.Duration { return rand.N(d) },
		maxRunning: maxRunning, wake: make(chan struct{}, 1)}
}

// OnChange sets the function called once per service affected by each
// health transition, after the new state is visible to Health, Weights and
// Snapshot. It runs on the goroutine of the probe run that caused the
// transition, possibly concurrently for different probes, so it must be
// safe for concurrent use; blocking in it delays only that probe (and
// holds one of the engine's maxRunning run slots). Call before Start.
func (e *Engine) OnChange(f func(service string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onChange = f
}

// SetLoop makes the scheduler beat l on every turn, and at least every
// liveness.Period. Call before Start.
func (e *Engine) SetLoop(l *liveness.Loop) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loop = l
}

// Outcome classifies one probe run for metrics.
type Outcome string

// The outcomes of a probe run.
const (
	Success      Outcome = "success"
	Failure      Outcome = "failure"
	Timeout      Outcome = "timeout"
	Inconclusive Outcome = "inconclusive" // timed out while the engine ran late
)

// OnResult sets a function given every probe run's check type, outcome
// and duration. It runs on the probe's goroutine, concurrently for
// different probes, so it must be safe for concurrent use and quick.
// Call before Start.
func (e *Engine) OnResult(f func(typ config.CheckType, outcome Outcome, took time.Duration)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onResult = f
}

// Start runs the probes until ctx is done; Set may be called before or
// after it. Wait returns once the scheduler and every probe run have
// stopped.
func (e *Engine) Start(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx != nil {
		panic("checks: Engine started twice")
	}
	e.ctx = ctx
	e.wg.Add(1)
	go e.schedule(ctx)
}

// Wait blocks until the scheduler and all probe runs have exited (after
// Start's context is done).
func (e *Engine) Wait() { e.wg.Wait() }

// schedule is the scheduler goroutine: it takes in the probes Set adds
// and removes, starts due runs (at most e.maxRunning at once) and puts
// finished probes back with their next due time. A new probe's first
// run comes after a random delay in [0, interval), so that a reload or
// start does not fire every check at once.
func (e *Engine) schedule(ctx context.Context) {
	defer e.wg.Done()
	var h dueHeap
	work := make(chan *probe) // to idle workers: a send succeeds only if one waits
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	alive := time.NewTicker(liveness.Period)
	defer alive.Stop()
	running := 0
	var back []*probe
	for {
		e.loop.Beat()
		e.mu.Lock()
		added, removed := e.added, e.removed
		e.added, e.removed = nil, nil
		e.mu.Unlock()
		now := time.Now()
		for _, p := range added {
			if !p.stopped.Load() {
				every := p.timing.every()
				if p.soon && p.timing.fastInterval > 0 {
					every = min(every, p.timing.fastInterval)
				}
				p.due = e.at(now.Add(e.firstDelay(every)))
				h.push(p)
			}
		}
		for _, p := range removed {
			if p.index >= 0 {
				h.remove(p.index)
			}
		}
		for running < e.maxRunning && len(h) > 0 && h.next() <= e.at(now) {
			p := h.pop()
			running++
			select {
			case work <- p: // an idle worker took it
			default:
				e.wg.Add(1)
				go e.worker(ctx, work, p)
			}
		}
		// Plan the next turn, then take in the runs that finished: one
		// finishing after this take wakes the scheduler only if it is due
		// before the planned turn (see handBack).
		until := int64(math.MaxInt64)
		if running < e.maxRunning && len(h) > 0 {
			until = h.next()
		}
		e.until.Store(until)
		e.backMu.Lock()
		back, e.back = e.back, back[:0]
		e.backMu.Unlock()
		if len(back) > 0 {
			for i, p := range back {
				running--
				if !p.stopped.Load() {
					h.push(p)
				}
				back[i] = nil
			}
			continue
		}
		var tick <-chan time.Time
		if until != math.MaxInt64 {
			timer.Reset(time.Duration(until - e.at(now)))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-alive.C:
		case <-e.wake:
		case <-tick:
		}
	}
}

// handBack returns a finished run's probe to the scheduler. The
// scheduler takes returned probes on its next turn; it is woken for one
// only if the probe is due before that turn, or the turn is not planned
// (every run slot in use, or nothing else due).
func (e *Engine) handBack(p *probe) {
	e.backMu.Lock()
	e.back = append(e.back, p)
	e.backMu.Unlock()
	if p.due < e.until.Load() {
		select {
		case e.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// at is t on the scheduler's clock: monotonic nanoseconds since the
// engine was made, cheap to compare and immune to wall-clock steps.
func (e *Engine) at(t time.Time) int64 { return int64(t.Sub(e.base)) }

// maxIdle bounds the workers kept waiting for work. The steady load of
// thousands of checks a second overlaps a few tens of runs; a burst
// beyond that starts new workers, which exit once done while this many
// wait already, so the stacks kept are those of the usual concurrency.
const maxIdle = 128

// worker runs p, then whatever due probe the scheduler hands it next.
// Reusing workers rather than starting a goroutine per run keeps their
// stacks, which a dial would otherwise grow (copying them) on every fresh
// goroutine.
func (e *Engine) worker(ctx context.Context, work <-chan *probe, p *probe) {
	defer e.wg.Done()
	// Each run's context hangs off the worker's own: registering with
	// (and leaving) a parent that every run in the engine shares cost
	// more than the rest of the run's bookkeeping together.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		if !e.run(ctx, p) {
			return
		}
		if e.idle.Add(1) > maxIdle {
			e.idle.Add(-1)
			return
		}
		select {
		case p = <-work:
			e.idle.Add(-1)
		case <-ctx.Done():
			return
		}
	}
}

// run is one probe run, due at p.due. It records the result and hands p
// back to the scheduler with its next due time: one interval
// (FastInterval while transitional) after this run's start, or at once
// if the probe took longer than that. It reports false when the engine
// is stopping.
func (e *Engine) run(ctx context.Context, p *probe) bool {
	start := time.Now()
	late := time.Duration(e.at(start) - p.due)
	e.noteLate(start, late)
	timeout := p.timing.timeout
	if timeout <= 0 {
		timeout = p.timing.every()
	}
	var res Result
	var timedOut bool
	if dp, ok := p.prober.(deadlineProber); ok {
		deadline := start.Add(timeout)
		res = dp.ProbeBy(ctx, deadline, p.timing.target)
		timedOut = !time.Now().Before(deadline)
	} else {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		res = p.prober.Probe(pctx, p.timing.target)
		timedOut = pctx.Err() == context.DeadlineExceeded
		cancel()
	}
	if ctx.Err() != nil {
		// Shutting down mid-probe: the result says nothing about the
		// target, and the scheduler is gone.
		return false
	}
	end := time.Now()
	if res.Latency == 0 {
		res.Latency = end.Sub(start)
	}
	timedOut = !res.OK && (timedOut || errors.Is(res.Err, context.DeadlineExceeded) || errors.Is(res.Err, os.ErrDeadlineExceeded))
	// A run started on time can still be starved while in flight: its
	// goroutine (and net/http's) wait for a CPU like the rest of the
	// engine. So what counts is the worst lateness any run started with
	// while this one ran, its own included.
	engineLate := max(late, e.lateSince(start))
	next := e.record(p, res, end, engineLate, timedOut, timeout)
	// Due times are measured from when the probe was free to run, so
	// that a probe slower than its interval is not counted as late.
	p.due = max(e.at(start.Add(next)), e.at(end))
	e.handBack(p)
	return true
}

// record applies one result and returns the delay before the next probe.
// late is how far behind the engine ran during the run (see run); a run
// that timed out while the engine ran more than inconclusiveAfter late is
// inconclusive: shown in status, but not counted towards fall or rise.
// What it logs is logged once e.mu is released, so that a slow log
// writer holds up only this run, not every run, Health and Snapshot.
func (e *Engine) record(p *probe, res Result, now time.Time, late time.Duration, timedOut bool, timeout time.Duration) time.Duration {
	e.mu.Lock()
	if e.probes[p.key] != p {
		e.mu.Unlock() // removed by Set while probing
		return p.timing.interval
	}
	if !res.OK && res.Err == nil {
		// Status must always say why a probe failed.
		res.Err = errors.New("failed")
	}
	inconclusive := timedOut && late > inconclusiveAfter(timeout)
	// What to log once the lock is released: an overload episode began
	// (overloaded) or ended after caughtUp inconclusive results.
	overloaded, caughtUp := false, 0
	if inconclusive {
		res.Err = fmt.Errorf("inconclusive: the check engine ran %v late: %w", late.Round(time.Millisecond), res.Err)
		overloaded = e.overloadLast.IsZero()
		e.overloadLast = now
		e.overloadN++
	} else if !e.overloadLast.IsZero() && now.Sub(e.overloadLast) > overloadQuiet {
		caughtUp = e.overloadN
		e.overloadLast, e.overloadN = time.Time{}, 0
	}
	p.last, p.checked = res, now
	if res.OK {
		p.weight = 100
		if res.Weight != NoWeight {
			p.weight = res.Weight
		}
	}
	var changed bool
	if !inconclusive {
		changed = p.m.observe(res.OK)
	}
	var notify []string
	var onChange func(string)
	healthy := p.m.healthy
	if changed {
		p.since = now
		if healthy {
			p.recovered = now
		}
		notify, onChange = slices.Clone(p.services), e.onChange
	}
	next := p.timing.interval
	if p.timing.fastInterval > 0 && p.m.transitional() {
		next = p.timing.fastInterval
	}
	onResult := e.onResult
	e.mu.Unlock()
	if overloaded {
		e.log.Warn("check engine overloaded: probes start late; timeouts after a late start are not counted",
			"late", late.Round(time.Millisecond), "type", p.timing.typ, "target", p.timing.target)
	}
	if caughtUp > 0 {
		e.log.Info("check engine caught up", "inconclusive", caughtUp)
	}
	if changed {
		// One line per transition, never per probe, with the fields an
		// admin filters on. The next run of p, and so its next
		// transition, waits for this one's record to return.
		attrs := []any{"service", strings.Join(notify, ","), "server", p.timing.target, "type", p.timing.typ}
		if healthy {
			e.log.Info("real server healthy", append(attrs, "reason", fmt.Sprintf("%d checks passed in a row", p.timing.rise))...)
		} else {
			e.log.Warn("real server unhealthy", append(attrs, "reason", errText(res.Err))...)
		}
	}
	if onResult != nil {
		outcome := Success
		switch {
		case inconclusive:
			outcome = Inconclusive
		case timedOut:
			outcome = Timeout
		case !res.OK:
			outcome = Failure
		}
		onResult(p.timing.typ, outcome, res.Latency)
	}
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
	e.mu.RLock()
	defer e.mu.RUnlock()
	p := e.subs[subKey{service, rs}]
	if p == nil {
		return false, 0, false
	}
	return p.m.healthy, p.weight, true
}

// Transition reports whether a (service, real server) is healthy and when
// its health last changed (or its check was set up); known is false for a
// pair no Spec mentions.
func (e *Engine) Transition(service string, rs netip.AddrPort) (healthy bool, since time.Time, known bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.subs[subKey{service, rs}]
	if p == nil {
		return false, time.Time{}, false
	}
	return p.m.healthy, p.since, true
}

// Snapshot returns the state of every subscription, sorted by service and
// real server.
func (e *Engine) Snapshot() []Status {
	e.mu.Lock()
	out := make([]Status, 0, len(e.subs))
	for k, p := range e.subs {
		out = append(out, Status{
			Service: k.service, RealServer: k.rs, Type: p.timing.typ, Target: p.timing.target,
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
	e.mu.RLock()
	defer e.mu.RUnlock()
	if p := e.subs[subKey{service, rs}]; p != nil {
		return p.recovered
	}
	return time.Time{}
}
