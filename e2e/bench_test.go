//go:build lab

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/lab/topo"
	"github.com/directorlb/director/metrics"
)

// The reference table: 10,000 services of 10 real servers each.
const benchServices, benchReals = 10000, 10

func benchVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 100, byte(i / 256), byte(i % 256)})
}
func benchRS(j int) netip.Addr { return netip.AddrFrom4([4]byte{10, 200, 0, byte(j + 1)}) }

func benchConfig() *config.Config {
	cfg := &config.Config{IPVS: config.IPVS{ReconcileInterval: time.Hour}}
	for i := 0; i < benchServices; i++ {
		s := config.Service{Name: fmt.Sprintf("s%d", i), VIP: benchVIP(i), Port: 80, Protocol: config.TCP,
			Scheduler: "wlc", Forward: config.NAT, OnFailure: config.Quiesce}
		for j := 0; j < benchReals; j++ {
			s.RealServers = append(s.RealServers, config.RealServer{Address: benchRS(j), Port: 80, Weight: 1, Forward: config.NAT})
		}
		cfg.Services = append(cfg.Services, s)
	}
	return cfg
}

// reparsed is cfg as a reload parses it again: equal, sharing no memory.
func reparsed(cfg *config.Config) *config.Config {
	c := *cfg
	c.Services = slices.Clone(cfg.Services)
	for i := range c.Services {
		s := &c.Services[i]
		s.Name, s.Scheduler = strings.Clone(s.Name), strings.Clone(s.Scheduler)
		s.RealServers = slices.Clone(s.RealServers)
	}
	return &c
}

// benchRules is the same table as ipvsadm -R input.
func benchRules() string {
	var b strings.Builder
	for i := 0; i < benchServices; i++ {
		fmt.Fprintf(&b, "-A -t %s:80 -s wlc\n", benchVIP(i))
		for j := 0; j < benchReals; j++ {
			fmt.Fprintf(&b, "-a -t %s:80 -r %s:80 -m -w 1\n", benchVIP(i), benchRS(j))
		}
	}
	return b.String()
}

// benchReconciler opens two netlink sockets in h, as directord does.
func benchReconciler(b *testing.B, h *topo.Host) *director.Reconciler {
	b.Helper()
	r := director.NewReconciler(ipvsdumpIn(b, h), slog.New(slog.NewTextHandler(io.Discard, nil)), "")
	r.SetWorkers(ipvsdumpIn(b, h))
	return r
}

// timeIn runs a program in h and times it to its exit.
func timeIn(b *testing.B, h *topo.Host, stdin string, argv ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = io.Discard
	start := time.Now()
	p, err := h.StartCmd(cmd)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		b.Fatalf("%v: %v", argv, err)
	}
	return time.Since(start)
}

// BenchmarkTable100k measures the reference table under the lab's
// software-emulated kernel, step by step on one table (building it takes
// minutes there): cold apply side by side with real ipvsadm -R, one weight
// change, a no-op reconcile, and directord's memory holding it.
func BenchmarkTable100k(b *testing.B) {
	cfg := benchConfig()
	n := topo.New(b)
	dirA, dirB := n.Host("a"), n.Host("b")
	r := benchReconciler(b, dirA)

	b.Run("ColdApply", func(b *testing.B) {
		desired := director.DesiredTable(cfg, director.ConfiguredWeights{})
		if _, err := r.Refresh(); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res := r.Apply(desired)
		ours := time.Since(start)
		if res.Failed != 0 || res.Applied != benchServices*(benchReals+1) {
			b.Fatalf("cold apply: %d applied, %d failed", res.Applied, res.Failed)
		}
		theirs := timeIn(b, dirB, benchRules(), "/bin/ipvsadm", "-R")
		b.ReportMetric(ours.Seconds(), "director-s")
		b.ReportMetric(theirs.Seconds(), "ipvsadm-restore-s")
		b.Logf("cold apply of %d services x %d real servers: director %.1fs, ipvsadm -R %.1fs (same guest)",
			benchServices, benchReals, ours.Seconds(), theirs.Seconds())
	})

	b.Run("WeightChange", func(b *testing.B) {
		const changes = 1000
		lat := make([]time.Duration, 0, changes)
		for c := 0; c < changes; c++ {
			s := &cfg.Services[(c*7919)%benchServices]
			rs := &s.RealServers[c%benchReals]
			rs.Weight = 6 - rs.Weight // 1 <-> 5: always a change
			start := time.Now()
			res := r.ApplyEntry(director.DesiredEntry(s, director.ConfiguredWeights{}))
			lat = append(lat, time.Since(start))
			if res.Failed != 0 || res.Applied != 1 {
				b.Fatalf("weight change: %+v", res)
			}
		}
		slices.Sort(lat)
		p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(p(0.5), "p50-ms")
		b.ReportMetric(p(0.99), "p99-ms")
		b.Logf("one weight change in a %d-destination table: p50 %.2fms p99 %.2fms max %.2fms over %d changes",
			benchServices*benchReals, p(0.5), p(0.99), p(1), changes)
	})

	b.Run("NoopReconcile", func(b *testing.B) {
		// A reload with nothing changed: a new desired table compared
		// with the cached view of the kernel, no dump (Director.Reload).
		desired := director.DesiredTable(cfg, director.ConfiguredWeights{})
		if res := r.Apply(desired); res.Applied != 0 || res.Failed != 0 {
			b.Fatalf("no-op apply changed something: %+v", res)
		}
		var reloads, builds []time.Duration
		for i := 0; i < 9; i++ {
			again := reparsed(cfg)
			start := time.Now()
			next := director.NextDesiredTable(again, director.ConfiguredWeights{}, desired)
			built := time.Now()
			if res := r.Apply(next); res.Applied != 0 || res.Failed != 0 {
				b.Fatalf("no-op reload changed something: %+v", res)
			}
			reloads = append(reloads, time.Since(start))
			builds = append(builds, built.Sub(start))
			desired = next
		}
		slices.Sort(reloads)
		slices.Sort(builds)
		// The timer's reconcile: every service, a rotating batch of
		// destinations, and only what was read compared.
		var ticks []time.Duration
		for i := 0; i < 5; i++ {
			start := time.Now()
			drift, err := r.RefreshRotating()
			if err != nil || len(drift) != 0 {
				b.Fatalf("rotating refresh: %v drift %v", err, drift)
			}
			if res := r.Apply(desired); res.Applied != 0 || res.Failed != 0 {
				b.Fatalf("no-op tick changed something: %+v", res)
			}
			ticks = append(ticks, time.Since(start))
		}
		slices.Sort(ticks)
		// A full reconcile: every destination dumped and compared. This
		// is what directord does at start and on directorctl reconcile.
		start := time.Now()
		drift, err := r.Refresh()
		if err != nil || len(drift) != 0 {
			b.Fatalf("refresh: %v drift %v", err, drift)
		}
		mid := time.Now()
		if res := r.Apply(desired); res.Applied != 0 || res.Failed != 0 {
			b.Fatalf("no-op reconcile changed something: %+v", res)
		}
		dump, diff := mid.Sub(start), time.Since(mid)
		// The same whole-table read by real ipvsadm, in the same guest.
		ipvsadmList := timeIn(b, dirA, "", "/bin/ipvsadm", "-Ln")
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(reloads[len(reloads)/2]), "ms/reload")
		b.ReportMetric(ms(ticks[len(ticks)/2]), "ms/timer")
		b.ReportMetric(ms(dump+diff), "ms/full")
		b.ReportMetric(ms(ipvsadmList), "ms/ipvsadm-Ln")
		b.Logf("no-op reload: the desired table alone median %.0fms", ms(builds[len(builds)/2]))
		b.Logf("no-op reconcile of %d destinations: reload (desired table + diff with the cached view) median %.0fms max %.0fms; "+
			"timer's (services + 1/12 of destinations) median %.0fms max %.0fms; full %.0fms (kernel dump %.0fms + diff %.0fms); "+
			"ipvsadm -Ln of the same table %.0fms",
			benchServices*benchReals, ms(reloads[len(reloads)/2]), ms(reloads[len(reloads)-1]),
			ms(ticks[len(ticks)/2]), ms(ticks[len(ticks)-1]), ms(dump+diff), ms(dump), ms(diff), ms(ipvsadmList))
	})

	b.Run("Scrape", func(b *testing.B) {
		// The metrics endpoint over the real kernel: one services dump,
		// then each service's destinations, joined with config and
		// health and formatted. The host benchmark in metrics/ times the
		// same path over a fake kernel.
		exp := metrics.New(metrics.Sources{
			Config: func() *config.Config { return cfg },
			Kernel: ipvsdumpIn(b, dirA),
			Health: allHealthy{},
		})
		var times []time.Duration
		var page int
		for i := 0; i < 3; i++ {
			var buf countingWriter
			start := time.Now()
			if err := exp.WriteTo(bufio.NewWriterSize(&buf, 64<<10)); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
			page = int(buf)
		}
		slices.Sort(times)
		b.ReportMetric(times[1].Seconds(), "s/scrape")
		b.Logf("scrape of %d services x %d real servers from the kernel: median %.2fs (of 3), %.0f MB of text",
			benchServices, benchReals, times[1].Seconds(), float64(page)/1e6)
	})

	b.Run("DirectordRSS", func(b *testing.B) {
		tmp := b.TempDir()
		var y strings.Builder
		y.WriteString(configHeader(tmp))
		y.WriteString("services:\n")
		for i := range cfg.Services {
			s := &cfg.Services[i]
			fmt.Fprintf(&y, "  - name: %s\n    vip: %s\n    port: 80\n    check: {type: none}\n    real_servers:\n", s.Name, s.VIP)
			for _, rs := range s.RealServers {
				fmt.Fprintf(&y, "      - {address: %s, weight: %d}\n", rs.Address, rs.Weight)
			}
		}
		path := filepath.Join(tmp, "director.yaml")
		if err := os.WriteFile(path, []byte(y.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		lw := topo.NewLogWatch(io.Discard, "")
		cmd := exec.Command("/bin/directord", "-config", path)
		cmd.Stdout, cmd.Stderr = lw, lw
		start := time.Now()
		p, err := dirA.StartCmd(cmd)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := lw.Wait(0, "directord ready", 15*time.Minute); err != nil {
			b.Fatal(err, lw.Lines())
		}
		ready := time.Since(start)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		if err != nil {
			b.Fatal(err)
		}
		var rssKB int
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				rssKB, _ = strconv.Atoi(f[1])
			}
		}
		changed := strings.Contains(strings.Join(lw.Lines(), "\n"), "ipvs changed")
		if err := p.Stop(30 * time.Second); err != nil {
			b.Fatal(err)
		}
		if changed {
			b.Fatal("directord changed the kernel while adopting an identical table")
		}
		b.ReportMetric(float64(rssKB)/1024, "RSS-MiB")
		b.ReportMetric(ready.Seconds(), "start-to-ready-s")
		b.Logf("directord adopting %d services x %d real servers: RSS %.1f MiB, ready in %.1fs (YAML load, kernel dump, diff; no change made)",
			benchServices, benchReals, float64(rssKB)/1024, ready.Seconds())
	})
}

type allHealthy struct{}

func (allHealthy) Transition(string, netip.AddrPort) (bool, time.Time, bool) {
	return true, time.Time{}, true
}

type countingWriter int

func (c *countingWriter) Write(b []byte) (int, error) {
	*c += countingWriter(len(b))
	return len(b), nil
}
