package vip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// VIPAnswer is a VIP that something on the network still answers for.
type VIPAnswer struct {
	VIP VIP
	MAC net.HardwareAddr
}

// ProbeVIPs asks the network whether anything still answers for the
// VIPs, with an ARP request per IPv4 VIP and a neighbour solicitation per
// IPv6 VIP, and returns those that are answered. A peer that fell silent
// may be stalled rather than dead, or dead with its kernel still holding
// the VIPs; taking them then would put them on the network twice. Every
// request goes out first, from the calling goroutine (and so from its
// network namespace), then the answers are awaited side by side, each
// for the whole time ctx allows: one after another, the later VIPs would
// get only what is left of it.
func ProbeVIPs(ctx context.Context, vips []VIP) ([]VIPAnswer, error) {
	answers := make([]*VIPAnswer, len(vips))
	errs := make([]error, len(vips))
	var wg sync.WaitGroup
	for i, v := range vips {
		var p *probe
		var err error
		if v.Prefix.Addr().Is4() {
			p, err = sendARP(ctx, v.Interface, v.Prefix.Addr())
		} else {
			p, err = sendNS(ctx, v.Interface, v.Prefix.Addr())
		}
		if err != nil {
			errs[i] = fmt.Errorf("probe vip %s: %w", v, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.close()
			mac, answered, err := p.await()
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("probe vip %s: %w", v, err)
			case answered:
				answers[i] = &VIPAnswer{VIP: v, MAC: mac}
			}
		}()
	}
	wg.Wait()
	var out []VIPAnswer
	for _, a := range answers {
		if a != nil {
			out = append(out, *a)
		}
	}
	return out, errors.Join(errs...)
}

// probe is a request sent, whose answer await reads.
type probe struct {
	await func() (net.HardwareAddr, bool, error)
	close func() error
}

// probeWait is how long a probe listens: what ctx allows when the probe
// starts, counted from when its request has gone out (on a loaded host
// opening the socket can take a good part of the time allowed).
func probeWait(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return time.Until(deadline)
	}
	return 100 * time.Millisecond
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// answerConn is a socket an answer is read from: reads that wait, until
// the probe's deadline, and the descriptor, to take what is queued.
type answerConn interface {
	ReadFrom([]byte) (int, net.Addr, error)
	SetReadDeadline(time.Time) error
	SyscallConn() (syscall.RawConn, error)
}

// awaitAnswer reads from c until answer accepts a message or c's read
// deadline passes. Then it takes, without waiting, whatever the kernel
// has queued: a reply that arrived in time is an answer even if this
// process, on a loaded host, reads it after the deadline. (Go refuses
// any read once the deadline has passed, so that last look is made on
// the descriptor itself.) Missing a reply would put the VIP on the
// network twice; seeing one late only delays the takeover.
func awaitAnswer(c answerConn, answer func([]byte) (net.HardwareAddr, bool)) (net.HardwareAddr, bool, error) {
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if isTimeout(err) {
			break
		}
		if err != nil {
			return nil, false, err
		}
		if mac, ok := answer(buf[:n]); ok {
			return mac, true, nil
		}
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, false, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, false, err
	}
	var mac net.HardwareAddr
	var found bool
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return true // nothing (more) queued: never wait
			case err != nil:
				rerr = err
				return true
			}
			if mac, found = answer(buf[:n]); found {
				return true
			}
		}
	})
	if err := cmp.Or(err, rerr); err != nil {
		return nil, false, fmt.Errorf("read the queued answers: %w", err)
	}
	return mac, found, nil
}

// sendARP sends "who has ip" on the interface; its await returns the MAC
// that answers before the wait ends.
func sendARP(ctx context.Context, iface string, ip netip.Addr) (*probe, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	wait := probeWait(ctx)
	pc, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		return nil, err
	}
	c, err := arp.New(ifi, pc)
	if err == nil {
		err = c.Request(ip)
	}
	if err == nil {
		err = pc.SetReadDeadline(time.Now().Add(wait))
	}
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &probe{close: pc.Close, await: func() (net.HardwareAddr, bool, error) {
		return awaitAnswer(pc, func(b []byte) (net.HardwareAddr, bool) {
			var f ethernet.Frame
			if f.UnmarshalBinary(b) != nil || f.EtherType != ethernet.EtherTypeARP {
				return nil, false
			}
			var p arp.Packet
			if p.UnmarshalBinary(f.Payload) != nil || p.Operation != arp.OperationReply || p.SenderIP != ip {
				return nil, false
			}
			return p.SenderHardwareAddr, true
		})
	}}, nil
}

// sendNS sends a neighbour solicitation for ip from this host's
// link-local address, with its MAC, so that the holder answers at once,
// to it. Its await reports whether an advertisement for ip came before
// the wait ended, with the MAC it gave, if any. The socket is opened here
// rather than by ndp.Listen, whose connection hides its descriptor (see
// awaitAnswer).
func sendNS(ctx context.Context, iface string, ip netip.Addr) (*probe, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	wait := probeWait(ctx)
	src, err := linkLocal(ifi)
	if err != nil {
		return nil, err
	}
	// Zones by index: net resolves zone names through a cache shared by
	// the whole process, and so by every network namespace in it.
	zone := strconv.Itoa(ifi.Index)
	c, err := net.ListenIP("ip6:ipv6-icmp", &net.IPAddr{IP: src.AsSlice(), Zone: zone})
	if err != nil {
		return nil, err
	}
	snm, err := ndp.SolicitedNodeMulticast(ip)
	var msg []byte
	if err == nil {
		msg, err = ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: ip, Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr},
		}})
	}
	if err == nil {
		// RFC 4861: neighbour discovery is sent with hop limit 255 and
		// dropped by the receiver otherwise.
		err = ipv6.NewPacketConn(c).SetMulticastHopLimit(ndp.HopLimit)
	}
	if err == nil {
		_, err = c.WriteTo(msg, &net.IPAddr{IP: snm.AsSlice(), Zone: zone})
	}
	if err == nil {
		err = c.SetReadDeadline(time.Now().Add(wait))
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &probe{close: c.Close, await: func() (net.HardwareAddr, bool, error) {
		return awaitAnswer(c, func(b []byte) (net.HardwareAddr, bool) {
			m, err := ndp.ParseMessage(b)
			if err != nil {
				return nil, false // a message that does not parse is not an answer
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != ip {
				return nil, false
			}
			for _, o := range na.Options {
				if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
					return lla.Addr, true
				}
			}
			return nil, true
		})
	}}, nil
}

// errNoLinkLocal is an interface without a usable IPv6 link-local address.
var errNoLinkLocal = errors.New("no IPv6 link-local address")

// linkLocal returns ifi's IPv6 link-local address.
func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", ifi.Name, errNoLinkLocal)
}
