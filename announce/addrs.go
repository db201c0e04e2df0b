package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addrs holds the VIPs on bgp.vip_interface. IPVS schedules a packet in
// LOCAL_IN, so a director takes a VIP's packets only while the VIP is one
// of its own addresses. Each is held from the start, whether announced
// or not: a drained or withdrawn director keeps forwarding the flows the
// routers still send it.
type Addrs interface {
	// Hold puts prefix on iface; holding a held one does nothing.
	Hold(iface string, prefix netip.Prefix) error
	// Drop takes prefix off iface; dropping a missing one does nothing.
	Drop(iface string, prefix netip.Prefix) error
}

// KernelAddrs is Addrs through netlink, in the calling thread's network
// namespace.
type KernelAddrs struct{}

func addr(prefix netip.Prefix) *netlink.Addr {
	a := prefix.Addr()
	n := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(prefix.Bits(), a.BitLen())}}
	if a.Is6() {
		// Duplicate address detection would hold a VIP back for a
		// second, and every director holds it: DAD is not wanted here.
		n.Flags = unix.IFA_F_NODAD
	}
	return n
}

// Hold implements Addrs.
func (KernelAddrs) Hold(iface string, prefix netip.Prefix) error {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("vip_interface %s: %w", iface, err)
	}
	if err := netlink.AddrReplace(l, addr(prefix)); err != nil {
		return fmt.Errorf("add %v to %s: %w", prefix, iface, err)
	}
	return nil
}

// Drop implements Addrs.
func (KernelAddrs) Drop(iface string, prefix netip.Prefix) error {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("vip_interface %s: %w", iface, err)
	}
	if err := netlink.AddrDel(l, addr(prefix)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %v from %s: %w", prefix, iface, err)
	}
	return nil
}
