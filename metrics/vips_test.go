package metrics

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/liveness"
)

// A service with vips has a series per kernel service (local_address),
// its real servers under the VIP of their family, and the counts by
// service alone once.
func TestScrapeVIPs(t *testing.T) {
	ap := netip.MustParseAddr
	rs := func(a string) config.RealServer {
		return config.RealServer{Address: ap(a), Port: 80, Weight: 1, Forward: config.NAT}
	}
	cfg := &config.Config{Services: []config.Service{{
		Name: "web", VIP: ap("192.0.2.10"), VIPs: []netip.Addr{ap("192.0.2.10"), ap("2001:db8::10")},
		Port: 80, Protocol: config.TCP, Scheduler: "wlc", Forward: config.NAT,
		RealServers: []config.RealServer{rs("10.0.0.1"), rs("2001:db8:1::1"), rs("2001:db8:1::2")},
	}}}
	k := &fakeKernel{dests: map[director.SvcKey][]ipvs.DestinationExtended{}}
	for i, svc := range director.ServicesOf(&cfg.Services[0]) {
		k.svcs = append(k.svcs, ipvs.ServiceExtended{Service: svc, Stats64: ipvs.Stats{Connections: uint64(10 * (i + 1))}})
		for _, r := range cfg.Services[0].RealServers {
			if r.Address.Is6() == svc.Address.Is6() {
				k.dests[director.KeyOf(svc)] = append(k.dests[director.KeyOf(svc)], ipvs.DestinationExtended{
					Destination: ipvs.Destination{Address: r.Address, Port: 80, Weight: 1}})
			}
		}
	}
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k,
		Health:     fakeHealth{hk("web", "10.0.0.1:80"): true, hk("web", "[2001:db8:1::1]:80"): true, hk("web", "[2001:db8:1::2]:80"): false},
		Reconciles: &fakeReconciles{}, Loops: liveness.New()})
	mfs, text := scrape(t, e, false)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"director_service_connections_total", map[string]string{"service": "web", "local_address": "192.0.2.10"}, 10},
		{"director_service_connections_total", map[string]string{"service": "web", "local_address": "2001:db8::10"}, 20},
		{"director_service_realservers", map[string]string{"service": "web"}, 3},
		{"director_service_realservers_healthy", map[string]string{"service": "web"}, 2},
		{"director_realserver_weight", map[string]string{"service": "web", "address": "[2001:db8:1::2]:80"}, 1},
		{"director_realserver_up", map[string]string{"service": "web", "address": "[2001:db8:1::2]:80"}, 0},
	} {
		if got, ok := value(t, mfs, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"director_service_realservers{", "director_service_realservers_healthy{", "director_realserver_up{service=\"web\",address=\"10.0.0.1:80\"}"} {
		if n := strings.Count(text, name); n != 1 {
			t.Errorf("%d series %s, want one", n, name)
		}
	}
}
