package director

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// benchConfig is the reference table: 10,000 services of 10 real
// servers (the lab's BenchmarkTable100k uses the same shape).
func benchConfig() *config.Config {
	cfg := cfgOf()
	for i := 0; i < 10000; i++ {
		s := svc(fmt.Sprintf("s%d", i), netip.AddrFrom4([4]byte{10, 100, byte(i / 256), byte(i % 256)}).String(), 80)
		for j := 0; j < 10; j++ {
			s.RealServers = append(s.RealServers, rs(fmt.Sprintf("10.200.0.%d:80", j+1), 1))
		}
		cfg.Services = append(cfg.Services, s)
	}
	return cfg
}

// BenchmarkNoopDiff100k is the user-space half of a no-op reconcile: the
// desired table built from the config and diffed with an identical view.
func BenchmarkNoopDiff100k(b *testing.B) {
	cfg := benchConfig()
	view := DesiredTable(cfg, ConfiguredWeights{})
	owned := func(SvcKey) bool { return true }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := Diff(DesiredTable(cfg, ConfiguredWeights{}), view, owned); len(p.Ops) != 0 {
			b.Fatal("not a no-op")
		}
	}
}

// BenchmarkWeightChangeFake is one weight change against an in-memory
// kernel: the director's own cost per health transition.
func BenchmarkWeightChangeFake(b *testing.B) {
	cfg := benchConfig()
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	if _, err := r.Refresh(); err != nil {
		b.Fatal(err)
	}
	r.Apply(DesiredTable(cfg, ConfiguredWeights{}))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := &cfg.Services[(i*7919)%len(cfg.Services)]
		s.RealServers[i%10].Weight = 6 - s.RealServers[i%10].Weight
		if res := r.ApplyEntry(DesiredEntry(s, ConfiguredWeights{})); res.Applied != 1 {
			b.Fatalf("%+v", res)
		}
	}
}

// BenchmarkDiffOnly100k diffs a cached desired table with an identical
// view: what the timer costs in user space once the desired table is
// kept between reconciles.
func BenchmarkDiffOnly100k(b *testing.B) {
	cfg := benchConfig()
	desired := DesiredTable(cfg, ConfiguredWeights{})
	view := DesiredTable(cfg, ConfiguredWeights{})
	owned := func(SvcKey) bool { return true }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p := Diff(desired, view, owned); len(p.Ops) != 0 {
			b.Fatal("not a no-op")
		}
	}
}

// BenchmarkNoopReload100k is Director.Reload's work for a configuration
// equal to the one in force, over a kernel that already holds it: the
// next desired table, then the diff with the cached view.
func BenchmarkNoopReload100k(b *testing.B) {
	cfg := benchConfig()
	r := NewReconciler(newFakeKernel(), quietLog(), "")
	if _, err := r.Refresh(); err != nil {
		b.Fatal(err)
	}
	desired := DesiredTable(cfg, ConfiguredWeights{})
	r.Apply(desired)
	var build, apply time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A new config object each time, as a reload parses one: equal,
		// sharing no memory with the one in force.
		b.StopTimer()
		again := benchConfig()
		b.StartTimer()
		t0 := time.Now()
		next := NextDesiredTable(again, ConfiguredWeights{}, desired)
		t1 := time.Now()
		if res := r.Apply(next); res.Applied != 0 || res.Failed != 0 {
			b.Fatalf("not a no-op: %+v", res)
		}
		build += t1.Sub(t0)
		apply += time.Since(t1)
		desired = next
	}
	b.ReportMetric(float64(build.Microseconds())/1000/float64(b.N), "build-ms/op")
	b.ReportMetric(float64(apply.Microseconds())/1000/float64(b.N), "apply-ms/op")
}
