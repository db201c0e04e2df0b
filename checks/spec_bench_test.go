package checks

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/directorlb/director/config"
)

// scaleConfig is the side-by-side benchmark's farm (e2e's benchConfig):
// 10,000 services of ten real servers, all with check c.
func scaleConfig(c config.Check) *config.Config {
	cfg := &config.Config{}
	for i := 0; i < config.MaxServices; i++ {
		s := config.Service{Name: "s" + netip.AddrFrom4([4]byte{0, 0, byte(i / 256), byte(i % 256)}).String(),
			VIP: netip.AddrFrom4([4]byte{10, 100, byte(i / 256), byte(i % 256)}), Port: 80, Protocol: config.TCP,
			Scheduler: "wlc", Forward: config.NAT, OnFailure: config.Quiesce, Check: c}
		for j := 0; j < 10; j++ {
			s.RealServers = append(s.RealServers, config.RealServer{Address: netip.AddrFrom4([4]byte{10, 200, 0, byte(j + 1)}),
				Port: 80, Weight: 1, Forward: config.NAT})
		}
		cfg.Services = append(cfg.Services, s)
	}
	return cfg
}

// BenchmarkSpecs100k is LoadSpecs on that farm with no checks, as the
// side-by-side start and reload run it.
func BenchmarkSpecs100k(b *testing.B) {
	cfg := scaleConfig(config.Check{Type: config.CheckNone})
	b.ReportAllocs()
	for b.Loop() {
		specs, err := LoadSpecs(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if len(specs) != 100_000 {
			b.Fatalf("%d specs", len(specs))
		}
	}
}

// BenchmarkReloadSet100k is the engine's part of the side-by-side
// reload: the farm's specs set again, unchanged (type none: no probe
// runs, so the engine need not be started).
func BenchmarkReloadSet100k(b *testing.B) {
	specs, err := LoadSpecs(scaleConfig(config.Check{Type: config.CheckNone}))
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(slog.New(slog.DiscardHandler))
	e.Set(specs)
	b.ReportAllocs()
	for b.Loop() {
		e.Set(specs)
	}
}
