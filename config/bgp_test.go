package config_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// The contract's bgp block loads with its defaults, and services in bgp
// mode get theirs: mh with mh-fallback and mh-port where the service
// names no scheduler, what it wrote where it does, announce.min_healthy 1.
func TestLoadBGP(t *testing.T) {
	c, err := config.Load("testdata/good/bgp.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ap := netip.MustParseAddr
	b := c.BGP
	if b == nil {
		t.Fatal("BGP is nil")
	}
	eq(t, "asn", b.ASN, uint32(65001))
	eq(t, "router_id", b.RouterID, ap("10.0.1.2"))
	eq(t, "hold_time", b.HoldTime, config.DefaultHoldTime)
	eq(t, "vip_interface", b.VIPInterface, "lo")
	eq(t, "drain_time", b.DrainTime, 10*time.Second)
	eq(t, "peers", b.Peers, []config.BGPPeer{
		{Address: ap("10.0.1.1"), ASN: 65000, BFD: &config.BFD{Interval: 100 * time.Millisecond, Multiplier: 3}, PasswordFile: "/etc/director/bgp.key"},
		{Address: ap("2001:db8:1::1"), ASN: 4200000000, BFD: &config.BFD{Interval: config.DefaultBFDInterval, Multiplier: config.DefaultBFDMultiplier}},
	})
	eq(t, "sync", b.Sync, &config.Sync{Interface: "eth1", SyncID: 20})
	eq(t, "group", b.Group, &config.BGPGroup{Links: []config.Link{{Interface: "eth1", Multicast: ap("239.192.0.19")}}, AuthKeyFile: "/etc/director/authkey"})
	eq(t, "failover", c.Failover, (*config.Failover)(nil))

	for _, tt := range []struct {
		name, sched string
		flags       []string
		minHealthy  int
	}{
		{"web", "mh", nil, 1}, // mh without flags: as written
		{"api", "mh", []string{"mh-fallback", "mh-port"}, 2},
		{"web6", "sh", nil, 1},
		{"flags", "mh", []string{"mh-port"}, 1}, // flags without a scheduler: the default's, with these flags
		{"legacy", "wlc", nil, 1},
	} {
		s := c.Service(tt.name)
		eq(t, tt.name+" scheduler", s.Scheduler, tt.sched)
		eq(t, tt.name+" flags", s.SchedulerFlags, tt.flags)
		eq(t, tt.name+" announce", s.Announce, config.Announce{MinHealthy: tt.minHealthy})
	}
	warnings(t, c, "testdata/good/bgp.yaml:47:16: services[4].scheduler: wlc picks real servers by this director's own state: "+
		"a flow the routers move to another director may reach another real server there (and break) unless bgp.sync has carried its connection; "+
		"mh or sh pick the same on every director")

	// Where points preflight and directord at what the block names.
	for key, want := range map[string]string{
		"bgp": "3:1", "bgp.peers[0].password_file": "10:22", "bgp.sync.interface": "15:21",
		"bgp.group.links[0].interface": "16:31", "bgp.group.auth_key_file": "16:79",
	} {
		p, ok := c.Where(key)
		if got := fmt.Sprintf("%d:%d", p.Line, p.Col); !ok || got != want {
			t.Errorf("Where(%s) = %+v, %v; want %s", key, p, ok, want)
		}
	}
	if _, ok := c.Where("bgp.vip_interface"); ok {
		t.Errorf("Where(bgp.vip_interface) found a key the file does not have")
	}
}

// What loads in bgp mode but does not do what the file may think: each a
// warning at the key that made it so.
func TestBGPWarnings(t *testing.T) {
	const block = "bgp:\n  asn: 65001\n  router_id: 10.0.1.2\n  peers: [{address: 10.0.1.1, asn: 65000}]\n"
	const svc = "  - {name: a, vip: 192.0.2.10, port: 80, forward: dr, real_servers: [{address: 10.1.0.11}]"
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{"AS_TRANS", "allow_no_services: true\nbgp:\n  asn: 23456\n  router_id: 10.0.1.2\n  peers: [{address: 10.0.1.1, asn: 23456}]\n",
			[]string{
				"x.yaml:3:8: bgp.asn: 23456 is AS_TRANS, which stands in for a 4-byte AS number on speakers that only know 2-byte ones; use the real AS number",
				"x.yaml:5:36: bgp.peers[0].asn: 23456 is AS_TRANS, which stands in for a 4-byte AS number on speakers that only know 2-byte ones; use the real AS number",
			}},
		{"hold time 0", "allow_no_services: true\n" + block + "  hold_time: 0\n",
			[]string{"x.yaml:6:14: bgp.hold_time: 0 turns keepalives off: a dead peer is noticed only by BFD or by TCP giving up, which takes minutes"}},
		{"a fwmark service has no VIP to announce", block + "services:\n  - {name: a, fwmark: 1, forward: dr, real_servers: [{address: 10.1.0.11}]}\n",
			[]string{"x.yaml:6:23: services[0].fwmark: a fwmark service has no VIP for bgp to announce: its packets reach this director only if something else routes them here"}},
		{"a sorry server never serves", block + "services:\n" + svc + ", sorry_server: 10.1.0.250}\n",
			[]string{"x.yaml:6:93: services[0].sorry_server: never serves in bgp mode: it is not put in the kernel (its coming and going would change every director's mh table), and the VIP is withdrawn once fewer than 1 real server(s) are healthy"}},
		{"no real servers", block + "services:\n  - {name: a, vip: 192.0.2.10, port: 80, forward: dr}\n",
			[]string{"x.yaml:6:5: services[0].real_servers: none: the service's VIP is never announced"}},
		{"announce without bgp", "services:\n  - {name: a, vip: 192.0.2.10, port: 80, announce: {min_healthy: 2}}\n",
			[]string{"x.yaml:2:42: services[0].announce: has no effect without a bgp block"}},
		{"weights are 0 or configured", block + "services:\n" +
			"  - {name: a, vip: 192.0.2.10, port: 80, forward: dr, slow_start: 10s, check: {type: exec, command: [/bin/true], dynamic_weight: true},\n" +
			"     real_servers: [{address: 10.1.0.11, upper_threshold: 100, lower_threshold: 50}]}\n",
			[]string{
				"x.yaml:6:67: services[0].slow_start: has no effect in bgp mode: a recovered real server gets its configured weight at once, as every step of a ramp would change every director's mh table at a different time",
				"x.yaml:6:130: services[0].check.dynamic_weight: has no effect in bgp mode: a real server's weight in the kernel is 0 or its configured weight, so that every director's mh table stays the same",
				"x.yaml:7:59: services[0].real_servers[0].upper_threshold: has no effect in bgp mode: a real server's weight in the kernel is 0 or its configured weight, so that every director's mh table stays the same",
				"x.yaml:7:81: services[0].real_servers[0].lower_threshold: has no effect in bgp mode: a real server's weight in the kernel is 0 or its configured weight, so that every director's mh table stays the same",
			}},
		{"mh and sh need no warning", block + "services:\n" + svc + ", scheduler: sh}\n" +
			"  - {name: b, vip: 192.0.2.10, port: 81, forward: tun, real_servers: [{address: 10.1.0.11}], scheduler: mh}\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("x.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			warnings(t, c, tt.want...)
		})
	}
}

// A file without bgp serves what it served before announce existed: the
// services' digest, which a pair compares, does not carry the new key.
func TestAnnounceLeftOutOfDigestWithoutBGP(t *testing.T) {
	c, err := config.Load("testdata/good/nat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c.Services)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "Announce") {
		t.Errorf("services without bgp marshal with Announce: %s", b)
	}
}
