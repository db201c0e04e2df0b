package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Kernel of the calling thread's network namespace: links
// and addresses through rtnetlink, sysctls through /proc/sys, which the
// kernel resolves in the namespace of whoever opens the file.
type Netlink struct {
	h *netlink.Handle
}

// NewNetlink opens a netlink handle in the calling thread's namespace.
func NewNetlink() (*Netlink, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &Netlink{h: h}, nil
}

// Close releases the netlink socket.
func (k *Netlink) Close() { k.h.Close() }

func sysctlFile(key Sysctl) string { return filepath.Join("/proc/sys", string(key)) }

func (k *Netlink) Sysctl(key Sysctl) (string, error) {
	b, err := os.ReadFile(sysctlFile(key))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (k *Netlink) SetSysctl(key Sysctl, value string) error {
	// O_TRUNC is not needed for /proc/sys, and O_CREATE would be wrong:
	// a missing sysctl is an error, not a file to make.
	f, err := os.OpenFile(sysctlFile(key), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("set %s=%s: %w", key, value, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("set %s=%s: %w", key, value, err)
	}
	return nil
}

func (k *Netlink) CheckWritable(key Sysctl) error {
	f, err := os.OpenFile(sysctlFile(key), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return f.Close()
}

func (k *Netlink) CheckAdmin() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return fmt.Errorf("no CAP_NET_ADMIN: %w", os.ErrPermission)
	}
	return nil
}

func toLink(l netlink.Link) Link {
	a := l.Attrs()
	kind := l.Type()
	if a.EncapType == "loopback" {
		kind = "loopback"
	}
	return Link{
		Name:  a.Name,
		Up:    a.Flags&net.FlagUp != 0,
		NoARP: a.RawFlags&unix.IFF_NOARP != 0,
		Kind:  kind,
	}
}

func (k *Netlink) Link(name string) (Link, error) {
	l, err := k.byName(name)
	if err != nil {
		return Link{}, err
	}
	return toLink(l), nil
}

// dumpRetries bounds retries of a dump the kernel interrupted because the
// table changed under it; a few are enough unless something churns.
const dumpRetries = 5

func (k *Netlink) Links() ([]Link, error) {
	var ls []netlink.Link
	var err error
	for range dumpRetries {
		if ls, err = k.h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]Link, len(ls))
	for i, l := range ls {
		out[i] = toLink(l)
	}
	return out, nil
}

func (k *Netlink) CreateTunnel(name string) error {
	var l netlink.Link
	switch name {
	case tunnelV4:
		l = &netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: name}, PMtuDisc: 1}
	case tunnelV6:
		l = &netlink.Ip6tnl{LinkAttrs: netlink.LinkAttrs{Name: name}, Proto: unix.IPPROTO_IPV6}
	default:
		return fmt.Errorf("create %s: not a tunnel this helper makes", name)
	}
	if err := k.h.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create %s: %w", name, ErrExists)
		}
		return fmt.Errorf("create %s (%s): %w", name, l.Type(), err)
	}
	return nil
}

func (k *Netlink) byName(name string) (netlink.Link, error) {
	l, err := k.h.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("%s: %w", name, ErrNoLink)
		}
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

func (k *Netlink) DeleteLink(name string) error {
	l, err := k.byName(name)
	if err != nil {
		return err
	}
	if err := k.h.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

func (k *Netlink) SetLinkUp(name string, up bool) error {
	l, err := k.byName(name)
	if err != nil {
		return err
	}
	if up {
		err = k.h.LinkSetUp(l)
	} else {
		err = k.h.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set %s up=%t: %w", name, up, err)
	}
	return nil
}

func (k *Netlink) Addrs() ([]Addr, error) {
	links, err := k.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var as []netlink.Addr
	for range dumpRetries {
		if as, err = k.h.AddrList(nil, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := make([]Addr, 0, len(as))
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, Addr{Link: names[a.LinkIndex], Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
	}
	return out, nil
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func (k *Netlink) AddAddr(link string, a netip.Addr) error {
	l, err := k.byName(link)
	if err != nil {
		return err
	}
	na := &netlink.Addr{IPNet: hostNet(a)}
	if a.Is6() {
		// The address is the VIP that the director also holds: duplicate
		// address detection would find the director and never let the
		// real server use it.
		na.Flags = unix.IFA_F_NODAD
	}
	if err := k.h.AddrAdd(l, na); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to %s: %w", a, link, ErrExists)
		}
		return fmt.Errorf("add %s to %s: %w", a, link, err)
	}
	return nil
}

func (k *Netlink) DelAddr(link string, a netip.Addr) error {
	l, err := k.byName(link)
	if err != nil {
		return err
	}
	if err := k.h.AddrDel(l, &netlink.Addr{IPNet: hostNet(a)}); err != nil {
		return fmt.Errorf("remove %s from %s: %w", a, link, err)
	}
	return nil
}

func (k *Netlink) DefaultRouteLink() (string, error) {
	rs, err := k.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, r := range rs {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex == 0 {
			continue
		}
		l, err := k.h.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("default route's link: %w", err)
		}
		return l.Attrs().Name, nil
	}
	return "", nil
}
