package metrics

import (
	"context"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
)

// A bgp group director reports each peer's session and BFD, each VIP's
// announcement, its drain and the group; a director without bgp reports
// none of these families.
func TestBGPMetrics(t *testing.T) {
	e := New(Sources{Config: func() *config.Config { return nil }})
	mfs, _ := scrape(t, e, false)
	for _, name := range []string{"director_bgp_peer_up", "director_bgp_vip_announced", "director_bgp_node_drained", "director_group_members"} {
		if _, ok := value(t, mfs, name, nil); ok {
			t.Errorf("%s reported without bgp", name)
		}
	}
	st := &control.BGPStatus{
		Drained: true,
		Peers: []control.BGPPeer{
			{Address: "10.0.1.1", State: "established", BFD: "up", PrefixesSent: 2, Flops: 3},
			{Address: "10.0.9.1", State: "active"},
		},
		VIPs: []control.BGPVIP{
			{Service: "web", VIP: "192.0.2.10/32", Announced: true},
			{Service: "mail", VIP: "192.0.2.25/32"},
		},
		Group: &control.GroupStatus{Mismatched: 1, Members: []control.GroupMember{
			{Node: "d1", Self: true}, {Node: "d2", Alive: true}, {Node: "d3", Alive: false},
		}},
	}
	e.SetBGP(func(context.Context) (*control.BGPStatus, error) { return st, nil })
	mfs, _ = scrape(t, e, false)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"director_bgp_peer_up", map[string]string{"peer": "10.0.1.1"}, 1},
		{"director_bgp_peer_up", map[string]string{"peer": "10.0.9.1"}, 0},
		{"director_bgp_peer_bfd_up", map[string]string{"peer": "10.0.1.1"}, 1},
		{"director_bgp_peer_prefixes_sent", map[string]string{"peer": "10.0.1.1"}, 2},
		{"director_bgp_peer_flaps_total", map[string]string{"peer": "10.0.1.1"}, 3},
		{"director_bgp_vip_announced", map[string]string{"service": "web", "vip": "192.0.2.10/32"}, 1},
		{"director_bgp_vip_announced", map[string]string{"service": "mail", "vip": "192.0.2.25/32"}, 0},
		{"director_bgp_node_drained", nil, 1},
		{"director_group_members", nil, 2}, // itself and d2; d3 is dead
		{"director_group_config_mismatch", nil, 1},
	} {
		if v, ok := value(t, mfs, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if _, ok := value(t, mfs, "director_bgp_peer_bfd_up", map[string]string{"peer": "10.0.9.1"}); ok {
		t.Error("director_bgp_peer_bfd_up reported for a peer without BFD")
	}
}
