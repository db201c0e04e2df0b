package config

import (
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"
)

// maxVIPs bounds one service's vips: keepalived's virtual_server_group
// files hold a handful; each VIP is a kernel service.
const maxVIPs = 64

// KernelVIPs is every VIP of s, one kernel service each: VIPs, or VIP
// alone; nil for a fwmark service.
func (s *Service) KernelVIPs() []netip.Addr {
	switch {
	case len(s.VIPs) > 0:
		return s.VIPs
	case s.VIP.IsValid():
		return []netip.Addr{s.VIP}
	}
	return nil
}

// ServesFrom reports whether rs belongs in the kernel service of vip.
// A service with one VIP takes every real server the file accepted (a
// tun real server may be of the other family); with vips, each VIP's
// kernel service takes the real servers of its own family only, as a
// dual-stack real server is listed once per family, and keepalived's
// virtual_server_group does the same (its real servers must match the
// family of each address).
func (s *Service) ServesFrom(vip netip.Addr, rs *RealServer) bool {
	return len(s.VIPs) == 0 || rs.Address.Is6() == vip.Is6()
}

// familyName is "IPv4" or "IPv6".
func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// vipList reads vips: a list of at least one VIP, no address twice.
// ok is false if any entry was wrong. Each VIP is recorded for the
// failover coverage warning.
func (d *decoder) vipList(n *yaml.Node, key string) (vips []netip.Addr, nodes []*yaml.Node, ok bool) {
	entries, ok := d.list(n, key, "VIPs such as [192.0.2.10, 2001:db8::10]")
	if !ok {
		return nil, nil, false
	}
	if len(entries) == 0 {
		d.errorf(n, key, "must list at least one VIP")
		return nil, nil, false
	}
	if len(entries) > maxVIPs {
		d.errorf(n, key, "lists %d VIPs, more than the %d a service takes", len(entries), maxVIPs)
		return nil, nil, false
	}
	first := map[netip.Addr]*yaml.Node{}
	for i, e := range entries {
		a, aok := d.vip(e, index(key, i))
		if !aok {
			ok = false
			continue
		}
		if prev, dup := first[a]; dup {
			d.errorf(e, index(key, i), "duplicate VIP %s (first at %s)", a, at(prev))
			ok = false
			continue
		}
		first[a] = e
		vips = append(vips, a)
		nodes = append(nodes, e)
		d.svcVIPs = append(d.svcVIPs, placed{a, e, index(key, i)})
	}
	return vips, nodes, ok
}

// mixedFamilies reports whether s has VIPs of both families.
func (s *Service) mixedFamilies() bool {
	for _, v := range s.VIPs {
		if v.Is6() != s.VIP.Is6() {
			return true
		}
	}
	return false
}

// vipsServed checks, after the real servers are read, that every VIP of
// a vips service has a real server of its family: its kernel service
// would otherwise never have one to send to.
func (d *decoder) vipsServed(s *Service, nodes []*yaml.Node, key string) {
	if len(s.VIPs) == 0 || len(s.RealServers) == 0 {
		return
	}
	has := map[bool]bool{}
	for _, rs := range s.RealServers {
		has[rs.Address.Is6()] = true
	}
	for i, v := range s.VIPs {
		if !has[v.Is6()] {
			d.errorf(nodes[i], index(key, i), "%s has no %s real server: with vips, each VIP's kernel service takes the real servers of its own family; add one or drop this VIP",
				v, familyName(v.Is6()))
		}
	}
}

// vipsFamilyProblem says why a real or sorry server at a cannot serve a
// vips service (no VIP of its family), or "".
func vipsFamilyProblem(s *Service, a netip.Addr, what string) string {
	for _, v := range s.KernelVIPs() {
		if v.Is6() == a.Is6() {
			return ""
		}
	}
	return fmt.Sprintf("%s %s %s has no VIP of its family among the service's vips (each VIP's kernel service takes the real servers of its own family)",
		familyName(a.Is6()), what, a)
}
