package checks

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// TestSlowStart: a server that recovers ramps linearly to its weight over
// slow_start; one healthy from the start does not ramp.
func TestSlowStart(t *testing.T) {
	up := map[netip.AddrPort]bool{rsA: false}
	var mu sync.Mutex
	e, ch := testEngine(t, func(p ProbeSpec) Prober {
		return funcProber(func(_ context.Context, target netip.AddrPort) Result {
			mu.Lock()
			defer mu.Unlock()
			if up[target] {
				return Result{OK: true, Weight: NoWeight}
			}
			return Result{Err: context.DeadlineExceeded, Weight: NoWeight}
		})
	})
	a := tcpSpec(rsA, 10*time.Millisecond, 1, 1)
	b := tcpSpec(rsB, 10*time.Millisecond, 1, 1)
	b.StartHealthy = true
	mu.Lock()
	up[rsB] = true
	mu.Unlock()
	e.Set([]Spec{{"web", rsA, a}, {"web", rsB, b}})
	await(t, ch, a.Key(), time.Second)
	mu.Lock()
	up[rsA] = true
	mu.Unlock()
	// Await the recovery itself.
	deadline := time.Now().Add(2 * time.Second)
	for e.Recovered("web", rsA).IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("rsA never recovered")
		}
		await(t, ch, a.Key(), time.Second)
	}
	rec := e.Recovered("web", rsA)
	svc := &config.Service{Name: "web", OnFailure: config.Quiesce, SlowStart: 100 * time.Second}
	ra := &config.RealServer{Address: rsA.Addr(), Port: rsA.Port(), Weight: 200}
	rb := &config.RealServer{Address: rsB.Addr(), Port: rsB.Port(), Weight: 200}
	for _, tc := range []struct {
		after time.Duration
		want  int
	}{{0, 1}, {10 * time.Second, 20}, {50 * time.Second, 100}, {99 * time.Second, 198}, {100 * time.Second, 200}, {time.Hour, 200}} {
		w := Weights{Engine: e, Now: func() time.Time { return rec.Add(tc.after) }}
		if got, _ := w.Weight(svc, ra); got != tc.want {
			t.Errorf("%v after recovery: weight %d, want %d", tc.after, got, tc.want)
		}
		if got, _ := w.Weight(svc, rb); got != 200 {
			t.Errorf("a server healthy from the start ramps: %d", got)
		}
	}
}

// TestRamp: while a recovered server is in slow start (and two steps
// past its end, so the full weight is applied), the ramp reports its
// service through the engine's OnChange function every step; a service
// without slow start, or whose servers were healthy from the start, is
// never reported.
func TestRamp(t *testing.T) {
	var mu sync.Mutex
	up := map[netip.AddrPort]bool{rsB: true}
	e := NewEngine(slog.New(slog.DiscardHandler))
	e.newProber = func(ProbeSpec) Prober {
		return funcProber(func(_ context.Context, target netip.AddrPort) Result {
			mu.Lock()
			defer mu.Unlock()
			if up[target] {
				return Result{OK: true, Weight: NoWeight}
			}
			return Result{Err: context.DeadlineExceeded, Weight: NoWeight}
		})
	}
	changed := make(chan string, 1024)
	e.OnChange(func(svc string) {
		select {
		case changed <- svc:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.Wait() })
	e.Start(ctx)
	a := tcpSpec(rsA, 10*time.Millisecond, 1, 1)
	b := tcpSpec(rsB, 10*time.Millisecond, 1, 1)
	b.StartHealthy = true
	e.Set([]Spec{{"web", rsA, a}, {"plain", rsA, a}, {"steady", rsB, b}})
	mu.Lock()
	up[rsA] = true
	mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for e.Recovered("web", rsA).IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("rsA never recovered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec := e.Recovered("web", rsA)

	rs := func(ap netip.AddrPort) config.RealServer {
		return config.RealServer{Address: ap.Addr(), Port: ap.Port(), Weight: 100}
	}
	cfg := &config.Config{Services: []config.Service{
		{Name: "web", SlowStart: time.Hour, RealServers: []config.RealServer{rs(rsB), rs(rsA)}},
		{Name: "plain", RealServers: []config.RealServer{rs(rsA)}},
		{Name: "steady", SlowStart: time.Hour, RealServers: []config.RealServer{rs(rsB)}},
	}}
	const step = 10 * time.Millisecond
	r := Ramp{Engine: e, Config: func() *config.Config { return cfg }, Step: step}

	for _, tc := range []struct {
		after time.Duration
		want  []string
	}{
		{0, []string{"web"}},
		{time.Hour + step, []string{"web"}},
		{time.Hour + 2*step, nil},
		{-time.Second, []string{"web"}}, // a clock step back: still ramping
	} {
		if got := r.ramping(rec.Add(tc.after), step); !slices.Equal(got, tc.want) {
			t.Errorf("%v after recovery: ramping %v, want %v", tc.after, got, tc.want)
		}
	}

	// The transitions' own reports end before the ramp starts.
	time.Sleep(50 * time.Millisecond)
	for len(changed) > 0 {
		<-changed
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }()
	got := map[string]int{}
	for got["web"] < 3 {
		select {
		case svc := <-changed:
			got[svc]++
		case <-time.After(2 * time.Second):
			t.Fatalf("the ramp reported %v in 2s, want web 3 times", got)
		}
	}
	stop()
	<-done
	if len(got) != 1 {
		t.Errorf("the ramp reported %v, want web alone", got)
	}
}
