package config

import (
	"math/bits"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// unicastProblem says why a is no use as the address of a service, a real
// server or a peer, or "" if it is fine. Zones and IPv4-mapped IPv6 are
// refused because IPVS has no notion of either and the family would be a
// guess.
func unicastProblem(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return "must not have a zone (%" + a.Zone() + ")"
	case a.Is4In6():
		return "must not be an IPv4-mapped IPv6 address (write " + a.Unmap().String() + ")"
	case a.IsUnspecified():
		return "must not be the unspecified address"
	case a.IsMulticast():
		return "must not be a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "must not be the broadcast address"
	}
	return ""
}

// addr reads an IPv4 or IPv6 address with no port, the form of a VIP, a
// peer or a ping node.
func (d *decoder) addr(n *yaml.Node, key string) (netip.Addr, bool) {
	const want = "an IPv4 or IPv6 address"
	s, ok := d.scalar(n, key, want)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		switch ap, perr := netip.ParseAddrPort(s); {
		case perr == nil:
			d.errorf(n, key, "must be an address without a port (the port has its own key), got %s; use %s", describe(n), ap.Addr())
		case strings.Contains(s, "/"):
			d.errorf(n, key, "must be an address without a prefix length, got %s", describe(n))
		default:
			d.errorf(n, key, "must be %s, got %s", want, describe(n))
		}
		return netip.Addr{}, false
	}
	if p := unicastProblem(a); p != "" {
		d.errorf(n, key, "%s, got %s", p, describe(n))
		return netip.Addr{}, false
	}
	return a, true
}

// vip reads a service's VIP: an address as addr reads it that clients
// can reach (vipProblem).
func (d *decoder) vip(n *yaml.Node, key string) (netip.Addr, bool) {
	a, ok := d.addr(n, key)
	if !ok {
		return a, false
	}
	if msg := vipProblem(a); msg != "" {
		d.errorf(n, key, "%s, got %s", msg, describe(n))
		return netip.Addr{}, false
	}
	return a, true
}

// hostPort reads a real server: "10.1.0.11", "10.1.0.11:8080",
// "2001:db8::11" or "[2001:db8::11]:8080". A bare IPv6 address has no
// port: "2001:db8::11:8080" is an address, which is why ports need [].
func (d *decoder) hostPort(n *yaml.Node, key string) (a netip.Addr, port uint16, hasPort, ok bool) {
	const want = "an address such as 10.1.0.11, 10.1.0.11:8080 or [2001:db8::11]:8080"
	s, ok := d.scalar(n, key, want)
	if !ok {
		return netip.Addr{}, 0, false, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if p := unicastProblem(a); p != "" {
			d.errorf(n, key, "%s, got %s", p, describe(n))
			return netip.Addr{}, 0, false, false
		}
		return a, 0, false, true
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return netip.Addr{}, 0, false, false
	}
	if p := unicastProblem(ap.Addr()); p != "" {
		d.errorf(n, key, "%s, got %s", p, describe(n))
		return netip.Addr{}, 0, false, false
	}
	return ap.Addr(), ap.Port(), true, true
}

// prefix reads a failover VIP: the address the director holds and the
// prefix length of its subnet. The address is kept as written, not masked.
func (d *decoder) prefix(n *yaml.Node, key string) (netip.Prefix, bool) {
	const want = "an address with a prefix length such as 192.0.2.10/24 or 2001:db8::10/64"
	s, ok := d.scalar(n, key, want)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return netip.Prefix{}, false
	}
	msg := unicastProblem(p.Addr())
	if msg == "" {
		msg = vipProblem(p.Addr())
	}
	if msg != "" {
		d.errorf(n, key, "%s, got %s", msg, describe(n))
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4() && p.Bits() <= 30 && a == lastAddr(p) {
		// The kernel would add it, and every host on the subnet would
		// take packets to it as broadcasts.
		d.errorf(n, key, "%s is the broadcast address of %s; a VIP must be a host address, got %s", a, p.Masked(), describe(n))
		return netip.Prefix{}, false
	}
	return p, true
}

// lastAddr is the highest address of an IPv4 prefix: its broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ifname reads a network interface name as the kernel accepts it
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no "/", ":" or space.
func (d *decoder) ifname(n *yaml.Node, key string) (string, bool) {
	const want = "an interface name such as eth0"
	s, ok := d.text(n, key, want)
	if !ok {
		return "", false
	}
	if len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\r\v\f") {
		d.errorf(n, key, "must be %s (at most 15 bytes, no \"/\", \":\" or spaces), got %s", want, describe(n))
		return "", false
	}
	return s, true
}

// persistenceMask reads persistence_netmask as a prefix length: for IPv4
// a dotted netmask (as ipvsadm -M) or a length, for IPv6 a length only.
func (d *decoder) persistenceMask(n *yaml.Node, key string, ipv6 bool) (int, bool) {
	limit := 32
	want := "a netmask such as 255.255.255.0 or a prefix length from 0 to 32"
	if ipv6 {
		limit = 128
		want = "a prefix length from 0 to 128 (the service is IPv6)"
	}
	s, ok := d.scalar(n, key, want)
	if !ok {
		return 0, false
	}
	if strings.Contains(s, ".") && !ipv6 {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			d.errorf(n, key, "must be %s, got %s", want, describe(n))
			return 0, false
		}
		b := a.As4()
		m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ones := bits.OnesCount32(m)
		if m != ^uint32(0)<<(32-ones) {
			d.errorf(n, key, "netmask %s is not contiguous (ones then zeros, such as 255.255.255.0)", s)
			return 0, false
		}
		return ones, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > limit {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return 0, false
	}
	return v, true
}

// listen reads a host:port to listen on; "" is allowed where it disables.
func (d *decoder) listen(n *yaml.Node, key string) (string, bool) {
	const want = `host:port such as 127.0.0.1:9474, or "" to disable`
	s, ok := d.scalar(n, key, want)
	if !ok || s == "" {
		return s, ok
	}
	_, port, err := net.SplitHostPort(s)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 1 || p > 65535 {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return "", false
	}
	return s, true
}
