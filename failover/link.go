package failover

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Link is one heartbeat path. Send and Recv may be called from different
// goroutines; Close unblocks Recv (which then returns an error wrapping
// net.ErrClosed).
//
// A link carries opaque frames, at most MaxFrameSize bytes for a
// heartbeat; it neither authenticates nor orders them (see Decode and
// ReplayGuard). Recv returns whole frames only: a buffer of
// MaxFrameSize bytes is enough, and a longer frame does not fit and is
// not a heartbeat anyway.
type Link interface {
	// Name says which path this is, for logs and metrics:
	// "udp eth1 192.168.50.2", "multicast eth0 239.192.0.18",
	// "serial /dev/ttyS1".
	Name() string
	Send(frame []byte) error
	// Recv blocks until a frame arrives, copies it into buf and returns
	// its length.
	Recv(buf []byte) (int, error)
	Close() error
}

// LinkSpec names a heartbeat link: a serial device, or a UDP path on an
// interface to a peer or a multicast group, on Port.
type LinkSpec struct {
	Serial    string
	Interface string
	Peer      netip.Addr
	Multicast netip.Addr
	Port      uint16
}

// Open opens the link (OpenSerial, OpenMulticast or OpenUnicast).
func (s LinkSpec) Open() (Link, error) {
	switch {
	case s.Serial != "":
		return OpenSerial(s.Serial)
	case s.Multicast.IsValid():
		return OpenMulticast(s.Interface, s.Port, s.Multicast)
	}
	return OpenUnicast(s.Interface, s.Port, s.Peer)
}

// openSender opens a link that only sends where s's link does: a UDP
// one from a port of its own, so that it can be open beside the link
// itself (the peer checks the sender's address, or that a frame was sent
// to the group, never the port). A serial device is opened as it is.
func (s LinkSpec) openSender() (Link, error) {
	if s.Serial != "" {
		return OpenSerial(s.Serial)
	}
	dst := s.Peer
	if s.Multicast.IsValid() {
		dst = s.Multicast
	}
	dst = dst.Unmap().WithZone("")
	name := "udp sender " + s.Interface + " " + dst.String()
	ifi, err := net.InterfaceByName(s.Interface)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	conn, err := udpListen(s.Interface, dst.Is6(), 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if dst.Is6() && (dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast()) {
		dst = dst.WithZone(s.Interface)
	}
	if dst.IsMulticast() {
		if err := multicastSends(conn, ifi, dst.Is6(), 1); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return &udpLink{name: name, conn: conn, dst: netip.AddrPortFrom(dst, s.Port)}, nil
}

// line is s in the guard's protocol (Guard.Farewell).
func (s LinkSpec) line() (string, error) {
	switch {
	case s.Serial != "":
		if strings.ContainsAny(s.Serial, " \n") {
			return "", fmt.Errorf("serial device %q: a space or newline in its path", s.Serial)
		}
		return "link serial " + s.Serial, nil
	case s.Multicast.IsValid():
		return fmt.Sprintf("link multicast %s %s %d", s.Interface, s.Multicast, s.Port), nil
	}
	return fmt.Sprintf("link udp %s %s %d", s.Interface, s.Peer, s.Port), nil
}

// parseLinkLine reads a link line's fields after "link".
func parseLinkLine(f []string) (LinkSpec, error) {
	if len(f) == 2 && f[0] == "serial" {
		return LinkSpec{Serial: f[1]}, nil
	}
	if len(f) != 4 || (f[0] != "udp" && f[0] != "multicast") {
		return LinkSpec{}, errors.New("want serial PATH, udp IFACE PEER PORT or multicast IFACE GROUP PORT")
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil {
		return LinkSpec{}, err
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil || port == 0 {
		return LinkSpec{}, fmt.Errorf("port %q", f[3])
	}
	s := LinkSpec{Interface: f[1], Port: uint16(port)}
	if f[0] == "multicast" {
		s.Multicast = a
	} else {
		s.Peer = a
	}
	return s, nil
}
