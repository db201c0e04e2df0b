package daemon

import (
	"net/netip"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/ipvssync"
)

// connRoutes tells the failover handover how the services in force route
// connections: built once per handover, as a table may be large.
func connRoutes(live func() *config.Config) func() ipvssync.ConnRoute {
	return func() ipvssync.ConnRoute { return newRouteIndex(live()).route }
}

type routeKey struct {
	protocol uint8
	virtual  netip.AddrPort
}

// routeIndex finds a connection's service: by protocol, VIP and port, or
// for a fwmark service (whose connections carry no mark to find it by)
// by the destination, in a service of the client's family; and how the
// service forwards to that destination.
type routeIndex struct {
	byAddr map[routeKey]*config.Service
	byDest map[netip.Addr][]*config.Service // fwmark services, in config order
	fwd    map[destKey]ipvssync.ForwardMethod
}

// destKey is a real server of a service; port 0 stands for any port.
type destKey struct {
	svc  *config.Service
	dest netip.AddrPort
}

func newRouteIndex(cfg *config.Config) *routeIndex {
	x := &routeIndex{byAddr: map[routeKey]*config.Service{}, byDest: map[netip.Addr][]*config.Service{}, fwd: map[destKey]ipvssync.ForwardMethod{}}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if s.FWMark == 0 {
			for _, vip := range s.KernelVIPs() { // each VIP of a service with vips
				x.byAddr[routeKey{uint8(director.ServiceOf(s).Protocol), netip.AddrPortFrom(vip, s.Port)}] = s
			}
		}
		rss := s.RealServers
		if s.SorryServer != nil {
			rss = append(rss[:len(rss):len(rss)], *s.SorryServer)
		}
		for _, rs := range rss {
			k := destKey{s, rs.AddrPort()}
			if _, ok := x.fwd[k]; !ok {
				x.fwd[k] = forwardMethod(rs.Forward)
			}
			if s.FWMark != 0 {
				x.byDest[rs.Address] = append(x.byDest[rs.Address], s)
			}
		}
	}
	return x
}

func (x *routeIndex) route(c ipvssync.Conn) (uint32, ipvssync.ForwardMethod, bool) {
	for _, port := range []uint16{c.Virtual.Port(), 0} { // 0: a service of all ports
		if s := x.byAddr[routeKey{c.Protocol, netip.AddrPortFrom(c.Virtual.Addr(), port)}]; s != nil {
			return 0, x.forward(s, c.Dest), true
		}
	}
	for _, s := range x.byDest[c.Dest.Addr()] {
		if s.IPv6 == c.Client.Addr().Is6() {
			return s.FWMark, x.forward(s, c.Dest), true
		}
	}
	return 0, 0, false
}

// forward is how s reaches dest: the real server's own method, else the
// service's.
func (x *routeIndex) forward(s *config.Service, dest netip.AddrPort) ipvssync.ForwardMethod {
	for _, port := range []uint16{dest.Port(), 0} {
		if fw, ok := x.fwd[destKey{s, netip.AddrPortFrom(dest.Addr(), port)}]; ok {
			return fw
		}
	}
	return forwardMethod(s.Forward)
}

func forwardMethod(fw config.Forward) ipvssync.ForwardMethod {
	switch fw {
	case config.Direct:
		return ipvssync.ForwardRoute
	case config.Tunnel:
		return ipvssync.ForwardTunnel
	}
	return ipvssync.ForwardMasq
}
