package announce

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// Each VIP of a service with vips is its own prefix, decided on its own
// kernel service (the real servers of its family).
func TestDecideVIPs(t *testing.T) {
	ap, pp := netip.MustParseAddr, netip.MustParsePrefix
	s := config.Service{Name: "web", VIP: ap("192.0.2.10"), Port: 80, Protocol: config.TCP, Scheduler: "mh",
		VIPs: []netip.Addr{ap("192.0.2.10"), ap("2001:db8::10")},
		RealServers: []config.RealServer{
			{Address: ap("10.0.0.1"), Port: 80, Weight: 1}, {Address: ap("2001:db8:1::1"), Port: 80, Weight: 1},
		}}
	cfg := &config.Config{Services: []config.Service{s}}
	if got := Prefixes(cfg); !reflect.DeepEqual(got, []netip.Prefix{pp("192.0.2.10/32"), pp("2001:db8::10/128")}) {
		t.Errorf("Prefixes = %v", got)
	}
	ks := director.ServicesOf(&cfg.Services[0])
	st := director.Status{Services: []director.ServiceStatus{
		// The IPv4 server is down: only the IPv6 VIP has a server serving.
		{Name: "web", Key: director.KeyOf(ks[0]).String(), InKernel: true,
			RealServers: []director.ServerStatus{{Address: "10.0.0.1:80", KernelWeight: 0}}},
		{Name: "web", Key: director.KeyOf(ks[1]).String(), InKernel: true,
			RealServers: []director.ServerStatus{{Address: "[2001:db8:1::1]:80", KernelWeight: 1}}},
	}}
	vips, want := Decide(cfg, st, State{})
	if !reflect.DeepEqual(want, map[netip.Prefix]bool{pp("2001:db8::10/128"): true}) {
		t.Errorf("announced %v, want the IPv6 VIP alone", want)
	}
	if len(vips) != 2 || vips[0].VIP != "192.0.2.10/32" || vips[0].Announced || vips[0].Servers != 1 ||
		vips[1].VIP != "2001:db8::10/128" || !vips[1].Announced {
		t.Errorf("lines: %+v", vips)
	}
}
