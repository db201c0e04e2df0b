package daemon

import (
	"net/netip"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// A restart adopts as healthy the real servers serving in any kernel
// service of a service with vips, not only its first VIP's.
func TestSeedAdoptedVIPs(t *testing.T) {
	ap := netip.MustParseAddr
	s := config.Service{Name: "web", VIP: ap("192.0.2.10"), VIPs: []netip.Addr{ap("192.0.2.10"), ap("2001:db8::10")},
		Port: 80, Protocol: config.TCP, Scheduler: "wlc", Forward: config.NAT,
		RealServers: []config.RealServer{{Address: ap("10.0.0.1"), Port: 80, Weight: 1}, {Address: ap("2001:db8:1::1"), Port: 80, Weight: 1}}}
	cfg := &config.Config{Services: []config.Service{s}}
	v6 := director.ServicesOf(&cfg.Services[0])[1]
	kernel := director.Table{director.KeyOf(v6): {Name: "web", Service: v6,
		Dests: director.Dests{{Address: ap("2001:db8:1::1"), Port: 80, Weight: 1, Family: ipvs.INET6}}}}
	specs := []checks.Spec{
		{Service: "web", RealServer: netip.MustParseAddrPort("10.0.0.1:80")},
		{Service: "web", RealServer: netip.MustParseAddrPort("[2001:db8:1::1]:80")},
	}
	if n := seedAdopted(cfg, kernel, specs); n != 1 || specs[0].Probe.StartHealthy || !specs[1].Probe.StartHealthy {
		t.Errorf("seeded %d: %+v", n, specs)
	}
}
