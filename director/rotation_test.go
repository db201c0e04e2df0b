package director

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/directorlb/director/config"
)

func largeConfig(services, reals int) *config.Config {
	var ss []config.Service
	for i := 0; i < services; i++ {
		var rr []config.RealServer
		for j := 0; j < reals; j++ {
			rr = append(rr, rs(fmt.Sprintf("10.3.%d.%d:80", j, 1+i%250), 1))
		}
		ss = append(ss, svc(fmt.Sprintf("s%d", i), netip.AddrFrom4([4]byte{10, 9, byte(i / 256), byte(i % 256)}).String(), 80, rr...))
	}
	return cfgOf(ss...)
}

// tick is one timer reconcile.
func tick(t *testing.T, r *Reconciler, desired Table) ([]string, Result) {
	t.Helper()
	drift, err := r.RefreshRotating()
	if err != nil {
		t.Fatal(err)
	}
	return drift, r.Apply(desired)
}

func TestRotatingNoopReadsABatch(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := largeConfig(600, 2)
	desired := DesiredTable(cfg, ConfiguredWeights{})
	converge(t, r, cfg, ConfiguredWeights{})
	k.resetCalls()
	drift, res := tick(t, r, desired)
	if len(drift) != 0 || res.Applied != 0 || k.mutations() != 0 {
		t.Fatalf("no-op tick: drift %v, %+v, calls %v", drift, res, k.calls)
	}
	if k.calls["Services"] != 1 || k.calls["Destinations"] != minBatch {
		t.Fatalf("a no-op tick read %d service dumps and %d destination dumps; want 1 and %d", k.calls["Services"], k.calls["Destinations"], minBatch)
	}
}

func TestRotatingCatchesServiceDriftAtOnce(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := largeConfig(600, 2)
	desired := DesiredTable(cfg, ConfiguredWeights{})
	converge(t, r, cfg, ConfiguredWeights{})
	tick(t, r, desired) // move the rotation on

	gone, edited := ServiceOf(&cfg.Services[500]), ServiceOf(&cfg.Services[3])
	_ = k.RemoveService(gone)
	edited.Scheduler = "rr"
	_ = k.UpdateService(edited)
	drift, res := tick(t, r, desired)
	if len(drift) != 2 || res.Failed != 0 {
		t.Fatalf("service drift: %q %+v", drift, res)
	}
	kernelEquals(t, k, cfg, ConfiguredWeights{})
}

func TestRotatingCatchesDestinationDriftWithinARotation(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := largeConfig(600, 2)
	desired := DesiredTable(cfg, ConfiguredWeights{})
	converge(t, r, cfg, ConfiguredWeights{})
	s := &cfg.Services[599]
	_ = k.UpdateDestination(ServiceOf(s), DestinationOf(&s.RealServers[1], 9))
	rotation := (600 + minBatch - 1) / minBatch
	for i := 1; i <= rotation; i++ {
		drift, res := tick(t, r, desired)
		if len(drift) > 0 {
			if len(drift) != 1 || res.Applied != 1 {
				t.Fatalf("tick %d: drift %q, %+v", i, drift, res)
			}
			kernelEquals(t, k, cfg, ConfiguredWeights{})
			return
		}
	}
	t.Fatalf("a changed weight was not seen within %d ticks", rotation)
}

func TestRotatingKeepsWeightChanges(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := largeConfig(600, 2)
	desired := DesiredTable(cfg, ConfiguredWeights{})
	converge(t, r, cfg, ConfiguredWeights{})
	w := downWeights{cfg.Services[42].RealServers[0].AddrPort().String(): "down"}
	e := DesiredEntry(&cfg.Services[42], w)
	desired[KeyOf(e.Service)] = e
	if res := r.ApplyEntry(e); res.Applied != 1 {
		t.Fatalf("%+v", res)
	}
	k.resetCalls()
	for i := 0; i < 4; i++ {
		if _, res := tick(t, r, desired); res.Applied != 0 {
			t.Fatalf("tick %d undid or redid the weight change: %+v", i, res)
		}
	}
	if k.mutations() != 0 {
		t.Fatal(k.calls)
	}
}
