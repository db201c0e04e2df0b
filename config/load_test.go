package config_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// The fixtures in testdata/good must load, with what each case asserts.
func TestLoadGood(t *testing.T) {
	host, _ := os.Hostname()
	ap := netip.MustParseAddr
	tests := []struct {
		file  string
		check func(t *testing.T, c *config.Config)
	}{
		{"failover.yaml", func(t *testing.T, c *config.Config) {
			fo := c.Failover
			eq(t, "timing", []time.Duration{fo.Keepalive, fo.Deadtime, fo.Initdead}, []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, time.Second})
			eq(t, "auto_failback", fo.AutoFailback, true)
			eq(t, "links", fo.Links, []config.Link{{Interface: "eth1", Peer: ap("192.168.50.2")}, {Interface: "eth0", Multicast: ap("ff02::12")}, {Serial: "/dev/ttyS1"}})
			eq(t, "ping", fo.PingNodes, []netip.Addr{ap("192.0.2.1"), ap("2001:db8::1")})
			eq(t, "fence", fo.Fence, "/etc/director/fence")
			eq(t, "hook_timeout", fo.HookTimeout, 30*time.Second)
		}},
		{"contract.yaml", func(t *testing.T, c *config.Config) {
			eq(t, "node", c.Node, "lb1")
			eq(t, "socket", c.Control.Socket, "/run/director/director.sock")
			eq(t, "listen", c.Metrics.Listen, "127.0.0.1:9474")
			eq(t, "timeouts", *c.IPVS.Timeouts, config.Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second})
			eq(t, "defaults.check", c.Defaults.Check, config.Check{Type: "tcp", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3})
			s := c.Service("web")
			eq(t, "vip", s.VIP, ap("192.0.2.10"))
			eq(t, "port", s.Port, uint16(80))
			eq(t, "protocol", s.Protocol, config.TCP)
			eq(t, "flags", s.SchedulerFlags, []string{"sh-port"})
			eq(t, "persistence", s.Persistence, 300*time.Second)
			eq(t, "mask", s.PersistenceMask, 32)
			eq(t, "tunnel", s.Tunnel, config.TunnelSpec{Type: config.IPIP, Checksum: "nocsum"})
			eq(t, "check", s.Check, config.Check{Type: "http", Path: "/healthz", ExpectStatus: []config.StatusRange{{Min: 200, Max: 200}},
				Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2})
			eq(t, "on_failure", s.OnFailure, config.Quiesce)
			eq(t, "sorry", s.SorryServer.AddrPort(), netip.MustParseAddrPort("10.1.0.250:80"))
			eq(t, "sorry weight", s.SorryServer.Weight, 1)
			eq(t, "rs0", s.RealServers[0].AddrPort(), netip.MustParseAddrPort("10.1.0.11:80"))
			eq(t, "rs0 weight", s.RealServers[0].Weight, 100)
			eq(t, "rs0 forward", s.RealServers[0].Forward, config.NAT)
			// DR cannot map 80 to 8080: the port is the service's, as ipvsadm makes it.
			eq(t, "rs1", s.RealServers[1].AddrPort(), netip.MustParseAddrPort("10.1.0.12:80"))
			eq(t, "rs1 forward", s.RealServers[1].Forward, config.Direct)
			eq(t, "rs1 pos", s.RealServers[1].Pos.Line, 35)
			fo := c.Failover
			eq(t, "priority", fo.Priority, 200)
			eq(t, "timing", []time.Duration{fo.Keepalive, fo.Deadtime, fo.Initdead}, []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 5 * time.Second})
			eq(t, "port", fo.Port, uint16(694))
			eq(t, "links", fo.Links, []config.Link{{Interface: "eth1", Peer: ap("192.168.50.2")}, {Interface: "eth0", Multicast: ap("239.192.0.18")}})
			eq(t, "vips", fo.VIPs, []config.VIP{{Address: netip.MustParsePrefix("192.0.2.10/24"), Interface: "eth0"}})
			eq(t, "ping", fo.PingNodes, []netip.Addr{ap("192.0.2.1")})
			eq(t, "sync", *fo.Sync, config.Sync{Interface: "eth1", SyncID: 10})
			eq(t, "notify", fo.Notify, "/etc/director/notify")
			warnings(t, c,
				"testdata/good/contract.yaml:18:23: services[0].scheduler_flags[0]: sh-port has no effect with scheduler wlc (only with sh)",
				"testdata/good/contract.yaml:21:5: services[0].tunnel: has no effect: neither the service nor a real server uses forward: tun",
				"testdata/good/contract.yaml:35:18: services[0].real_servers[1].address: dr cannot map port 80 to 8080: connections reach 10.1.0.12:80; use forward: nat to map ports")
			eq(t, "hook_timeout", fo.HookTimeout, 10*time.Second)
		}},
		{"minimal.yaml", func(t *testing.T, c *config.Config) {
			eq(t, "node", c.Node, host)
			eq(t, "socket", c.Control.Socket, config.DefaultSocket)
			eq(t, "listen", c.Metrics.Listen, config.DefaultMetricsListen)
			eq(t, "timeouts", c.IPVS.Timeouts, (*config.Timeouts)(nil))
			eq(t, "reconcile", c.IPVS.ReconcileInterval, config.DefaultReconcileInterval)
			eq(t, "failover", c.Failover, (*config.Failover)(nil))
			s := c.Services[0]
			eq(t, "pos", s.Pos, config.Pos{File: "testdata/good/minimal.yaml", Line: 4, Col: 5})
			eq(t, "protocol", s.Protocol, config.TCP)
			eq(t, "scheduler", s.Scheduler, config.DefaultScheduler)
			eq(t, "forward", s.Forward, config.NAT)
			eq(t, "tunnel", s.Tunnel, config.TunnelSpec{})
			eq(t, "on_failure", s.OnFailure, config.Quiesce)
			eq(t, "mask", s.PersistenceMask, 32)
			eq(t, "check", s.Check, config.DefaultCheck)
			eq(t, "rs", s.RealServers, []config.RealServer{{Address: ap("10.1.0.11"), Port: 80, Weight: 1, Forward: config.NAT,
				Pos: config.Pos{File: "testdata/good/minimal.yaml", Line: 8, Col: 9}}})
			eq(t, "sorry", s.SorryServer, (*config.RealServer)(nil))
			warnings(t, c)
		}},
		{"nat.yaml", func(t *testing.T, c *config.Config) {
			eq(t, "listen", c.Metrics.Listen, "")
			eq(t, "timeouts", *c.IPVS.Timeouts, config.Timeouts{TCP: 900 * time.Second, TCPFin: 2 * time.Minute, UDP: 300 * time.Second})
			eq(t, "cleanup", c.IPVS.CleanupOnExit, true)
			eq(t, "reconcile", c.IPVS.ReconcileInterval, 10*time.Second)
			api := c.Service("api")
			eq(t, "scheduler", api.Scheduler, "wrr")
			eq(t, "on_failure", api.OnFailure, config.Remove)
			eq(t, "sorry", *api.SorryServer, config.RealServer{Address: ap("10.1.0.250"), Port: 8443, Weight: 1, Forward: config.NAT,
				Pos: config.Pos{File: "testdata/good/nat.yaml", Line: 14, Col: 19}})
			rs := api.RealServers
			eq(t, "rs0", rs[0].AddrPort(), netip.MustParseAddrPort("10.1.0.21:443"))
			eq(t, "rs1", rs[1].AddrPort(), netip.MustParseAddrPort("10.1.0.22:8443"))
			eq(t, "rs1 weight", rs[1].Weight, 0)
			eq(t, "rs1 thresholds", []uint32{rs[1].UpperThreshold, rs[1].LowerThreshold}, []uint32{1000, 800})
			eq(t, "rs2", rs[2].AddrPort(), netip.MustParseAddrPort("[2001:db8::23]:443"))
			eq(t, "rs2 tunnel", rs[2].Tunnel, config.TunnelSpec{Type: config.IPIP, Checksum: "nocsum"})
			dns := c.Service("dns")
			eq(t, "protocol", dns.Protocol, config.UDP)
			eq(t, "one_packet", dns.OnePacket, true)
			eq(t, "flags", dns.SchedulerFlags, []string{"sh-port", "sh-fallback"})
			eq(t, "weight", dns.RealServers[0].Weight, 65535)
			tcp := c.Service("dns-tcp")
			eq(t, "flags", tcp.SchedulerFlags, []string{"mh-fallback"})
			eq(t, "empty pool", len(tcp.RealServers), 0)
			warnings(t, c)
		}},
		{"dr.yaml", func(t *testing.T, c *config.Config) {
			s := c.Service("web")
			eq(t, "mask", s.PersistenceMask, 24)
			eq(t, "persistence", s.Persistence, 600*time.Second)
			eq(t, "forwards", []config.Forward{s.RealServers[0].Forward, s.RealServers[1].Forward, s.RealServers[2].Forward},
				[]config.Forward{config.Direct, config.Direct, config.NAT})
			eq(t, "ports", []uint16{s.RealServers[0].Port, s.RealServers[1].Port, s.RealServers[2].Port}, []uint16{80, 80, 8080})
			warnings(t, c)
		}},
		{"tun.yaml", func(t *testing.T, c *config.Config) {
			s := c.Service("web6")
			eq(t, "ipv6", s.IPv6, true)
			eq(t, "tunnel", s.Tunnel, config.TunnelSpec{Type: config.IPIP, Checksum: "nocsum"})
			eq(t, "rs1", s.RealServers[1].AddrPort(), netip.MustParseAddrPort("192.0.2.50:80"))
			eq(t, "rs1 tunnel", s.RealServers[1].Tunnel, config.TunnelSpec{Type: config.IPIP, Checksum: "nocsum"})
			eq(t, "rs2 tunnel", s.RealServers[2].Tunnel, config.TunnelSpec{Type: config.GRE, Checksum: "csum"})
			warnings(t, c)
		}},
		{"ipv6.yaml", func(t *testing.T, c *config.Config) {
			s := c.Service("web6")
			eq(t, "ipv6", s.IPv6, true)
			eq(t, "mask", s.PersistenceMask, 64)
			eq(t, "persistence", s.Persistence, time.Minute)
			eq(t, "rs0", s.RealServers[0].AddrPort(), netip.MustParseAddrPort("[2001:db8:1::11]:443"))
			eq(t, "rs1", s.RealServers[1].AddrPort(), netip.MustParseAddrPort("[2001:db8:1::12]:8443"))
			eq(t, "sorry", s.SorryServer.AddrPort(), netip.MustParseAddrPort("[2001:db8:1::250]:443"))
			fo := c.Failover
			eq(t, "defaults", []any{fo.Priority, fo.AutoFailback, fo.Keepalive, fo.Deadtime, fo.Initdead, fo.Port},
				[]any{100, false, 100 * time.Millisecond, 500 * time.Millisecond, 5 * time.Second, uint16(config.DefaultHeartbeatPort)})
			eq(t, "links", fo.Links, []config.Link{{Interface: "eth1", Peer: ap("fe80::2")}, {Interface: "eth0", Multicast: ap("ff02::12")}})
			eq(t, "sync", fo.Sync, (*config.Sync)(nil))
			warnings(t, c)
		}},
		{"fwmark.yaml", func(t *testing.T, c *config.Config) {
			s := c.Service("web-all")
			eq(t, "fwmark", s.FWMark, uint32(42))
			eq(t, "vip", s.VIP.IsValid(), false)
			eq(t, "protocol", s.Protocol, config.Protocol(""))
			eq(t, "ipv6", s.IPv6, false)
			eq(t, "mask", s.PersistenceMask, 16)
			eq(t, "one_packet", s.OnePacket, true)
			eq(t, "ports", []uint16{s.RealServers[0].Port, s.RealServers[1].Port}, []uint16{0, 8080})
			s6 := c.Service("web-all6")
			eq(t, "ipv6", s6.IPv6, true)
			eq(t, "mask", s6.PersistenceMask, 48)
			eq(t, "port", s6.RealServers[0].Port, uint16(0))
			all := c.Service("all-ports")
			eq(t, "port", all.Port, uint16(0))
			eq(t, "persistence", all.Persistence, time.Hour)
			eq(t, "rs port", all.RealServers[0].Port, uint16(0))
			warnings(t, c)
		}},
		{"gue.yaml", func(t *testing.T, c *config.Config) {
			s := c.Service("web")
			gue := config.TunnelSpec{Type: config.GUE, Port: 6080, Checksum: "remcsum"}
			eq(t, "tunnel", s.Tunnel, gue)
			eq(t, "rs0", s.RealServers[0].Tunnel, gue)
			eq(t, "rs1", s.RealServers[1].Tunnel, config.TunnelSpec{Type: config.GUE, Port: 6081, Checksum: "nocsum"})
			eq(t, "rs2", s.RealServers[2].Tunnel, config.TunnelSpec{Type: config.IPIP, Checksum: "nocsum"})
			warnings(t, c)
		}},
		{"defaults_check.yaml", func(t *testing.T, c *config.Config) {
			statuses := []config.StatusRange{{Min: 200, Max: 200}, {Min: 300, Max: 399}}
			def := config.Check{Type: "http", Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Path: "/healthz", ExpectStatus: statuses}
			eq(t, "defaults", c.Defaults.Check, def)
			eq(t, "inherits", c.Service("inherits").Check, def)
			interval := def
			interval.Interval = time.Second
			eq(t, "interval-only", c.Service("interval-only").Check, interval)
			eq(t, "tcp", c.Service("tcp").Check, config.Check{Type: "tcp", Interval: 5 * time.Second, Timeout: 3 * time.Second, Rise: 1, Fall: 1,
				Path: "/healthz", ExpectStatus: statuses})
			other := def
			other.ExpectStatus = []config.StatusRange{{Min: 204, Max: 204}}
			eq(t, "other-status", c.Service("other-status").Check, other)
			// Services must not share the slice: a change to one is not a change to all.
			c.Service("inherits").Check.ExpectStatus[0].Min = 201
			eq(t, "no aliasing", c.Service("interval-only").Check.ExpectStatus[0].Min, 200)
			// Said once, where the interval was shortened to the inherited timeout.
			warnings(t, c, "testdata/good/defaults_check.yaml:10:23: services[1].check.interval: timeout 1s is not shorter than interval 1s; "+
				"a probe that times out is followed at once by the next, so the interval is not kept")
		}},
		{"check_keys.yaml", func(t *testing.T, c *config.Config) {
			def := config.Check{Type: "exec", Interval: 5 * time.Second, FastInterval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
				StartHealthy: true, DynamicWeight: true,
				Command: []string{"/usr/local/lib/director/check-app", "--host", "{address}", "--port={port}"}}
			eq(t, "defaults", c.Defaults.Check, def)
			eq(t, "inherits", c.Service("inherits").Check, def)
			interval := def
			interval.Interval = 2 * time.Second
			eq(t, "interval-only keeps the command", c.Service("interval-only").Check, interval)
			tcp := def
			tcp.Type, tcp.StartHealthy = "tcp", false
			tcp.Address, tcp.Port = ap("10.1.0.99"), 6380
			tcp.Send, tcp.Expect = "PING\r\n", "+PONG"
			eq(t, "redis", c.Service("redis").Check, tcp)
			web := def
			web.Type, web.Port = "http", 8080
			web.Method, web.Host, web.Path, web.Body = "HEAD", "www.example.com:8080", "/healthz", `^ok\b|"status": ?"up"`
			web.ExpectStatus = []config.StatusRange{{Min: 200, Max: 299}}
			eq(t, "web", c.Service("web").Check, web)
			sec := def
			sec.Type, sec.Address, sec.FastInterval = "https", ap("2001:db8::99"), 5*time.Second
			sec.ServerName, sec.CAFile, sec.InsecureSkipVerify = "www.example.com", "/etc/director/ca.pem", true
			eq(t, "secure", c.Service("secure").Check, sec)
			// Services must not share the command: a change to one is not a change to all.
			c.Service("inherits").Check.Command[0] = "/bin/false"
			eq(t, "no aliasing", c.Service("interval-only").Check.Command[0], "/usr/local/lib/director/check-app")
			eq(t, "defaults not aliased", c.Defaults.Check.Command[0], "/usr/local/lib/director/check-app")
			eq(t, "placeholder", c.Service("placeholder").Check.Command, []string{"/usr/local/bin/check", "{addr}:{port}", "{}"})
			warnings(t, c,
				"testdata/good/check_keys.yaml:55:39: services[5].check.command[1]: {addr} is not a placeholder and is passed as written (the placeholders are {address} and {port})")
		}},
		{"check_sql_dns.yaml", func(t *testing.T, c *config.Config) {
			db := c.Service("db").Check
			eq(t, "mysql", [6]string{string(db.Type), db.User, db.PasswordFile, db.Database, db.Query, db.Expect},
				[6]string{"mysql", "checker", "/etc/director/db.pw", "app", "SELECT role FROM status", "primary"})
			pg := c.Service("pg").Check
			eq(t, "postgres", [3]string{string(pg.Type), pg.User, pg.PasswordEnv}, [3]string{"postgres", "checker", "PG_PW"})
			d := c.Service("dns").Check
			eq(t, "dns", [5]string{string(d.Type), d.QueryName, d.QueryType, d.Rcode, d.Answer},
				[5]string{"dns", "www.example.com", "AAAA", "NOERROR", "2001:db8::"})
			warnings(t, c)
		}},
		{"empty.yaml", func(t *testing.T, c *config.Config) {
			eq(t, "node", c.Node, host)
			eq(t, "services", len(c.Services), 0)
			eq(t, "check", c.Defaults.Check, config.DefaultCheck)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := config.Load(filepath.Join("testdata", "good", tt.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// Every fixture in testdata/good has a case above.
func TestGoodFixturesCovered(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) < 12 {
		t.Errorf("found %d good fixtures, want the 12 TestLoadGood checks", len(files))
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load("testdata/no-such-file.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
	if errors.Is(err, config.ErrInvalid) {
		t.Errorf("a missing file is not an invalid configuration: %v", err)
	}
}

func TestService(t *testing.T) {
	c, err := config.Load("testdata/good/nat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Service("dns"); s == nil || s.Port != 53 || s.Protocol != config.UDP {
		t.Errorf("Service(dns) = %+v", s)
	}
	if s := c.Service("nope"); s != nil {
		t.Errorf("Service(nope) = %+v, want nil", s)
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func warnings(t *testing.T, c *config.Config, want ...string) {
	t.Helper()
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
