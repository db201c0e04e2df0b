package realserver

import (
	"errors"
	"net/netip"
	"strings"
)

// Kernel is the part of one network namespace the helper reads and
// changes: sysctls under /proc/sys, links and addresses. The real one is
// Netlink; tests use a fake.
type Kernel interface {
	// Sysctl reads a sysctl by its path under /proc/sys.
	Sysctl(key Sysctl) (string, error)
	SetSysctl(key Sysctl, value string) error
	// CheckWritable fails, changing nothing, where SetSysctl would be
	// refused (not root, /proc/sys read-only).
	CheckWritable(key Sysctl) error
	// CheckAdmin fails where link and address changes would be refused.
	CheckAdmin() error

	// Link is ErrNoLink when there is no link of that name.
	Link(name string) (Link, error)
	Links() ([]Link, error)
	// CreateTunnel creates the catch-all tunnel device (tunl0 for IPv4 in
	// IPv4, ip6tnl0 for IPv6 in IPv6). ErrExists if it already exists.
	CreateTunnel(name string) error
	DeleteLink(name string) error
	SetLinkUp(name string, up bool) error

	// Addrs is every address of the namespace.
	Addrs() ([]Addr, error)
	// AddAddr adds a host address (/32 or /128, IPv6 without duplicate
	// address detection).
	AddAddr(link string, a netip.Addr) error
	DelAddr(link string, a netip.Addr) error

	// DefaultRouteLink is the link of the IPv4 default route, or "".
	DefaultRouteLink() (string, error)
}

var (
	// ErrNoLink is returned for a link that does not exist.
	ErrNoLink = errors.New("no such link")
	// ErrExists is returned when creating what is already there.
	ErrExists = errors.New("already exists")
)

// Link is a network interface as the helper sees it.
type Link struct {
	Name  string
	Up    bool // administratively up (IFF_UP)
	NoARP bool // IFF_NOARP: it never answers ARP
	// Kind is the netlink kind ("veth", "ipip", "ip6tnl", ...); lo is
	// "loopback".
	Kind string
}

// Addr is one address on one link.
type Addr struct {
	Link   string
	Prefix netip.Prefix
}

// Sysctl is a sysctl's path under /proc/sys, e.g.
// net/ipv4/conf/eth0.100/arp_ignore. The path form keeps interface names
// with dots unambiguous.
type Sysctl string

// conf is the per-interface IPv4 sysctl name for dev ("all" too).
func conf(dev, name string) Sysctl {
	return Sysctl("net/ipv4/conf/" + dev + "/" + name)
}

// String is the name sysctl(8) prints: dots between parts, and the dots
// of an interface name as slashes.
func (s Sysctl) String() string {
	parts := strings.Split(string(s), "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, ".", "/")
	}
	return strings.Join(parts, ".")
}
