package daemon

import (
	"net/netip"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/ipvssync"
)

const routesYAML = `
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    check: {type: none}
    sorry_server: 10.1.0.250:80
    real_servers:
      - address: 10.1.0.11
      - address: 10.1.0.12
        forward: dr
  - name: dns
    vip: 192.0.2.10
    port: 53
    protocol: udp
    forward: dr
    check: {type: none}
    real_servers: [{address: 10.1.0.11}]
  - name: all
    vip: 192.0.2.20
    port: 0
    persistence: 300s
    forward: tun
    check: {type: none}
    real_servers: [{address: 10.1.0.13}]
  - name: marked
    fwmark: 42
    forward: dr
    check: {type: none}
    real_servers: [{address: 10.2.0.1}]
  - name: marked6
    fwmark: 43
    family: ipv6
    forward: dr
    check: {type: none}
    real_servers: [{address: "2001:db8::5"}]
`

// A connection is found by its service's protocol, VIP and port (or a
// service of all ports), and a fwmark service's by its destination, in
// the client's family; the real server's forwarding method wins over the
// service's.
func TestConnRoutes(t *testing.T) {
	cfg, err := config.Parse("routes.yaml", []byte(routesYAML))
	if err != nil {
		t.Fatal(err)
	}
	route := connRoutes(func() *config.Config { return cfg })()
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name   string
		c      ipvssync.Conn
		fwmark uint32
		fwd    ipvssync.ForwardMethod
		routed bool
	}{
		{"nat real server", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4000"), Virtual: ap("192.0.2.10:80"), Dest: ap("10.1.0.11:80")}, 0, ipvssync.ForwardMasq, true},
		{"dr real server of a nat service", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4001"), Virtual: ap("192.0.2.10:80"), Dest: ap("10.1.0.12:80")}, 0, ipvssync.ForwardRoute, true},
		{"sorry server", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4002"), Virtual: ap("192.0.2.10:80"), Dest: ap("10.1.0.250:80")}, 0, ipvssync.ForwardMasq, true},
		{"udp service", ipvssync.Conn{Protocol: 17, Client: ap("198.51.100.1:4003"), Virtual: ap("192.0.2.10:53"), Dest: ap("10.1.0.11:53")}, 0, ipvssync.ForwardRoute, true},
		{"no tcp service on 53", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4004"), Virtual: ap("192.0.2.10:53"), Dest: ap("10.1.0.11:53")}, 0, 0, false},
		{"service of all ports", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4005"), Virtual: ap("192.0.2.20:8443"), Dest: ap("10.1.0.13:8443")}, 0, ipvssync.ForwardTunnel, true},
		{"fwmark service", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4006"), Virtual: ap("192.0.2.30:25"), Dest: ap("10.2.0.1:25")}, 42, ipvssync.ForwardRoute, true},
		{"ipv6 fwmark service", ipvssync.Conn{Protocol: 6, Client: ap("[2001:db8::7]:4007"), Virtual: ap("[2001:db8::a]:25"), Dest: ap("[2001:db8::5]:25")}, 43, ipvssync.ForwardRoute, true},
		{"no service", ipvssync.Conn{Protocol: 6, Client: ap("198.51.100.1:4008"), Virtual: ap("192.0.2.99:80"), Dest: ap("10.9.9.9:80")}, 0, 0, false},
	} {
		fwmark, fwd, ok := route(tc.c)
		if fwmark != tc.fwmark || fwd != tc.fwd || ok != tc.routed {
			t.Errorf("%s: fwmark %d, forward %d, routed %v; want %d, %d, %v", tc.name, fwmark, fwd, ok, tc.fwmark, tc.fwd, tc.routed)
		}
	}
}
