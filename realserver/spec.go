// Package realserver prepares a real server for LVS direct routing and
// tunnelling: it holds the VIPs where the kernel accepts traffic for them
// (lo, or the catch-all tunnel devices) and keeps the server from
// answering ARP for them, so that the director alone owns each VIP on the
// LAN. Everything it changes is recorded, and Down puts back exactly that.
package realserver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/directorlb/director/config"
)

// Mode is how the director forwards to this server.
type Mode string

const (
	DR  Mode = "dr"  // direct routing: the VIP on lo
	TUN Mode = "tun" // IP-in-IP: the VIP on tunl0 / ip6tnl0
)

// The catch-all tunnel devices: the kernel delivers IPIP (IPv6-in-IPv6)
// packets from any source to them.
const (
	tunnelV4 = "tunl0"
	tunnelV6 = "ip6tnl0"
)

// Spec is what up is asked for.
type Spec struct {
	Mode Mode
	VIPs []netip.Addr
	// Interface faces the director; "" means the default route's.
	Interface string
}

// ErrSpec is matched by every problem with a Spec.
var ErrSpec = errors.New("invalid request")

// Validate checks the spec on its own, before the kernel is asked.
func (s Spec) Validate() error {
	if s.Mode != DR && s.Mode != TUN {
		return fmt.Errorf("%w: mode must be dr or tun, got %q", ErrSpec, s.Mode)
	}
	if len(s.VIPs) == 0 {
		return fmt.Errorf("%w: no VIPs", ErrSpec)
	}
	for i, a := range s.VIPs {
		if msg := config.RealServerVIP(a); msg != "" {
			return fmt.Errorf("%w: VIP %s: %s", ErrSpec, a, msg)
		}
		if slices.Contains(s.VIPs[:i], a) {
			return fmt.Errorf("%w: VIP %s is given twice", ErrSpec, a)
		}
	}
	if s.Interface != "" && !validLinkName(s.Interface) {
		return fmt.Errorf("%w: %q is not an interface name", ErrSpec, s.Interface)
	}
	return nil
}

// ParseVIPs reads --vip: addresses separated by commas.
func ParseVIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not an IPv4 or IPv6 address", ErrSpec, f)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --vip lists no address", ErrSpec)
	}
	return out, nil
}

// vipLink is where a VIP is held in this mode.
func (s Spec) vipLink(a netip.Addr) string {
	switch {
	case s.Mode == DR:
		return "lo"
	case a.Is4():
		return tunnelV4
	default:
		return tunnelV6
	}
}

func (s Spec) has4() bool { return slices.ContainsFunc(s.VIPs, netip.Addr.Is4) }
func (s Spec) has6() bool { return slices.ContainsFunc(s.VIPs, netip.Addr.Is6) }

// tunnels are the tunnel devices this spec needs.
func (s Spec) tunnels() []string {
	if s.Mode != TUN {
		return nil
	}
	var out []string
	if s.has4() {
		out = append(out, tunnelV4)
	}
	if s.has6() {
		out = append(out, tunnelV6)
	}
	return out
}

// The values up sets: arp_ignore 1 (answer only for addresses of the
// interface asked on), arp_announce 2 (never source ARP from an address
// of another interface, such as the VIP on lo), rp_filter 0 on the
// tunnel (decapsulated packets come from clients routed elsewhere) and
// loose on all (strict there would override the tunnel's 0).
const (
	arpIgnore   = "1"
	arpAnnounce = "2"
	rpOff       = "0"
	rpLoose     = "2"
)

// step is one thing the spec needs to hold: a sysctl value, a link, a
// link up, an address. Its target matches Change.target.
type step struct {
	kind   ChangeKind
	sysctl Sysctl
	want   string
	// accept is the set of values already good enough to leave alone;
	// nil means only want.
	accept []string
	link   string
	addr   netip.Addr
}

func (st step) target() string {
	return Change{Kind: st.kind, Sysctl: st.sysctl, Link: st.link, Address: st.addr}.target()
}

func (st step) ok(v string) bool {
	if st.accept == nil {
		return v == st.want
	}
	return slices.Contains(st.accept, v)
}

// plan is the steps of a spec on a host whose director-facing interface
// is iface, in the order they are taken: links before what lives on them.
func (s Spec) plan(iface string) []step {
	var steps []step
	for _, t := range s.tunnels() {
		steps = append(steps,
			step{kind: LinkCreated, link: t},
			step{kind: LinkRaised, link: t})
	}
	for _, a := range s.VIPs {
		steps = append(steps, step{kind: AddrAdded, link: s.vipLink(a), addr: a})
	}
	if s.has4() {
		devs := []string{"all"}
		if iface != "" && iface != "all" {
			devs = append(devs, iface)
		}
		for _, d := range devs {
			steps = append(steps,
				step{kind: SysctlSet, sysctl: conf(d, "arp_ignore"), want: arpIgnore},
				step{kind: SysctlSet, sysctl: conf(d, "arp_announce"), want: arpAnnounce})
		}
		if s.Mode == TUN {
			steps = append(steps,
				step{kind: SysctlSet, sysctl: conf(tunnelV4, "rp_filter"), want: rpOff},
				step{kind: SysctlSet, sysctl: conf("all", "rp_filter"), want: rpLoose, accept: []string{rpOff, rpLoose}})
		}
	}
	return steps
}
