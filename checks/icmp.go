package checks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ICMP sends an echo request to the target's address and needs the echo
// reply. It uses a ping socket (network "udp4"/"udp6", allowed to the
// groups in net.ipv4.ping_group_range, for IPv6 too) where it may: the
// kernel gives it only the replies to its own echo ID. Otherwise it uses a
// raw socket (CAP_NET_RAW), filtered to echo replies, whose ID it chooses.
// A reply counts only if it comes from the target and carries the
// request's ID, sequence number and data.
type ICMP struct{}

// icmpData is the length of an echo's random data: enough that a stray
// reply cannot match by chance.
const icmpData = 16

// ErrNoICMPSocket is a director allowed neither a ping socket nor a raw one.
var ErrNoICMPSocket = errors.New("no ICMP socket: add directord's group to net.ipv4.ping_group_range or give it CAP_NET_RAW")

// Probe implements Prober.
func (ICMP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	addr := target.Addr().Unmap()
	if !addr.IsValid() {
		return fail(ctx, start, fmt.Errorf("icmp: invalid address %v", target))
	}
	v6 := addr.Is6()
	conn, raw, err := listenICMP(v6)
	if err != nil {
		return fail(ctx, start, err)
	}
	defer conn.Close()
	stop := bound(ctx, conn)
	defer stop()

	req := echo{ID: uint16(rand.Uint32()), Seq: uint16(rand.Uint32()), Data: make([]byte, icmpData)}
	for i := range req.Data {
		req.Data[i] = byte(rand.Uint32())
	}
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	// The checksum is the kernel's for IPv6 (it needs the addresses),
	// Marshal's for IPv4.
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(req.ID), Seq: int(req.Seq), Data: req.Data}}).Marshal(nil)
	if err != nil {
		return fail(ctx, start, fmt.Errorf("icmp: %w", err))
	}
	var dst net.Addr = &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if !raw {
		dst = &net.UDPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	}
	if _, err := conn.WriteTo(b, dst); err != nil {
		return fail(ctx, start, fmt.Errorf("icmp echo to %v: %w", addr, err))
	}
	buf := make([]byte, 1500)
	stray := 0
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if stray > 0 {
				err = fmt.Errorf("%w (%d other ICMP messages ignored)", err, stray)
			}
			return fail(ctx, start, fmt.Errorf("icmp echo to %v: no reply: %w", addr, err))
		}
		rep, perr := parseEchoReply(buf[:n], v6)
		// A ping socket's ID is the kernel's (it demultiplexes by it);
		// a raw socket sees every reply to every prober on the host.
		if perr != nil || !sameIP(from, addr) || rep.Seq != req.Seq ||
			raw && rep.ID != req.ID || !bytes.Equal(rep.Data, req.Data) {
			stray++
			continue
		}
		return ok(start)
	}
}

// listenICMP opens a ping socket, or a raw one where ping sockets are not
// allowed; raw reports which.
func listenICMP(v6 bool) (conn *icmp.PacketConn, raw bool, err error) {
	ping, rawNet, wildcard := "udp4", "ip4:icmp", "0.0.0.0"
	if v6 {
		ping, rawNet, wildcard = "udp6", "ip6:ipv6-icmp", "::"
	}
	conn, perr := icmp.ListenPacket(ping, wildcard)
	if perr == nil {
		return conn, false, nil
	}
	conn, rerr := icmp.ListenPacket(rawNet, wildcard)
	if rerr != nil {
		return nil, false, fmt.Errorf("%w (ping socket: %w; raw socket: %w)", ErrNoICMPSocket, perr, rerr)
	}
	// Wake up for echo replies only, not for every ICMP message the
	// host receives.
	if v6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		err = conn.IPv6PacketConn().SetICMPFilter(&f)
	} else {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		err = conn.IPv4PacketConn().SetICMPFilter(&f)
	}
	if err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("icmp filter: %w", err)
	}
	return conn, true, nil
}

// sameIP reports whether from (an *net.IPAddr or *net.UDPAddr) is addr.
func sameIP(from net.Addr, addr netip.Addr) bool {
	var ip net.IP
	switch a := from.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return false
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == addr.WithZone("")
}

// echo is the part of an echo message a probe compares.
type echo struct {
	ID, Seq uint16
	Data    []byte
}

// parseEchoReply reads an ICMP (v6: ICMPv6) echo reply, without IP header,
// as the sockets above deliver it. Anything else is an error: the caller
// skips it. Data aliases b.
func parseEchoReply(b []byte, v6 bool) (echo, error) {
	if len(b) < 8 {
		return echo{}, fmt.Errorf("icmp: %d bytes, shorter than an echo header", len(b))
	}
	want := byte(ipv4.ICMPTypeEchoReply)
	if v6 {
		want = byte(ipv6.ICMPTypeEchoReply)
	}
	if b[0] != want || b[1] != 0 {
		return echo{}, fmt.Errorf("icmp: type %d code %d, not an echo reply", b[0], b[1])
	}
	return echo{ID: binary.BigEndian.Uint16(b[4:6]), Seq: binary.BigEndian.Uint16(b[6:8]), Data: b[8:]}, nil
}
