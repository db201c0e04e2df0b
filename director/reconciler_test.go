package director

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"golang.org/x/sys/unix"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func rs(addr string, weight int) config.RealServer {
	ap := netip.MustParseAddrPort(addr)
	return config.RealServer{Address: ap.Addr(), Port: ap.Port(), Weight: weight, Forward: config.NAT}
}

func svc(name, vip string, port uint16, reals ...config.RealServer) config.Service {
	return config.Service{Name: name, VIP: netip.MustParseAddr(vip), Port: port, Protocol: config.TCP,
		Scheduler: "wlc", Forward: config.NAT, OnFailure: config.Quiesce, RealServers: reals,
		IPv6: netip.MustParseAddr(vip).Is6()}
}

func cfgOf(services ...config.Service) *config.Config {
	return &config.Config{Services: services, IPVS: config.IPVS{ReconcileInterval: time.Hour}}
}

// converge refreshes and applies, as the director's loop does.
func converge(t *testing.T, r *Reconciler, cfg *config.Config, w Weights) Result {
	t.Helper()
	if _, err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	return r.Apply(DesiredTable(cfg, w))
}

// kernelEquals checks the fake kernel holds exactly desired.
func kernelEquals(t *testing.T, k *fakeKernel, cfg *config.Config, w Weights) {
	t.Helper()
	got, _ := ReadTable(k)
	want := DesiredTable(cfg, w)
	plan := Diff(want, got, func(SvcKey) bool { return true })
	if len(plan.Ops) != 0 {
		t.Fatalf("kernel differs from the config: %v", plan.Ops)
	}
}

func TestColdApplyThenNoop(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := cfgOf(
		svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 3)),
		svc("web6", "2001:db8::10", 443, rs("[2001:db8::1]:443", 1)),
	)
	res := converge(t, r, cfg, nil2w())
	if res.Failed != 0 || res.Applied != 5 {
		t.Fatalf("cold apply: %+v, want 5 applied (2 services, 3 destinations)", res)
	}
	kernelEquals(t, k, cfg, nil2w())

	// A second pass over an unchanged kernel touches nothing.
	k.resetCalls()
	res = converge(t, r, cfg, nil2w())
	if res.Applied != 0 || k.mutations() != 0 {
		t.Fatalf("no-op reconcile changed the kernel: %+v, calls %v", res, k.calls)
	}
}

func nil2w() Weights { return ConfiguredWeights{} }

func TestEditsInPlace(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 1)))
	converge(t, r, cfg, nil2w())

	// Weight, scheduler and persistence change: edited, never removed
	// and re-added (that would drop connections).
	cfg2 := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5), rs("10.0.0.2:80", 1)))
	cfg2.Services[0].Scheduler = "rr"
	cfg2.Services[0].Persistence = 300 * time.Second
	cfg2.Services[0].PersistenceMask = 24
	k.resetCalls()
	res := converge(t, r, cfg2, nil2w())
	if res.Failed != 0 {
		t.Fatal(res.Errors)
	}
	if k.calls["UpdateService"] != 1 || k.calls["UpdateDestination"] != 1 || k.mutations() != 2 {
		t.Fatalf("want one service update and one destination update, got %v", k.calls)
	}
	kernelEquals(t, k, cfg2, nil2w())
	got := k.table[KeyOf(ServiceOf(&cfg2.Services[0]))].Service
	if got.Timeout != 300 || got.Netmask.Bits() != 24 || got.Flags&ipvs.ServicePersistent == 0 {
		t.Fatalf("persistence not applied: %+v", got)
	}
}

func TestForeignLeftAloneOwnedRemoved(t *testing.T) {
	k := newFakeKernel()
	foreign := ipvs.Service{Address: netip.MustParseAddr("198.51.100.1"), Port: 53, Protocol: ipvs.UDP, Family: ipvs.INET, Scheduler: "rr"}
	if err := k.CreateService(foreign); err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(k, quietLog(), "")
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1)), svc("old", "192.0.2.11", 80, rs("10.0.0.1:80", 1)))
	converge(t, r, cfg, nil2w())

	cfg2 := cfgOf(cfg.Services[0])
	res := converge(t, r, cfg2, nil2w())
	if res.Failed != 0 || k.calls["RemoveService"] != 1 {
		t.Fatalf("removing a service dropped from the config: %+v %v", res, k.calls)
	}
	if _, ok := k.table[KeyOf(foreign)]; !ok {
		t.Fatal("a service the config never named was removed")
	}
	plan := Diff(DesiredTable(cfg2, nil2w()), r.View(), r.Owned)
	if len(plan.Foreign) != 1 || plan.Foreign[0] != KeyOf(foreign) {
		t.Fatalf("foreign services reported: %v", plan.Foreign)
	}
}

func TestDriftRepaired(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 2)), svc("api", "192.0.2.12", 443, rs("10.0.0.3:443", 1)))
	converge(t, r, cfg, nil2w())

	// Behind the director's back: a destination removed, a weight edited,
	// a whole service flushed.
	web := ServiceOf(&cfg.Services[0])
	_ = k.RemoveDestination(web, DestinationOf(&cfg.Services[0].RealServers[0], 1))
	_ = k.UpdateDestination(web, DestinationOf(&cfg.Services[0].RealServers[1], 9))
	_ = k.RemoveService(ServiceOf(&cfg.Services[1]))

	drift, err := r.Refresh()
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 3 {
		t.Fatalf("drift found: %q, want 3 lines", drift)
	}
	for _, want := range []string{"disappeared", "weight 9, was 2"} {
		if !strings.Contains(strings.Join(drift, "\n"), want) {
			t.Errorf("drift report %q does not mention %q", drift, want)
		}
	}
	if res := r.Apply(DesiredTable(cfg, nil2w())); res.Failed != 0 {
		t.Fatal(res.Errors)
	}
	kernelEquals(t, k, cfg, nil2w())
}

func TestKernelErrorsDoNotStopTheRest(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	bad := svc("bad", "192.0.2.20", 80, rs("10.0.0.1:80", 1))
	bad.Scheduler = "nosuch" // as if the scheduler module were missing
	good := svc("good", "192.0.2.21", 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 1))
	k.failOn = func(call string, _ ipvs.Service, d ipvs.Destination) error {
		if call == "CreateDestination" && d.Address == netip.MustParseAddr("10.0.0.2") {
			return unix.EINVAL
		}
		return nil
	}
	res := converge(t, r, cfgOf(bad, good), nil2w())
	if res.Failed != 2 || len(res.Errors) != 2 {
		t.Fatalf("want 2 failures (the bad service, one destination), got %+v", res)
	}
	if !errors.Is(res.Errors[0], unix.ENOENT) && !errors.Is(res.Errors[1], unix.ENOENT) {
		t.Errorf("the unknown scheduler's ENOENT is lost: %v", res.Errors)
	}
	if _, ok := k.table[KeyOf(ServiceOf(&good))].Dests.Get(DestKey{netip.MustParseAddr("10.0.0.1"), 80}); !ok {
		t.Fatal("the good service did not converge")
	}
	if k.calls["CreateDestination"] != 2 {
		t.Fatalf("destinations of the failed service were attempted: %v", k.calls)
	}
	// Once the kernel accepts, the next pass converges what failed.
	k.failOn = nil
	good2 := good
	res = converge(t, r, cfgOf(good2), nil2w())
	if res.Failed != 0 {
		t.Fatal(res.Errors)
	}
	kernelEquals(t, k, cfgOf(good2), nil2w())
}

func TestStaleViewCreateBecomesUpdate(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 4)))
	if _, err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	// Someone creates the same service after the dump, with other values.
	s := ServiceOf(&cfg.Services[0])
	s.Scheduler = "rr"
	_ = k.CreateService(s)
	_ = k.CreateDestination(s, DestinationOf(&cfg.Services[0].RealServers[0], 1))
	if res := r.Apply(DesiredTable(cfg, nil2w())); res.Failed != 0 {
		t.Fatalf("EEXIST was not handled: %v", res.Errors)
	}
	kernelEquals(t, k, cfg, nil2w())
}

func TestOwnershipSurvivesRestart(t *testing.T) {
	k := newFakeKernel()
	state := filepath.Join(t.TempDir(), "owned.json")
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1)), svc("gone", "192.0.2.11", 80))
	converge(t, NewReconciler(k, quietLog(), state), cfg, nil2w())

	// A restart with "gone" dropped from the config: the new process
	// knows from the state file that it created it, and removes it.
	r2 := NewReconciler(k, quietLog(), state)
	k.resetCalls()
	res := converge(t, r2, cfgOf(cfg.Services[0]), nil2w())
	if res.Failed != 0 || k.calls["RemoveService"] != 1 || k.mutations() != 1 {
		t.Fatalf("restart: %+v %v", res, k.calls)
	}
	// Adoption: the unchanged service was not touched.
	kernelEquals(t, k, cfgOf(cfg.Services[0]), nil2w())
}

// downWeights marks servers down (weight 0) or absent.
type downWeights map[string]string // address -> "down" | "gone"

func (d downWeights) Weight(_ *config.Service, rs *config.RealServer) (int, bool) {
	switch d[rs.AddrPort().String()] {
	case "down":
		return 0, true
	case "gone":
		return 0, false
	}
	return rs.Weight, true
}

func TestSorryServerOnlyWhileNoneAvailable(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	s := svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 1))
	sorry := rs("10.0.0.250:80", 1)
	s.SorryServer = &sorry
	cfg := cfgOf(s)
	sorryKey := DestKey{netip.MustParseAddr("10.0.0.250"), 80}
	key := KeyOf(ServiceOf(&s))

	for _, step := range []struct {
		w         downWeights
		wantSorry bool
		wantDests int
	}{
		{downWeights{}, false, 2},
		{downWeights{"10.0.0.1:80": "down"}, false, 2},
		{downWeights{"10.0.0.1:80": "down", "10.0.0.2:80": "gone"}, true, 2},
		{downWeights{"10.0.0.1:80": "gone", "10.0.0.2:80": "gone"}, true, 1},
		{downWeights{"10.0.0.1:80": "gone"}, false, 1},
	} {
		if res := r.ApplyEntry(DesiredEntry(&cfg.Services[0], step.w)); res.Failed != 0 {
			t.Fatal(res.Errors)
		}
		_, hasSorry := k.table[key].Dests.Get(sorryKey)
		if hasSorry != step.wantSorry || len(k.table[key].Dests) != step.wantDests {
			t.Fatalf("weights %v: sorry in table %v (want %v), %d destinations (want %d)", step.w, hasSorry, step.wantSorry, len(k.table[key].Dests), step.wantDests)
		}
	}
}

func TestOneWeightChangeIsOneRequest(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	var services []config.Service
	for i := 0; i < 50; i++ {
		var reals []config.RealServer
		for j := 0; j < 10; j++ {
			reals = append(reals, rs(netip.AddrFrom4([4]byte{10, 1, byte(i), byte(j + 1)}).String()+":80", 1))
		}
		services = append(services, svc("s"+string(rune('a'+i%26))+string(rune('a'+i/26)), netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(), 80, reals...))
	}
	cfg := cfgOf(services...)
	converge(t, r, cfg, nil2w())
	k.resetCalls()
	w := downWeights{"10.1.7.3:80": "down"}
	r.ApplyEntry(DesiredEntry(&cfg.Services[7], w))
	if k.calls["UpdateDestination"] != 1 || k.mutations() != 1 || k.calls["Services"] != 0 || k.calls["Destinations"] != 0 {
		t.Fatalf("one weight change cost %v", k.calls)
	}
}

func TestRemoveOwnedKeepsForeign(t *testing.T) {
	k := newFakeKernel()
	foreign := ipvs.Service{Address: netip.MustParseAddr("198.51.100.1"), Port: 53, Protocol: ipvs.UDP, Family: ipvs.INET, Scheduler: "rr"}
	_ = k.CreateService(foreign)
	r := NewReconciler(k, quietLog(), "")
	converge(t, r, cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1))), nil2w())
	if res := r.RemoveOwned(); res.Failed != 0 || res.Applied != 1 {
		t.Fatalf("cleanup: %+v", res)
	}
	if len(k.table) != 1 || k.table[KeyOf(foreign)] == nil {
		t.Fatalf("after cleanup the kernel holds %d services, want only the foreign one", len(k.table))
	}
}

func TestTimeoutsLeaveZeroFieldsAlone(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	if err := r.SetTimeouts(&config.Timeouts{TCP: 600 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if k.cfg != (ipvs.Config{TCPTimeout: 600, TCPFinTimeout: 120, UDPTimeout: 300}) {
		t.Fatalf("timeouts now %+v", k.cfg)
	}
	k.resetCalls()
	_ = r.SetTimeouts(&config.Timeouts{TCP: 600 * time.Second})
	if k.calls["SetConfig"] != 0 {
		t.Fatal("unchanged timeouts were written again")
	}
}

func TestLargePlanShardedOverWorkers(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	// Two handles on the same (locked) fake, as two netlink sockets on
	// one kernel.
	r.SetWorkers(k)
	var services []config.Service
	for i := 0; i < 60; i++ {
		var reals []config.RealServer
		for j := 0; j < 8; j++ {
			reals = append(reals, rs(netip.AddrFrom4([4]byte{10, 2, byte(i), byte(j + 1)}).String()+":80", 1+j))
		}
		s := svc(fmt.Sprintf("s%d", i), netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(), 80, reals...)
		if i == 13 {
			s.Scheduler = "nosuch"
		}
		services = append(services, s)
	}
	cfg := cfgOf(services...)
	res := converge(t, r, cfg, nil2w())
	if res.Failed != 1 || res.Applied != 59*9 {
		t.Fatalf("sharded apply: %d applied, %d failed; want %d and 1", res.Applied, res.Failed, 59*9)
	}
	good := cfgOf(append(append([]config.Service{}, services[:13]...), services[14:]...)...)
	kernelEquals(t, k, good, nil2w())
	// The view matches the kernel: a no-op pass changes nothing.
	k.resetCalls()
	if res := r.Apply(DesiredTable(good, nil2w())); res.Applied != 0 || k.mutations() != 0 {
		t.Fatalf("view out of step after a sharded apply: %+v %v", res, k.calls)
	}
}

func TestTornDumpIsNotDrift(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := cfgOf(svc("a", "192.0.2.1", 80, rs("10.0.0.1:80", 1)), svc("b", "192.0.2.2", 80, rs("10.0.0.1:80", 1)))
	converge(t, r, cfg, nil2w())
	k.resetCalls()
	k.tornDumps = 1
	drift, err := r.Refresh()
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 0 {
		t.Fatalf("a torn dump was reported as drift: %v", drift)
	}
	if res := r.Apply(DesiredTable(cfg, nil2w())); res.Applied != 0 || k.mutations() != 0 {
		t.Fatalf("a torn dump caused changes: %+v %v", res, k.calls)
	}
	// Real drift is seen by both dumps and reported.
	_ = k.RemoveService(ServiceOf(&cfg.Services[1]))
	if drift, _ := r.Refresh(); len(drift) != 1 {
		t.Fatalf("real drift: %v", drift)
	}
}
