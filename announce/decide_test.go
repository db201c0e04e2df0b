package announce

import (
	"net/netip"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

const testConfig = `
bgp:
  asn: 65001
  router_id: 10.0.1.2
  peers: [{address: 10.0.1.1, asn: 65000}]
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    forward: dr
    real_servers: [{address: 10.1.0.11}, {address: 10.1.0.12}, {address: 10.1.0.13}]
  - name: tls
    vip: 192.0.2.10
    port: 443
    forward: dr
    announce: {min_healthy: 2}
    real_servers: [{address: 10.1.0.11}, {address: 10.1.0.12}]
  - name: dns6
    vip: 2001:db8::53
    port: 53
    protocol: udp
    forward: dr
    real_servers: [{address: "2001:db8:1::11"}]
`

func parse(t *testing.T, y string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serving lists, per service, the kernel weight and health of each real
// server in config order; a nil service is not in the kernel.
type servers []struct {
	weight  int
	healthy bool
}

func status(cfg *config.Config, svcs map[string]servers) director.Status {
	var st director.Status
	for _, s := range cfg.Services {
		ss := director.ServiceStatus{Name: s.Name}
		rs, ok := svcs[s.Name]
		ss.InKernel = ok
		for i, r := range s.RealServers {
			srv := director.ServerStatus{Address: r.Address.String(), KernelWeight: -1}
			if ok && i < len(rs) {
				srv.KernelWeight = rs[i].weight
				srv.Health = &director.Health{Check: "tcp", Healthy: rs[i].healthy}
			}
			ss.RealServers = append(ss.RealServers, srv)
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

func up(w int) struct {
	weight  int
	healthy bool
} {
	return struct {
		weight  int
		healthy bool
	}{w, true}
}

var down = struct {
	weight  int
	healthy bool
}{0, false}

func TestDecide(t *testing.T) {
	cfg := parse(t, testConfig)
	v4 := netip.MustParsePrefix("192.0.2.10/32")
	v6 := netip.MustParsePrefix("2001:db8::53/128")
	for _, tc := range []struct {
		name    string
		svcs    map[string]servers
		state   State
		want    []netip.Prefix
		reasons map[string]string // service: reason
	}{
		{
			name: "all serving",
			svcs: map[string]servers{"web": {up(1), up(1), up(1)}, "tls": {up(1), up(1)}, "dns6": {up(1)}},
			want: []netip.Prefix{v4, v6},
		},
		{
			name:    "a shared VIP stays while one of its services serves",
			svcs:    map[string]servers{"web": {up(1), down, down}, "tls": {up(1), down}, "dns6": {up(1)}},
			want:    []netip.Prefix{v4, v6},
			reasons: map[string]string{"tls": "1 of 2 real servers healthy; announce.min_healthy is 2"},
		},
		{
			name: "no healthy server withdraws",
			svcs: map[string]servers{"web": {down, down, down}, "tls": {down, up(1)}, "dns6": {down}},
			want: nil,
			reasons: map[string]string{
				"web":  "0 of 3 real servers healthy; announce.min_healthy is 1",
				"tls":  "1 of 2 real servers healthy; announce.min_healthy is 2",
				"dns6": "0 of 1 real servers healthy; announce.min_healthy is 1",
			},
		},
		{
			// The checks pass but the kernel still holds weight 0: the
			// director has not applied the recovery yet; a VIP announced
			// now would draw flows to a service that serves nothing.
			name: "healthy but not yet weighted in the kernel",
			svcs: map[string]servers{"web": {{0, true}, {0, true}, {0, true}}, "tls": {{0, true}, {0, true}}, "dns6": {up(1)}},
			want: []netip.Prefix{v6},
		},
		{
			// The other way round: failed but not yet quiesced.
			name: "weighted but failing its check",
			svcs: map[string]servers{"web": {{1, false}, {1, false}, {1, false}}, "tls": {{1, false}, {1, false}}, "dns6": {up(1)}},
			want: []netip.Prefix{v6},
		},
		{
			name:    "not in the kernel",
			svcs:    map[string]servers{"web": {up(1), up(1), up(1)}, "tls": {up(1), up(1)}},
			want:    []netip.Prefix{v4},
			reasons: map[string]string{"dns6": "service not in this director's kernel"},
		},
		{
			name:    "drained",
			svcs:    map[string]servers{"web": {up(1), up(1), up(1)}, "tls": {up(1), up(1)}, "dns6": {up(1)}},
			state:   State{Drained: true},
			reasons: map[string]string{"dns6": "node drained (directorctl enable-node announces again)"},
		},
		{
			name:    "stopping wins over drained",
			svcs:    map[string]servers{"web": {up(1), up(1), up(1)}, "tls": {up(1), up(1)}, "dns6": {up(1)}},
			state:   State{Drained: true, Stopping: true},
			reasons: map[string]string{"web": "directord is stopping (graceful stop: withdrawn, draining)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vips, want := Decide(cfg, status(cfg, tc.svcs), tc.state)
			if len(want) != len(tc.want) {
				t.Errorf("announced %v, want %v", sorted(want), tc.want)
			}
			for _, p := range tc.want {
				if !want[p] {
					t.Errorf("%v not announced; want it", p)
				}
			}
			if len(vips) != 3 {
				t.Fatalf("%d VIP lines, want one per service: %+v", len(vips), vips)
			}
			for _, v := range vips {
				if r, ok := tc.reasons[v.Service]; ok && v.Reason != r {
					t.Errorf("%s: reason %q, want %q", v.Service, v.Reason, r)
				}
				if v.Announced != (v.Reason == "") {
					t.Errorf("%s: announced %v with reason %q", v.Service, v.Announced, v.Reason)
				}
			}
		})
	}
}

func TestDecideSorryServerNotCounted(t *testing.T) {
	cfg := parse(t, testConfig)
	st := status(cfg, map[string]servers{"web": {down, down, down}, "tls": {down, down}, "dns6": {down}})
	st.Services[0].RealServers = append(st.Services[0].RealServers, director.ServerStatus{Address: "10.9.9.9", Sorry: true, KernelWeight: 1})
	if _, want := Decide(cfg, st, State{}); len(want) != 0 {
		t.Errorf("announced %v on a sorry server alone", sorted(want))
	}
	var vips []control.BGPVIP
	vips, _ = Decide(cfg, st, State{})
	if vips[2].Service != "web" || vips[2].Healthy != 0 {
		t.Errorf("web line %+v, want 0 healthy", vips[2])
	}
}

func TestPrefixes(t *testing.T) {
	got := Prefixes(parse(t, testConfig))
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("2001:db8::53/128")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Prefixes = %v, want %v", got, want)
	}
}
