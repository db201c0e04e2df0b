package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/directorlb/director/config"
)

// sipPort is where a sip check goes when neither the check nor the real
// server names a port (a fwmark service).
const sipPort = 5060

// udpICMPSIPSpec maps the keys of the udp, icmp and sip checks.
func udpICMPSIPSpec(p *ProbeSpec, c config.Check) {
	switch c.Type {
	case config.CheckUDP:
		p.Send, p.Expect = c.Send, c.Expect
	case config.CheckICMP:
		// An echo has no port: servers differing only in port share
		// one probe of their address.
		p.Target = netip.AddrPortFrom(p.Target.Addr(), 0)
	case config.CheckSIP:
		if p.Target.Port() == 0 {
			p.Target = netip.AddrPortFrom(p.Target.Addr(), sipPort)
		}
	}
}

// udpICMPSIPProber builds the prober of a udp, icmp or sip spec.
func udpICMPSIPProber(p ProbeSpec) Prober {
	switch p.Type {
	case config.CheckUDP:
		return UDP{Send: p.Send, Expect: p.Expect}
	case config.CheckICMP:
		return ICMP{}
	default:
		return SIP{}
	}
}

// ErrPortUnreachable is a udp or sip probe answered by an ICMP port
// unreachable: nothing listens on the port.
var ErrPortUnreachable = errors.New("port unreachable (ICMP)")

// udpReadSmall is the buffer of a udp probe that only needs a reply:
// what is cut off a longer datagram is not looked at.
const udpReadSmall = 512

// UDP sends one datagram of Send (empty if Send is empty) to the target
// and needs a datagram back, containing Expect if set. The socket is
// connected, so an ICMP port unreachable in answer is seen by the next
// read, as ECONNREFUSED: a failure, like no reply within the timeout.
type UDP struct {
	Send   string
	Expect string
}

// Probe implements Prober.
func (u UDP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	conn, stop, err := dialUDP(ctx, target)
	if err != nil {
		return fail(ctx, start, err)
	}
	defer conn.Close()
	defer stop()
	if _, err := conn.Write([]byte(u.Send)); err != nil {
		return fail(ctx, start, udpError("send", err))
	}
	size := udpReadSmall
	if u.Expect != "" {
		size = maxRead
	}
	buf := make([]byte, size)
	n, err := conn.Read(buf)
	if err != nil {
		return fail(ctx, start, udpError("no reply", err))
	}
	if u.Expect != "" && !bytes.Contains(buf[:n], []byte(u.Expect)) {
		return fail(ctx, start, fmt.Errorf("expect %q: not in the reply of %d bytes", u.Expect, n))
	}
	return ok(start)
}

// dialUDP opens a UDP socket connected to target whose reads and writes
// end at ctx's deadline or when ctx is done, until stop is called.
func dialUDP(ctx context.Context, target netip.AddrPort) (conn *net.UDPConn, stop func() bool, err error) {
	if target.Port() == 0 {
		return nil, nil, errors.New("no port to send to: set the check's port")
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(target.Addr().Unmap(), target.Port()))
	conn, err = net.DialUDP("udp", nil, dst)
	if err != nil {
		return nil, nil, fmt.Errorf("udp: %w", err)
	}
	return conn, bound(ctx, conn), nil
}

// bound sets c's deadline to ctx's and ends c's waits when ctx is done,
// until the returned stop is called.
func bound(ctx context.Context, c interface{ SetDeadline(time.Time) error }) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}

// udpError names an ICMP port unreachable as such.
func udpError(what string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %w: %w", what, ErrPortUnreachable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
