package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// observedResult is one result the engine recorded.
type observedResult struct {
	key string
	res Result
	at  time.Time
}

// testEngine returns an engine whose recorded results arrive on the
// returned channel, running until the test ends.
func testEngine(t *testing.T, newProber func(ProbeSpec) Prober) (*Engine, <-chan observedResult) {
	t.Helper()
	return testEngineLog(t, slog.New(slog.DiscardHandler), newProber)
}

func testEngineLog(t *testing.T, log *slog.Logger, newProber func(ProbeSpec) Prober) (*Engine, <-chan observedResult) {
	t.Helper()
	e := NewEngine(log)
	if newProber != nil {
		e.newProber = newProber
	}
	ch := make(chan observedResult, 1024)
	e.observed = func(key string, res Result) {
		select {
		case ch <- observedResult{key, res, time.Now()}:
		default: // a test that stopped reading must not stall probes
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.Wait() })
	e.Start(ctx)
	return e, ch
}

// await returns the next result for key, failing the test after limit.
func await(t *testing.T, ch <-chan observedResult, key string, limit time.Duration) observedResult {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case r := <-ch:
			if r.key == key {
				return r
			}
		case <-timeout:
			t.Fatalf("no result for probe %s within %v", key, limit)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type funcProber func(ctx context.Context, target netip.AddrPort) Result

func (f funcProber) Probe(ctx context.Context, target netip.AddrPort) Result { return f(ctx, target) }

var (
	rsA = netip.MustParseAddrPort("10.0.0.1:80")
	rsB = netip.MustParseAddrPort("10.0.0.2:80")
)

func tcpSpec(target netip.AddrPort, interval time.Duration, rise, fall int) ProbeSpec {
	return ProbeSpec{Type: "tcp", Target: target, Interval: interval, Timeout: interval, Rise: rise, Fall: fall}
}

func TestEngineHungTargetDoesNotDelayOthers(t *testing.T) {
	hung := tcpSpec(rsA, 50*time.Millisecond, 1, 1)
	hung.Timeout = 2 * time.Second
	fine := tcpSpec(rsB, 50*time.Millisecond, 1, 1)
	e, ch := testEngine(t, func(p ProbeSpec) Prober {
		return funcProber(func(ctx context.Context, target netip.AddrPort) Result {
			if target == rsA {
				<-ctx.Done() // hangs for its whole 2s timeout
				return Result{Err: ctx.Err(), Weight: NoWeight}
			}
			return Result{OK: true, Weight: NoWeight}
		})
	})
	e.Set([]Spec{{"web", rsA, hung}, {"web", rsB, fine}})
	first := await(t, ch, fine.Key(), time.Second)
	// While the other target hangs, this one keeps its 50ms rhythm:
	// 10 more results take ~500ms, far inside the 2s hang.
	var last observedResult
	for range 10 {
		last = await(t, ch, fine.Key(), time.Second)
	}
	if span := last.at.Sub(first.at); span > 1500*time.Millisecond {
		t.Fatalf("10 probes of the healthy target took %v with interval 50ms", span)
	}
	if healthy, _, _ := e.Health("web", rsB); !healthy {
		t.Fatal("the responsive target is not healthy")
	}
	if healthy, _, _ := e.Health("web", rsA); healthy {
		t.Fatal("the hung target is healthy")
	}
}

func TestEngineDeduplicates(t *testing.T) {
	var accepts atomic.Int64
	target := listen(t, func(c net.Conn) { accepts.Add(1) })
	spec := tcpSpec(target, 20*time.Millisecond, 1, 1)
	e, ch := testEngine(t, nil)
	e.Set([]Spec{{"web", target, spec}, {"api", target, spec}})
	n := 0
	for n < 10 {
		r := await(t, ch, spec.Key(), time.Second)
		if !r.res.OK {
			t.Fatalf("probe failed: %v", r.res.Err)
		}
		n++
	}
	for _, svc := range []string{"web", "api"} {
		if healthy, pct, known := e.Health(svc, target); !healthy || pct != 100 || !known {
			t.Errorf("%s: healthy, percent, known = %v, %d, %v", svc, healthy, pct, known)
		}
	}
	// Stop probing, then compare: every recorded probe is one connection,
	// and the two subscribers did not double it.
	e.Set(nil)
	// The listener accepts asynchronously: a probe can finish before its
	// connection is counted.
	for deadline := time.Now().Add(2 * time.Second); accepts.Load() < int64(n); {
		if time.Now().After(deadline) {
			t.Fatalf("only %d connections accepted for %d successful probes", accepts.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := accepts.Load(); got > int64(n)+1 {
		// +1: a probe in flight when Set(nil) stopped it is not recorded.
		t.Fatalf("%d connections for %d recorded probes: the shared spec was probed more than once", got, n)
	}
}

func TestEngineOnChangeOncePerTransition(t *testing.T) {
	var mu sync.Mutex
	okNow := true
	var logs lockedBuffer
	e, ch := testEngineLog(t, slog.New(slog.NewTextHandler(&logs, nil)), func(ProbeSpec) Prober {
		return funcProber(func(context.Context, netip.AddrPort) Result {
			mu.Lock()
			defer mu.Unlock()
			return Result{OK: okNow, Weight: NoWeight} // a failure without an error text
		})
	})
	changes := make(chan string, 16)
	e.OnChange(func(s string) { changes <- s })
	spec := tcpSpec(rsA, 10*time.Millisecond, 2, 2)
	e.Set([]Spec{{"web", rsA, spec}, {"api", rsA, spec}, {"web", rsB, tcpSpec(rsB, time.Hour, 1, 1)}})
	// Enough results to cross rise several times over.
	for range 6 {
		await(t, ch, spec.Key(), time.Second)
	}
	got := map[string]int{}
	for len(changes) > 0 {
		got[<-changes]++
	}
	if got["web"] != 1 || got["api"] != 1 || len(got) != 2 {
		t.Fatalf("notifications after becoming healthy: %v, want web and api once each", got)
	}
	mu.Lock()
	okNow = false
	mu.Unlock()
	for range 6 {
		await(t, ch, spec.Key(), time.Second)
	}
	got = map[string]int{}
	for len(changes) > 0 {
		got[<-changes]++
	}
	if got["web"] != 1 || got["api"] != 1 || len(got) != 2 {
		t.Fatalf("notifications after failing: %v, want web and api once each", got)
	}
	// Logged once per transition, not per probe or per service.
	text := logs.String()
	if n := strings.Count(text, "real server healthy"); n != 1 {
		t.Errorf("%d 'healthy' log lines, want 1:\n%s", n, text)
	}
	if n := strings.Count(text, "real server unhealthy"); n != 1 {
		t.Errorf("%d 'unhealthy' log lines, want 1:\n%s", n, text)
	}
	if !strings.Contains(text, "service=api,web") || !strings.Contains(text, "server="+rsA.String()) || !strings.Contains(text, "reason=failed") {
		t.Errorf("log lacks the service, the server or the reason:\n%s", text)
	}
	st := e.Snapshot()
	if len(st) != 3 || st[0].Service != "api" || st[1].RealServer != rsA || st[2].RealServer != rsB {
		t.Fatalf("snapshot order: %+v", st)
	}
	if s := st[0]; s.Healthy || s.OK || s.Error == "" || s.Checked.IsZero() || s.Since.IsZero() || s.Type != "tcp" || s.Target != rsA {
		t.Fatalf("snapshot of the failing probe: %+v", s)
	}
}

func TestEngineSetKeepsState(t *testing.T) {
	var probes atomic.Int64
	e, ch := testEngine(t, func(ProbeSpec) Prober {
		return funcProber(func(context.Context, netip.AddrPort) Result {
			probes.Add(1)
			return Result{OK: true, Weight: NoWeight}
		})
	})
	spec := tcpSpec(rsA, 10*time.Millisecond, 1, 1)
	e.Set([]Spec{{"web", rsA, spec}})
	await(t, ch, spec.Key(), time.Second)
	before := e.Snapshot()[0]
	if !before.Healthy {
		t.Fatalf("not healthy after rise 1: %+v", before)
	}

	// Reload: same check, plus a new service on another check.
	other := tcpSpec(rsB, time.Hour, 3, 3)
	e.Set([]Spec{{"web", rsA, spec}, {"api", rsB, other}})
	if h, _, _ := e.Health("web", rsA); !h {
		t.Fatal("reload lost the health of an unchanged check")
	}
	if after := e.Snapshot()[1]; after.Since != before.Since {
		t.Fatalf("reload reset the last change: %v -> %v", before.Since, after.Since)
	}
	if h, _, known := e.Health("api", rsB); h || !known {
		t.Fatalf("new check: healthy, known = %v, %v; want it to start unhealthy", h, known)
	}

	// Retuning (rise, interval) starts a new stream that inherits health.
	retuned := tcpSpec(rsA, 20*time.Millisecond, 5, 5)
	e.Set([]Spec{{"web", rsA, retuned}})
	if h, _, _ := e.Health("web", rsA); !h {
		t.Fatal("retuning rise/interval took the server out")
	}
	await(t, ch, retuned.Key(), time.Second)
	if _, _, known := e.Health("api", rsB); known {
		t.Fatal("a removed subscription is still known")
	}

	// A different real server is a new server: no inheritance. (A check
	// moved to another target of the same real server keeps its health:
	// see TestEngineCheckEditTargetAndServer.)
	rsA81 := netip.MustParseAddrPort("10.0.0.1:81")
	e.Set([]Spec{{"web", rsA81, tcpSpec(rsA81, time.Hour, 1, 1)}})
	if h, _, _ := e.Health("web", rsA81); h {
		t.Fatal("a new real server inherited health")
	}
}

func TestEngineStartHealthyAndNone(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	e, _ := testEngine(t, func(p ProbeSpec) Prober {
		if p.Type == "none" {
			return None{}
		}
		return funcProber(func(ctx context.Context, _ netip.AddrPort) Result {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return Result{Err: ctx.Err(), Weight: NoWeight}
		})
	})
	healthyFirst := tcpSpec(rsA, time.Hour, 2, 2)
	healthyFirst.StartHealthy = true
	e.Set([]Spec{{"web", rsA, healthyFirst}, {"web", rsB, ProbeSpec{Type: "none", Target: rsB}}})
	for _, rs := range []netip.AddrPort{rsA, rsB} {
		if h, pct, _ := e.Health("web", rs); !h || pct != 100 {
			t.Errorf("%v: healthy, percent = %v, %d before any probe", rs, h, pct)
		}
	}
}

func TestEngineFastInterval(t *testing.T) {
	var mu sync.Mutex
	okNow := true
	e, ch := testEngine(t, func(ProbeSpec) Prober {
		return funcProber(func(context.Context, netip.AddrPort) Result {
			mu.Lock()
			defer mu.Unlock()
			return Result{OK: okNow, Weight: NoWeight}
		})
	})
	// Rise 3 with a slow interval: the first success comes after the
	// initial jitter (< 300ms); the next two only come quickly if the
	// fast interval applies while the state is changing.
	spec := tcpSpec(rsA, 300*time.Millisecond, 3, 3)
	spec.FastInterval = 10 * time.Millisecond
	spec.Timeout = 100 * time.Millisecond
	e.Set([]Spec{{"web", rsA, spec}})
	first := await(t, ch, spec.Key(), time.Second)
	await(t, ch, spec.Key(), time.Second)
	third := await(t, ch, spec.Key(), time.Second)
	if gap := third.at.Sub(first.at); gap > 200*time.Millisecond {
		t.Fatalf("rise took %v after the first success; the 10ms fast interval was not used", gap)
	}
	if h, _, _ := e.Health("web", rsA); !h {
		t.Fatal("not healthy after rise")
	}
	// Healthy and stable: back to the normal interval.
	fourth := await(t, ch, spec.Key(), time.Second)
	if gap := fourth.at.Sub(third.at); gap < 250*time.Millisecond {
		t.Fatalf("stable probe came after %v, want the 300ms interval", gap)
	}
}

func TestWeights(t *testing.T) {
	e, ch := testEngine(t, func(p ProbeSpec) Prober {
		return funcProber(func(_ context.Context, target netip.AddrPort) Result {
			switch target {
			case rsA:
				return Result{OK: true, Weight: 50}
			case rsB:
				return Result{OK: true, Weight: NoWeight}
			}
			return Result{Err: context.DeadlineExceeded, Weight: NoWeight}
		})
	})
	rsC := netip.MustParseAddrPort("10.0.0.3:80")
	a, b, c := tcpSpec(rsA, 10*time.Millisecond, 1, 1), tcpSpec(rsB, 10*time.Millisecond, 1, 1), tcpSpec(rsC, 10*time.Millisecond, 1, 1)
	e.Set([]Spec{{"quiet", rsA, a}, {"quiet", rsB, b}, {"quiet", rsC, c}, {"gone", rsC, c}})
	await(t, ch, a.Key(), time.Second)
	await(t, ch, b.Key(), time.Second)
	await(t, ch, c.Key(), time.Second)

	w := Weights{Engine: e}
	quiet := &config.Service{Name: "quiet", OnFailure: config.Quiesce}
	gone := &config.Service{Name: "gone", OnFailure: config.Remove}
	rs := func(ap netip.AddrPort, weight int) *config.RealServer {
		return &config.RealServer{Address: ap.Addr(), Port: ap.Port(), Weight: weight}
	}
	tests := []struct {
		name    string
		svc     *config.Service
		rs      *config.RealServer
		weight  int
		present bool
	}{
		{"dynamic 50%", quiet, rs(rsA, 100), 50, true},
		{"rounds up to 1", quiet, rs(rsA, 1), 1, true},
		{"configured 0 stays 0", quiet, rs(rsA, 0), 0, true},
		{"no dynamic weight", quiet, rs(rsB, 30), 30, true},
		{"unhealthy quiesce", quiet, rs(rsC, 30), 0, true},
		{"unhealthy remove", gone, rs(rsC, 30), 0, false},
		{"unknown is unhealthy", gone, rs(rsB, 30), 0, false},
	}
	for _, tt := range tests {
		if weight, present := w.Weight(tt.svc, tt.rs); weight != tt.weight || present != tt.present {
			t.Errorf("%s: weight, present = %d, %v; want %d, %v", tt.name, weight, present, tt.weight, tt.present)
		}
	}
}

// TestEngineInconclusiveWhenLate: a timeout after the engine itself
// started the run late (CPU starvation, the bound on runs in flight) is
// not held against the target, and the overload is logged once; a
// timeout after an on-time start counts as usual.
func TestEngineInconclusiveWhenLate(t *testing.T) {
	var logs lockedBuffer
	var mu sync.Mutex
	calls := map[netip.AddrPort]int{}
	proceed := make(chan struct{})
	e, ch := testEngineLog(t, slog.New(slog.NewTextHandler(&logs, nil)), func(ProbeSpec) Prober {
		return funcProber(func(ctx context.Context, target netip.AddrPort) Result {
			mu.Lock()
			calls[target]++
			n := calls[target]
			mu.Unlock()
			if n > 1 {
				// Later runs wait for the test, so that it can look at
				// the state the first (late) run left.
				select {
				case <-proceed:
				case <-ctx.Done():
				}
			}
			// What a prober reports when the deadline cut it off.
			return Result{Err: fmt.Errorf("connect: %w", context.DeadlineExceeded), Weight: NoWeight}
		})
	})
	// First runs due 5s in the past: as if the engine had been starved
	// that long. Set after this write: the scheduler reads it under e.mu.
	e.firstDelay = func(time.Duration) time.Duration { return -5 * time.Second }
	rsC := netip.MustParseAddrPort("10.0.0.3:80")
	var specs []Spec
	for _, rs := range []netip.AddrPort{rsA, rsB, rsC} {
		// The second runs come well after every first run started, so
		// that the first runs' lateness is not in the second ones' time.
		s := tcpSpec(rs, 200*time.Millisecond, 1, 1)
		s.Timeout = time.Second // inconclusive when more than 500ms late
		s.StartHealthy = true
		specs = append(specs, Spec{"web", rs, s})
	}
	e.Set(specs)
	// Each probe's first result; later ones wait for proceed.
	timeout := time.After(2 * time.Second)
	for seen := map[string]bool{}; len(seen) < len(specs); {
		select {
		case r := <-ch:
			seen[r.key] = true
			if msg := errText(r.res.Err); r.res.OK || !strings.HasPrefix(msg, "inconclusive: the check engine ran 5") ||
				!strings.Contains(msg, "s late: connect: context deadline exceeded") {
				t.Fatalf("late timeout recorded as %+v, want inconclusive", r.res)
			}
		case <-timeout:
			t.Fatalf("first results of %d of %d probes within 2s", len(seen), len(specs))
		}
	}
	for _, st := range e.Snapshot() {
		if !st.Healthy || !strings.HasPrefix(st.Error, "inconclusive: ") || st.Checked.IsZero() {
			t.Errorf("after a late timeout (fall 1): %+v; want healthy, the inconclusive result shown", st)
		}
	}
	if n := strings.Count(logs.String(), "check engine overloaded"); n != 1 {
		t.Errorf("%d overload warnings for one episode, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "real server unhealthy") {
		t.Errorf("a server was marked down:\n%s", logs.String())
	}

	// The next runs start on time: their timeouts are the target's.
	close(proceed)
	r := await(t, ch, specs[0].Probe.Key(), 2*time.Second)
	if strings.Contains(errText(r.res.Err), "inconclusive") {
		t.Fatalf("on-time timeout recorded as %v", r.res.Err)
	}
	if h, _, _ := e.Health("web", rsA); h {
		t.Fatal("a genuine timeout (fall 1) left the server healthy")
	}
}

// TestEngineInconclusiveWhenStarvedInFlight: a run that started on time
// but timed out while another run started late (the engine fell behind
// while it was in flight) is inconclusive too.
func TestEngineInconclusiveWhenStarvedInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	e, ch := testEngine(t, func(p ProbeSpec) Prober {
		return funcProber(func(ctx context.Context, target netip.AddrPort) Result {
			if target == rsB {
				return Result{OK: true, Weight: NoWeight}
			}
			close(started) // rsA runs once: its interval is an hour
			<-release
			return Result{Err: fmt.Errorf("connect: %w", context.DeadlineExceeded), Weight: NoWeight}
		})
	})
	// rsA's run is due at once; rsB's 5s in the past, as if starved.
	e.firstDelay = func(interval time.Duration) time.Duration {
		if interval == time.Hour {
			return 0
		}
		return -5 * time.Second
	}
	a := tcpSpec(rsA, time.Hour, 1, 1)
	a.StartHealthy = true
	a.Timeout = time.Second // inconclusive when the engine ran 500ms late
	b := tcpSpec(rsB, time.Hour/2, 1, 1)
	e.Set([]Spec{{"web", rsA, a}})
	<-started
	e.Set([]Spec{{"web", rsA, a}, {"web", rsB, b}})
	await(t, ch, b.Key(), 2*time.Second)
	close(release)
	r := await(t, ch, a.Key(), 2*time.Second)
	if !strings.HasPrefix(errText(r.res.Err), "inconclusive: the check engine ran ") {
		t.Fatalf("timeout while the engine ran late recorded as %v, want inconclusive", r.res.Err)
	}
	if h, _, _ := e.Health("web", rsA); !h {
		t.Fatal("an inconclusive timeout took the server out")
	}
}

// TestEngineTCPDeadlineAndStop runs the real TCP prober, which the engine
// gives a deadline instead of a context per run: a silent server times it
// out (counted as a timeout), and stopping the engine ends a run in
// flight at once, long before its deadline.
func TestEngineTCPDeadlineAndStop(t *testing.T) {
	hangs := make(chan struct{})
	t.Cleanup(func() { close(hangs) })
	accepted := make(chan struct{}, 16)
	silent := listen(t, func(net.Conn) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		<-hangs
	})

	e := NewEngine(slog.New(slog.DiscardHandler))
	outcomes := make(chan Outcome, 16)
	e.OnResult(func(_ config.CheckType, o Outcome, _ time.Duration) {
		select {
		case outcomes <- o:
		default:
		}
	})
	results := make(chan Result, 16)
	e.observed = func(_ string, r Result) {
		select {
		case results <- r:
		default:
		}
	}
	e.firstDelay = func(time.Duration) time.Duration { return 0 }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.Start(ctx)
	spec := ProbeSpec{Type: "tcp", Expect: "never", Target: silent, Interval: time.Hour, Timeout: 100 * time.Millisecond,
		Rise: 1, Fall: 1}
	e.Set([]Spec{{"web", silent, spec}})
	select {
	case r := <-results:
		if r.OK || !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Fatalf("probe of a silent server: OK %v, err %v; want a deadline exceeded", r.OK, r.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no result from a 100ms probe")
	}
	if o := <-outcomes; o != Timeout {
		t.Fatalf("outcome %q, want %q", o, Timeout)
	}

	// A probe with a deadline a minute away, stopped while it waits.
	spec.Timeout = time.Minute
	spec.Send = "x" // another key: a new probe
	e.Set([]Spec{{"web", silent, spec}})
	<-accepted // the first probe's connection
	<-accepted // this one's
	cancel()
	stopped := make(chan struct{})
	go func() { e.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not stop while a TCP probe waited for its one-minute deadline")
	}
}
