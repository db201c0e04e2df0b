package director

import (
	"context"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// switchWeights is a weights source a test flips, as checks would.
type switchWeights struct {
	mu   sync.Mutex
	down map[string]bool
}

func (s *switchWeights) Weight(_ *config.Service, rs *config.RealServer) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down[rs.AddrPort().String()] {
		return 0, true
	}
	return rs.Weight, true
}

func (s *switchWeights) set(addr string, down bool) {
	s.mu.Lock()
	s.down[addr] = down
	s.mu.Unlock()
}

func startDirector(t *testing.T, k *fakeKernel, w Weights, cfg *config.Config) (*Director, func() error) {
	t.Helper()
	d := New(Options{Kernel: k, Weights: w, Logger: quietLog()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, cfg) }()
	<-d.Ready()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return d, stop
}

func TestDirectorLifecycle(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	w := &switchWeights{down: map[string]bool{}}
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 2), rs("10.0.0.2:80", 2)))
	d, stop := startDirector(t, k, w, cfg)
	kernelEquals(t, k, cfg, w) // converged before Ready

	// Drift repaired on request.
	_ = k.RemoveService(ServiceOf(&cfg.Services[0]))
	if res, err := d.Reconcile(ctx); err != nil || res.Failed != 0 || res.Applied != 3 {
		t.Fatalf("reconcile on request: %+v %v", res, err)
	}
	kernelEquals(t, k, cfg, w)

	// A health transition: one destination request, and the cached
	// desired table follows, so the next full reconcile keeps it.
	w.set("10.0.0.1:80", true)
	k.resetCalls()
	if err := d.WeightsChanged(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if k.calls["UpdateDestination"] != 1 || k.mutations() != 1 {
		t.Fatalf("weight change cost %v", k.calls)
	}
	if res, _ := d.Reconcile(ctx); res.Applied != 0 {
		t.Fatalf("a full reconcile undid the weight change: %+v", res)
	}
	kernelEquals(t, k, cfg, w)

	// Reload to a new config.
	cfg2 := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 2), rs("10.0.0.3:80", 7)))
	if res, err := d.Reload(ctx, cfg2); err != nil || res.Failed != 0 || res.Applied != 2 {
		t.Fatalf("reload: %+v %v (want one create, one remove)", res, err)
	}
	kernelEquals(t, k, cfg2, w)

	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 || !st.Services[0].InKernel || len(st.Services[0].RealServers) != 2 {
		t.Fatalf("status: %+v", st)
	}
	for _, r := range st.Services[0].RealServers {
		want := map[string]int{"10.0.0.1:80": 0, "10.0.0.3:80": 7}[r.Address]
		if r.KernelWeight != want {
			t.Errorf("status says %s has kernel weight %d, want %d", r.Address, r.KernelWeight, want)
		}
	}

	// Stopping leaves the table in the kernel.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(k.table) != 1 {
		t.Fatal("stopping removed the table")
	}
	if _, err := d.Reconcile(ctx); err != ErrStopped {
		t.Fatalf("request after stop: %v, want ErrStopped", err)
	}
}

func TestDirectorCleanupOnExit(t *testing.T) {
	k := newFakeKernel()
	foreign := ServiceOf(&config.Service{VIP: netip.MustParseAddr("198.51.100.1"), Port: 53, Protocol: config.UDP, Scheduler: "rr"})
	_ = k.CreateService(foreign)
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1)))
	cfg.IPVS.CleanupOnExit = true
	_, stop := startDirector(t, k, nil, cfg)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(k.table) != 1 || k.table[KeyOf(foreign)] == nil {
		t.Fatalf("cleanup_on_exit left %d services; want only the foreign one", len(k.table))
	}
}

func TestDrainEnable(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	path := filepath.Join(t.TempDir(), "drained.json")
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5), rs("10.0.0.2:80", 5), rs("10.0.0.2:81", 5)))
	d := New(Options{Kernel: k, Logger: quietLog(), DrainPath: path})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx, cfg) }()
	<-d.Ready()
	key := KeyOf(ServiceOf(&cfg.Services[0]))
	weight := func(addr string) uint32 {
		ap := netip.MustParseAddrPort(addr)
		d, _ := k.table[key].Dests.Get(DestKey{ap.Addr(), ap.Port()})
		return d.Weight
	}

	k.resetCalls()
	res, err := d.Drain(ctx, "web", "10.0.0.1", true)
	if err != nil || !res.Changed || res.Server != "10.0.0.1:80" {
		t.Fatalf("drain: %+v %v", res, err)
	}
	if weight("10.0.0.1:80") != 0 || k.mutations() != 1 {
		t.Fatalf("drained weight %d, calls %v", weight("10.0.0.1:80"), k.calls)
	}
	if res, _ := d.Drain(ctx, "web", "10.0.0.1:80", true); res.Changed {
		t.Fatal("draining twice changed something")
	}
	for _, bad := range []struct{ svc, addr string }{{"nope", "10.0.0.1"}, {"web", "10.0.0.9"}, {"web", "10.0.0.2"}, {"web", "not-an-ip"}} {
		if _, err := d.Drain(ctx, bad.svc, bad.addr, true); err == nil {
			t.Errorf("drain %s %s: accepted", bad.svc, bad.addr)
		}
	}
	st, _ := d.Status(ctx)
	if !st.Services[0].RealServers[0].Drained || st.Services[0].RealServers[0].KernelWeight != 0 {
		t.Fatalf("status: %+v", st.Services[0].RealServers[0])
	}

	// A reload keeps the drain; a restart (a new Director on the same
	// state) keeps it and changes nothing.
	if _, err := d.Reload(ctx, cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 7), rs("10.0.0.2:80", 5), rs("10.0.0.2:81", 5)))); err != nil {
		t.Fatal(err)
	}
	if weight("10.0.0.1:80") != 0 {
		t.Fatal("a reload undid the drain")
	}
	cancel()
	<-done
	k.resetCalls()
	cfg2 := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 7), rs("10.0.0.2:80", 5), rs("10.0.0.2:81", 5)))
	d2, _ := startDirectorWith(t, k, Options{Kernel: k, Logger: quietLog(), DrainPath: path}, cfg2)
	if weight("10.0.0.1:80") != 0 || k.mutations() != 0 {
		t.Fatalf("restart: weight %d, calls %v", weight("10.0.0.1:80"), k.calls)
	}
	if _, err := d2.Drain(ctx, "web", "10.0.0.1", false); err != nil || weight("10.0.0.1:80") != 7 {
		t.Fatalf("enable: %v, weight %d", err, weight("10.0.0.1:80"))
	}
}

func startDirectorWith(t *testing.T, k *fakeKernel, opts Options, cfg *config.Config) (*Director, func()) {
	t.Helper()
	d := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, cfg) }()
	<-d.Ready()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return d, stop
}

func TestDrainForgottenWhenServerLeaves(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5), rs("10.0.0.2:80", 5)))
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Logger: quietLog()}, cfg)
	if _, err := d.Drain(ctx, "web", "10.0.0.1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reload(ctx, cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.2:80", 5)))); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	st, _ := d.Status(ctx)
	if st.Services[0].RealServers[0].Drained || st.Services[0].RealServers[0].KernelWeight != 5 {
		t.Fatalf("a server that left and came back is still drained: %+v", st.Services[0].RealServers[0])
	}
}

// Status reads nothing from the kernel and writes nothing to it: drift
// stays until the timer or Reconcile repairs it, and the status says
// when the kernel was last read.
func TestStatusChangesNothing(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5)))
	before := time.Now()
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Logger: quietLog()}, cfg)
	_ = k.RemoveService(ServiceOf(&cfg.Services[0])) // drift behind directord's back
	k.resetCalls()
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.calls) != 0 {
		t.Fatalf("status made kernel calls: %v", k.calls)
	}
	if len(k.table) != 0 {
		t.Fatal("status repaired drift; that is the timer's job")
	}
	if st.KernelRead.Before(before) || st.KernelRead.After(time.Now()) {
		t.Fatalf("status says the kernel was read at %v", st.KernelRead)
	}
	if res, err := d.Reconcile(ctx); err != nil || res.Applied != 2 {
		t.Fatalf("reconcile after status: %+v %v", res, err)
	}
}
