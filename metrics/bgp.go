package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/control"
	"github.com/prometheus/client_golang/prometheus"
)

type bgpStatusFunc func(ctx context.Context) (*control.BGPStatus, error)

// bgpCollector reads a bgp group director's speaker, announcer and group
// at scrape time; a director without bgp reports none of these families.
type bgpCollector struct {
	status atomic.Pointer[bgpStatusFunc]

	peerUp, peerBFD, peerSent, peerFlops, vip, drained, members, mismatch *prometheus.Desc
}

func newBGPCollector() *bgpCollector {
	return &bgpCollector{
		peerUp:    prometheus.NewDesc("director_bgp_peer_up", "1 while the BGP session with the peer is established, 0 otherwise.", []string{"peer"}, nil),
		peerBFD:   prometheus.NewDesc("director_bgp_peer_bfd_up", "1 while the BFD session with the peer is up, 0 otherwise; absent for a peer without BFD.", []string{"peer"}, nil),
		peerSent:  prometheus.NewDesc("director_bgp_peer_prefixes_sent", "Prefixes (VIPs) advertised to the peer now.", []string{"peer"}, nil),
		peerFlops: prometheus.NewDesc("director_bgp_peer_flaps_total", "Times the session with the peer went down after being established.", []string{"peer"}, nil),
		vip:       prometheus.NewDesc("director_bgp_vip_announced", "1 while this director announces the service's VIP, 0 while it does not (see directorctl status for why).", []string{"service", "vip"}, nil),
		drained:   prometheus.NewDesc("director_bgp_node_drained", "1 after directorctl drain-node, 0 otherwise.", nil, nil),
		members:   prometheus.NewDesc("director_group_members", "Live directors of the group, this one included.", nil, nil),
		mismatch:  prometheus.NewDesc("director_group_config_mismatch", "Live directors of the group whose service config (and kernel) digest differs from this one's: consistent hashing breaks.", nil, nil),
	}
}

func (c *bgpCollector) set(f bgpStatusFunc) { c.status.Store(&f) }

func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peerUp, c.peerBFD, c.peerSent, c.peerFlops, c.vip, c.drained, c.members, c.mismatch} {
		ch <- d
	}
}

func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.status.Load()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := (*f)(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.peerUp, err)
		return
	}
	if st == nil {
		return // not started yet
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, p := range st.Peers {
		gauge(c.peerUp, boolValue(p.State == "established"), p.Address)
		if p.BFD != "" {
			gauge(c.peerBFD, boolValue(p.BFD == "up"), p.Address)
		}
		gauge(c.peerSent, float64(p.PrefixesSent), p.Address)
		ch <- prometheus.MustNewConstMetric(c.peerFlops, prometheus.CounterValue, float64(p.Flops), p.Address)
	}
	for _, v := range st.VIPs {
		gauge(c.vip, boolValue(v.Announced), v.Service, v.VIP)
	}
	gauge(c.drained, boolValue(st.Drained))
	if g := st.Group; g != nil {
		n := 0
		for _, m := range g.Members {
			if m.Alive || m.Self {
				n++
			}
		}
		gauge(c.members, float64(n))
		gauge(c.mismatch, float64(g.Mismatched))
	}
}
