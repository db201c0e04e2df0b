package announce

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

// State is what the decision needs besides the table: the operator's
// drain-node, and a graceful stop under way.
type State struct {
	Drained  bool
	Stopping bool
}

// Decide says, for every VIP of cfg's services, whether this director
// announces it: only while the service is in the kernel and at least
// announce.min_healthy of its real servers pass their checks and carry a
// weight in the kernel. st is the director's status with each server's
// health (daemon.annotate); a server without a check counts as healthy.
//
// A prefix is announced when any service on its address qualifies: two
// services on one VIP (80 and 443) share a route, and withdrawing it
// because one of them has no server would take the other down with it.
// Each service keeps its own line and reason. The result is sorted by
// service, then VIP; the prefixes are the set to announce.
func Decide(cfg *config.Config, st director.Status, s State) ([]control.BGPVIP, map[netip.Prefix]bool) {
	// By kernel key: a service with vips has a status per VIP. By name,
	// the first, for a status that carries no keys.
	byKey := make(map[string]*director.ServiceStatus, len(st.Services))
	byName := make(map[string]*director.ServiceStatus, len(st.Services))
	for i := range st.Services {
		byKey[st.Services[i].Key] = &st.Services[i]
		if byName[st.Services[i].Name] == nil {
			byName[st.Services[i].Name] = &st.Services[i]
		}
	}
	var out []control.BGPVIP
	want := make(map[netip.Prefix]bool)
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		// fwmark: no VIP, as the router is told nothing it could route.
		// With vips, each VIP is its own prefix, decided on its own
		// kernel service (the real servers of its family).
		for _, ks := range director.ServicesOf(svc) {
			if !ks.Address.IsValid() {
				continue
			}
			ss := byKey[director.KeyOf(ks).String()]
			if ss == nil && len(svc.VIPs) == 0 {
				ss = byName[svc.Name]
			}
			v := decideVIP(svc, ks, ss, s)
			out = append(out, v)
			if v.Announced {
				want[netip.PrefixFrom(ks.Address, ks.Address.BitLen())] = true
			}
		}
	}
	slices.SortFunc(out, func(a, b control.BGPVIP) int {
		if c := compare(a.Service, b.Service); c != 0 {
			return c
		}
		return compare(a.VIP, b.VIP)
	})
	return out, want
}

// decideVIP is the line of one kernel service's VIP.
func decideVIP(svc *config.Service, ks ipvs.Service, ss *director.ServiceStatus, s State) control.BGPVIP {
	p := netip.PrefixFrom(ks.Address, ks.Address.BitLen())
	v := control.BGPVIP{Service: svc.Name, VIP: p.String(), Servers: vipServers(svc, ks.Address)}
	if ss != nil {
		v.Healthy = serving(ss)
	}
	need := max(svc.Announce.MinHealthy, config.DefaultMinHealthy)
	switch {
	case s.Stopping:
		v.Reason = "directord is stopping (graceful stop: withdrawn, draining)"
	case s.Drained:
		v.Reason = "node drained (directorctl enable-node announces again)"
	case ss == nil || !ss.InKernel:
		v.Reason = "service not in this director's kernel"
	case v.Healthy < need:
		v.Reason = fmt.Sprintf("%d of %d real servers healthy; announce.min_healthy is %d", v.Healthy, v.Servers, need)
	default:
		v.Announced = true
	}
	return v
}

// vipServers counts the real servers of svc in vip's kernel service.
func vipServers(svc *config.Service, vip netip.Addr) int {
	n := 0
	for i := range svc.RealServers {
		if svc.ServesFrom(vip, &svc.RealServers[i]) {
			n++
		}
	}
	return n
}

// serving counts the real servers (not the sorry server) that pass their
// checks and carry a weight in the kernel: a server the checks pass but
// the kernel does not yet route to serves nothing.
func serving(ss *director.ServiceStatus) int {
	n := 0
	for _, rs := range ss.RealServers {
		if rs.Sorry || rs.KernelWeight <= 0 || rs.Drained {
			continue
		}
		if rs.Health != nil && !rs.Health.Healthy {
			continue
		}
		n++
	}
	return n
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Prefixes returns the VIP prefixes of cfg's services, each once, sorted:
// the addresses the director holds on bgp.vip_interface.
func Prefixes(cfg *config.Config) []netip.Prefix {
	seen := make(map[netip.Prefix]bool)
	var out []netip.Prefix
	for i := range cfg.Services {
		for _, a := range cfg.Services[i].KernelVIPs() {
			p := netip.PrefixFrom(a, a.BitLen())
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}
