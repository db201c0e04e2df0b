package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// ErrNotAnnounceable is returned by an Announcer for an interface with no
// Ethernet link layer (loopback, tunnels): nobody there caches a hardware
// address that could point at the old director.
var ErrNotAnnounceable = errors.New("no ethernet link layer to announce on")

// linkAnnouncer announces a VIP the way a host taking over an address
// does: gratuitous ARP for IPv4, an unsolicited neighbour advertisement
// for IPv6. Neighbours that already have an entry for the address (those
// that talked to the old director) point it at this interface; the
// others, by default, ignore it and resolve on their next packet.
type linkAnnouncer struct{}

func (linkAnnouncer) Open(v VIP) (Announcement, error) {
	ifi, err := net.InterfaceByName(v.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", v.Interface, err)
	}
	if len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagBroadcast == 0 {
		return nil, fmt.Errorf("interface %s: %w", v.Interface, ErrNotAnnounceable)
	}
	addr := v.Prefix.Addr()
	if addr.Is4() {
		sock, err := openPacketSocket(ifi.Index)
		if err != nil {
			return nil, fmt.Errorf("arp socket on %s: %w", v.Interface, err)
		}
		return newARPAnnouncement(sock, ifi.HardwareAddr, addr)
	}
	// Bound to no address, so that an interface whose link-local address
	// is still tentative can announce at once; the source is set per
	// packet to the VIP itself, as the kernel does for its own addresses.
	conn, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return nil, fmt.Errorf("ndp socket on %s: %w", v.Interface, err)
	}
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := conn.SetICMPFilter(&none); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ndp socket filter on %s: %w", v.Interface, err)
	}
	return newNDPAnnouncement(conn, ifi, addr, ipv6Forwarding(v.Interface)), nil
}

// ipv6Forwarding tells whether the interface forwards IPv6, i.e. whether
// this host is a router there. An advertisement must say so truly: one
// with the router flag clear makes a neighbour drop this host from its
// default routers, which would cut off real servers routed through a
// floating gateway address.
func ipv6Forwarding(ifName string) bool { return forwarding("ipv6", ifName) }

// forwarding tells whether the interface forwards the family (ipv4 or
// ipv6).
func forwarding(family, ifName string) bool {
	b, err := os.ReadFile(filepath.Join("/proc/sys/net", family, "conf", ifName, "forwarding"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Forwarded tells whether a packet for one of vips that reaches this
// director once the VIP is gone is forwarded (its interface forwards the
// VIP's family), rather than dropped.
func Forwarded(vips []VIP) bool {
	for _, v := range vips {
		family := "ipv4"
		if v.Prefix.Addr().Is6() {
			family = "ipv6"
		}
		if forwarding(family, v.Interface) {
			return true
		}
	}
	return false
}

// frameWriter sends whole Ethernet frames out of one interface.
type frameWriter interface {
	WriteFrame(frame []byte) error
	Close() error
}

// arpAnnouncement sends a gratuitous ARP request (sender and target IP
// both the VIP, as keepalived and arping -U send) and a gratuitous reply
// (as arping -A sends, which some neighbours heed instead), both to
// broadcast.
type arpAnnouncement struct {
	w      frameWriter
	frames [][]byte
}

func newARPAnnouncement(w frameWriter, mac net.HardwareAddr, vip netip.Addr) (*arpAnnouncement, error) {
	if len(mac) != 6 || !vip.Is4() {
		w.Close()
		return nil, fmt.Errorf("gratuitous arp for %s from %s: %w", vip, mac, ErrNotAnnounceable)
	}
	var frames [][]byte
	for _, p := range []struct {
		op  arp.Operation
		tha net.HardwareAddr
	}{
		// RFC 5227 leaves a request's target hardware address zero.
		{arp.OperationRequest, make(net.HardwareAddr, 6)},
		// Linux takes a reply as gratuitous only if its target hardware
		// address is broadcast; then it overrides the entry at once.
		{arp.OperationReply, ethernet.Broadcast},
	} {
		b, err := gratuitousARPFrame(p.op, mac, p.tha, vip)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("gratuitous arp for %s: %w", vip, err)
		}
		frames = append(frames, b)
	}
	return &arpAnnouncement{w: w, frames: frames}, nil
}

// gratuitousARPFrame is an ARP packet from mac for vip about vip itself
// (sender and target IP both the VIP), to broadcast.
func gratuitousARPFrame(op arp.Operation, mac, tha net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(op, mac, vip, tha, vip)
	if err != nil {
		return nil, err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	return f.MarshalBinary()
}

func (a *arpAnnouncement) Send() error {
	for _, f := range a.frames {
		if err := a.w.WriteFrame(f); err != nil {
			return fmt.Errorf("gratuitous arp: %w", err)
		}
	}
	return nil
}

func (a *arpAnnouncement) Close() error { return a.w.Close() }

// packetSocket is an AF_PACKET socket that only sends. Opened with
// protocol 0 it is never handed a received frame, so nothing queues on
// it while it waits between announcements.
type packetSocket struct {
	fd      int
	ifIndex int
}

func openPacketSocket(ifIndex int) (*packetSocket, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	return &packetSocket{fd: fd, ifIndex: ifIndex}, nil
}

func (s *packetSocket) WriteFrame(frame []byte) error {
	if len(frame) < 14 {
		return fmt.Errorf("frame of %d bytes: too short", len(frame))
	}
	sa := &unix.SockaddrLinklayer{
		// The frame's own EtherType, kept in network byte order in
		// memory, as packet(7) wants it.
		Protocol: binary.NativeEndian.Uint16(frame[12:14]),
		Ifindex:  s.ifIndex,
		Halen:    6,
	}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(s.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("send on interface %d: %w", s.ifIndex, err)
	}
	return nil
}

func (s *packetSocket) Close() error { return unix.Close(s.fd) }

// ndpWriter is the part of *ndp.Conn an announcement uses.
type ndpWriter interface {
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	Close() error
}

// ndpAnnouncement sends an unsolicited neighbour advertisement to all
// nodes (RFC 4861 7.2.6): override set, so that neighbours replace the
// hardware address they hold; solicited clear, as nobody asked.
type ndpAnnouncement struct {
	conn ndpWriter
	na   *ndp.NeighborAdvertisement
	cm   *ipv6.ControlMessage
}

func newNDPAnnouncement(conn ndpWriter, ifi *net.Interface, vip netip.Addr, router bool) *ndpAnnouncement {
	return &ndpAnnouncement{
		conn: conn,
		na: &ndp.NeighborAdvertisement{
			Router:        router,
			Override:      true,
			TargetAddress: vip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
		},
		// Neighbours drop neighbour discovery with any other hop limit.
		cm: &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: vip.AsSlice(), IfIndex: ifi.Index},
	}
}

func (a *ndpAnnouncement) Send() error {
	if err := a.conn.WriteTo(a.na, a.cm, netip.IPv6LinkLocalAllNodes()); err != nil {
		return fmt.Errorf("unsolicited neighbour advertisement: %w", err)
	}
	return nil
}

func (a *ndpAnnouncement) Close() error { return a.conn.Close() }
