package metrics

import (
	"bufio"
	"compress/gzip"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// bigFarm is services x servers, all in the kernel with traffic.
func bigFarm(services, servers int) (*config.Config, *fakeKernel, fakeHealth) {
	cfg := &config.Config{}
	k := &fakeKernel{dests: map[director.SvcKey][]ipvs.DestinationExtended{}}
	h := fakeHealth{}
	for i := range services {
		vip := netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)})
		s := config.Service{Name: "svc-" + strconv.Itoa(i), VIP: vip, Port: 80, Protocol: config.TCP, Scheduler: "wlc", Forward: config.NAT}
		var dests []ipvs.DestinationExtended
		for j := range servers {
			a := netip.AddrFrom4([4]byte{10, 200 + byte(j), byte(i >> 8), byte(i)})
			s.RealServers = append(s.RealServers, config.RealServer{Address: a, Port: 8080, Weight: 100, Forward: config.NAT})
			dests = append(dests, ipvs.DestinationExtended{
				Destination:       ipvs.Destination{Address: a, Port: 8080, Weight: 100, Family: ipvs.INET},
				ActiveConnections: 12345, InactiveConnections: 678,
				Stats64: ipvs.Stats{Connections: 123456789, IncomingPackets: 9876543210, OutgoingPackets: 8765432109,
					IncomingBytes: 1234567890123, OutgoingBytes: 9876543210987, ConnectionRate: 1234, IncomingPacketRate: 56789,
					OutgoingPacketRate: 45678, IncomingByteRate: 12345678, OutgoingByteRate: 98765432},
			})
			h[healthKey{s.Name, netip.AddrPortFrom(a, 8080)}] = j%7 != 0
		}
		cfg.Services = append(cfg.Services, s)
		svc := director.ServiceOf(&cfg.Services[i])
		k.svcs = append(k.svcs, ipvs.ServiceExtended{Service: svc, Stats64: ipvs.Stats{Connections: 1234567890}})
		k.dests[director.KeyOf(svc)] = dests
	}
	return cfg, k, h
}

// statusKB reads a field of /proc/self/status: VmRSS (resident now) or
// VmHWM (the peak).
func statusKB(field string) int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// BenchmarkScrape10kServices10Servers is the goal: a scrape of
// 10,000 services x 10 real servers in at most 1s, growing RSS by under
// 50 MB. The fake kernel's table is built before the RSS baseline, as the
// real one lives in the kernel; the growth reported is the peak resident
// set during the scrapes over the resident set before them.
func BenchmarkScrape10kServices10Servers(b *testing.B) {
	b.Run("text", func(b *testing.B) { benchScrape(b, false) })
	// What Prometheus asks for: Accept-Encoding gzip.
	b.Run("gzip", func(b *testing.B) { benchScrape(b, true) })
}

func benchScrape(b *testing.B, gz bool) {
	cfg, k, h := bigFarm(10000, 10)
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: h, Reconciles: &fakeReconciles{}})
	runtime.GC()
	// Reset the peak to now, so VmHWM afterwards is the scrapes' peak.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatal(err)
	}
	before := statusKB("VmRSS")
	var page int64
	b.ResetTimer()
	for b.Loop() {
		cw := &countWriter{}
		var out io.Writer = cw
		var zw *gzip.Writer
		if gz {
			zw, _ = gzip.NewWriterLevel(cw, gzip.BestSpeed)
			out = zw
		}
		if err := e.WriteTo(bufio.NewWriterSize(out, 64<<10)); err != nil {
			b.Fatal(err)
		}
		if zw != nil {
			zw.Close()
		}
		page = cw.n
	}
	b.StopTimer()
	b.ReportMetric(float64(statusKB("VmHWM")-before)/1024, "peak-rss-growth-MB")
	b.ReportMetric(float64(page)/1e6, "page-MB")
}
