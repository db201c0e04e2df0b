package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/directorlb/director/mcast"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// udpLink is a heartbeat path over UDP, to one peer or to a multicast
// group. Its socket is bound to the port on the wildcard address of its
// family and to its interface (SO_BINDTODEVICE), so links on different
// interfaces share a port, as heartbeat's links all use 694.
type udpLink struct {
	name string
	conn *net.UDPConn
	dst  netip.AddrPort // where Send goes
	// A unicast link takes frames from peer only; a multicast link takes
	// frames sent to its group only (p4 or p6 reads the destination).
	peer netip.Addr
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

// OpenUnicast opens a link that sends to peer:port from iface and
// receives, on port, frames from peer only: others are dropped.
func OpenUnicast(iface string, port uint16, peer netip.Addr) (Link, error) {
	if port == 0 {
		return nil, fmt.Errorf("udp link on %s: port 0", iface)
	}
	return openUnicast(iface, port, netip.AddrPortFrom(peer, port))
}

// openUnicast binds port and sends to dst: on a host the two ports
// differ, so that two links can talk over loopback in a test.
func openUnicast(iface string, port uint16, dst netip.AddrPort) (*udpLink, error) {
	peer := dst.Addr().Unmap()
	name := "udp " + iface + " " + peer.WithZone("").String()
	if !peer.IsValid() || peer.IsUnspecified() || peer.IsMulticast() {
		return nil, fmt.Errorf("%s: peer must be a unicast address", name)
	}
	if _, err := net.InterfaceByName(iface); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if peer.Is6() && peer.IsLinkLocalUnicast() && peer.Zone() == "" {
		peer = peer.WithZone(iface)
	}
	conn, err := udpListen(iface, peer.Is6(), port)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &udpLink{name: name, conn: conn, dst: netip.AddrPortFrom(peer, dst.Port()), peer: peer.WithZone("")}, nil
}

// OpenMulticast opens a link that sends to group:port on iface and
// receives what is sent there, except its own frames: multicast
// loopback is off, and the TTL or hop limit is 1, so frames stay on the
// segment. A link-local IPv6 group (ff02::/16) is scoped to iface.
func OpenMulticast(iface string, port uint16, group netip.Addr) (Link, error) {
	group = group.Unmap().WithZone("")
	name := "multicast " + iface + " " + group.String()
	if !group.IsMulticast() {
		return nil, fmt.Errorf("%s: not a multicast group", name)
	}
	if port == 0 {
		return nil, fmt.Errorf("%s: port 0", name)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	conn, err := udpListen(iface, group.Is6(), port)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l := &udpLink{name: name, conn: conn, dst: netip.AddrPortFrom(group, port)}
	gaddr := &net.UDPAddr{IP: group.AsSlice()}
	if group.Is4() {
		l.p4 = ipv4.NewPacketConn(conn)
		err = errors.Join(
			l.p4.JoinGroup(ifi, gaddr),
			mcast.SetSend(conn, ifi, false, 1),
			l.p4.SetControlMessage(ipv4.FlagDst, true),
		)
	} else {
		if group.IsLinkLocalMulticast() || group.IsInterfaceLocalMulticast() {
			l.dst = netip.AddrPortFrom(group.WithZone(iface), port)
		}
		l.p6 = ipv6.NewPacketConn(conn)
		err = errors.Join(
			l.p6.JoinGroup(ifi, gaddr),
			mcast.SetSend(conn, ifi, true, 1),
			l.p6.SetControlMessage(ipv6.FlagDst, true),
		)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// udpListen opens a UDP socket on the wildcard address and port, bound
// to iface. The socket options must precede bind: the port is only
// shared between sockets bound to different devices.
func udpListen(iface string, v6 bool, port uint16) (*net.UDPConn, error) {
	network, addr := "udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	if v6 {
		// udp6 also makes the socket IPv6-only, so an IPv4 link can
		// have the same port on the same interface.
		network, addr = "udp6", netip.AddrPortFrom(netip.IPv6Unspecified(), port)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = udpSockopts(int(fd), iface, v6) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func udpSockopts(fd int, iface string, v6 bool) error {
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface); err != nil {
		return os.NewSyscallError("setsockopt SO_BINDTODEVICE", err)
	}
	// Without these, a socket bound to the wildcard address receives the
	// traffic of every group any socket on the host joined.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
		return os.NewSyscallError("setsockopt IP_MULTICAST_ALL", err)
	}
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0); err != nil {
			return os.NewSyscallError("setsockopt IPV6_MULTICAST_ALL", err)
		}
	}
	return nil
}

func (l *udpLink) Name() string { return l.name }

func (l *udpLink) Send(frame []byte) error {
	if _, err := l.conn.WriteToUDPAddrPort(frame, l.dst); err != nil {
		return fmt.Errorf("%s: send: %w", l.name, err)
	}
	return nil
}

func (l *udpLink) Recv(buf []byte) (int, error) {
	for {
		n, ok, err := l.recv(buf)
		if err != nil {
			return 0, fmt.Errorf("%s: receive: %w", l.name, err)
		}
		if ok {
			return n, nil
		}
	}
}

// recv reads one datagram and says whether it belongs to this link.
func (l *udpLink) recv(buf []byte) (int, bool, error) {
	switch {
	case l.p4 != nil:
		n, cm, _, err := l.p4.ReadFrom(buf)
		if err != nil {
			return 0, false, err
		}
		return n, cm != nil && udpAddrIs(cm.Dst, l.dst.Addr()), nil
	case l.p6 != nil:
		n, cm, _, err := l.p6.ReadFrom(buf)
		if err != nil {
			return 0, false, err
		}
		return n, cm != nil && udpAddrIs(cm.Dst, l.dst.Addr()), nil
	}
	n, src, err := l.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, false, err
	}
	return n, src.Addr().Unmap().WithZone("") == l.peer, nil
}

func udpAddrIs(ip net.IP, want netip.Addr) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && a.Unmap() == want.WithZone("")
}

func (l *udpLink) Close() error {
	if err := l.conn.Close(); err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	return nil
}
