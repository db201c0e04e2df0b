package failover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pingConn is the part of an ICMP socket the Pinger uses, so that the
// matching of replies is tested without one.
type pingConn interface {
	WriteTo(b []byte, dst net.Addr) (int, error)
	ReadFrom(b []byte) (int, net.Addr, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// pingListen opens the ICMP socket of one family.
type pingListen func(v6 bool) (pingConn, error)

// Pinger sends ICMP echo requests to the ping nodes and reports how many
// answered.
type Pinger struct {
	fams  []*pingFamily
	total int

	// One Probe at a time: a probe takes every reply to its sequence
	// number off the sockets.
	mu  sync.Mutex
	id  uint16
	seq uint16
}

// pingFamily is one socket and the nodes reached through it.
type pingFamily struct {
	conn      pingConn
	proto     int // for icmp.ParseMessage
	request   icmp.Type
	reply     icmp.Type
	nodes     []netip.Addr
	buf       []byte
	delivered map[netip.Addr]bool // sent to in this probe, without zones
}

// pingPayload makes our requests recognisable in a capture.
var pingPayload = []byte("director ping node probe")

// NewPinger opens a raw ICMP socket for each address family among nodes
// (which needs CAP_NET_RAW). With no nodes it opens nothing, and every
// Probe reports 0 of 0. A link-local IPv6 node needs its zone
// (fe80::1%eth0).
func NewPinger(nodes []netip.Addr) (*Pinger, error) {
	return newPinger(nodes, pingListenRaw)
}

func newPinger(nodes []netip.Addr, listen pingListen) (*Pinger, error) {
	if len(nodes) > 255 {
		return nil, fmt.Errorf("ping nodes: %d, at most 255", len(nodes))
	}
	p := &Pinger{id: uint16(rand.N(1 << 16)), seq: uint16(rand.N(1 << 16))}
	var v4, v6 []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range nodes {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("ping node %v: not a unicast address", a)
		}
		if seen[a.WithZone("")] {
			return nil, fmt.Errorf("ping node %v listed twice", a)
		}
		seen[a.WithZone("")] = true
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	p.total = len(v4) + len(v6)
	for _, f := range []struct {
		v6    bool
		nodes []netip.Addr
	}{{false, v4}, {true, v6}} {
		if len(f.nodes) == 0 {
			continue
		}
		c, err := listen(f.v6)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("ping nodes: %w", err)
		}
		fam := &pingFamily{conn: c, proto: 1, request: ipv4.ICMPTypeEcho, reply: ipv4.ICMPTypeEchoReply,
			nodes: f.nodes, buf: make([]byte, 1500)}
		if f.v6 {
			fam.proto, fam.request, fam.reply = 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
		}
		p.fams = append(p.fams, fam)
	}
	return p, nil
}

// pingListenRaw opens a raw ICMP socket that only hears echo replies:
// a raw socket gets a copy of every ICMP message the host receives.
func pingListenRaw(v6 bool) (pingConn, error) {
	if v6 {
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return nil, err
		}
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		if err := c.IPv6PacketConn().SetICMPFilter(&f); err != nil {
			c.Close()
			return nil, fmt.Errorf("ICMPv6 filter: %w", err)
		}
		return c, nil
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	var f ipv4.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv4.ICMPTypeEchoReply)
	if err := c.IPv4PacketConn().SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("ICMP filter: %w", err)
	}
	return c, nil
}

// Total is the number of ping nodes.
func (p *Pinger) Total() int { return p.total }

// pingLongAgo is a deadline in the past: it ends a pending read.
var pingLongAgo = time.Unix(1, 0)

// Probe sends one echo request to every node at once and counts the
// distinct nodes that answer before ctx ends; it returns as soon as all
// have. A node whose request cannot be sent counts as not reached. ctx
// must end (a deadline of a second or so suits a probe).
func (p *Pinger) Probe(ctx context.Context) (reached int) {
	if p.total == 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	deadline, _ := ctx.Deadline()
	for _, f := range p.fams {
		// An error here is the socket being closed, which the read
		// reports as well.
		_ = f.conn.SetReadDeadline(deadline)
	}
	// Set only after the deadline above, so it cannot be overwritten.
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		for _, f := range p.fams {
			_ = f.conn.SetReadDeadline(pingLongAgo)
		}
	})
	defer func() {
		if !stop() {
			<-woken // the next Probe must not have its deadline undone
		}
	}()

	counts := make([]int, len(p.fams))
	var wg sync.WaitGroup
	for i, f := range p.fams {
		f.send(p.id, p.seq)
		wg.Go(func() { counts[i] = f.collect(p.id, p.seq) })
	}
	wg.Wait()
	for _, n := range counts {
		reached += n
	}
	return reached
}

// send sends the echo requests and notes which nodes got one.
func (f *pingFamily) send(id, seq uint16) {
	f.delivered = map[netip.Addr]bool{}
	m := icmp.Message{Type: f.request, Body: &icmp.Echo{ID: int(id), Seq: int(seq), Data: pingPayload}}
	// The kernel fills in an ICMPv6 checksum; Marshal computes ICMPv4's.
	b, err := m.Marshal(nil)
	if err != nil {
		return // cannot happen: the message is ours
	}
	for _, a := range f.nodes {
		if _, err := f.conn.WriteTo(b, &net.IPAddr{IP: a.AsSlice(), Zone: a.Zone()}); err == nil {
			f.delivered[a.WithZone("")] = true
		}
	}
}

// collect reads replies until every node sent to has answered or the
// read deadline passes, and returns how many distinct nodes answered.
func (f *pingFamily) collect(id, seq uint16) int {
	answered := map[netip.Addr]bool{}
	for len(answered) < len(f.delivered) {
		n, from, err := f.conn.ReadFrom(f.buf)
		if err != nil {
			break // the deadline, ctx's end or Close
		}
		if a, ok := f.match(f.buf[:n], from, id, seq); ok {
			answered[a] = true
		}
	}
	return len(answered)
}

// match says which node b answers, if it is an echo reply to this
// probe from a node the probe sent to.
func (f *pingFamily) match(b []byte, from net.Addr, id, seq uint16) (netip.Addr, bool) {
	m, err := icmp.ParseMessage(f.proto, b)
	if err != nil || m.Type != f.reply {
		return netip.Addr{}, false
	}
	echo, ok := m.Body.(*icmp.Echo)
	if !ok || echo.ID != int(id) || echo.Seq != int(seq) {
		return netip.Addr{}, false
	}
	ipa, ok := from.(*net.IPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ipa.IP)
	if !ok {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, f.delivered[a]
}

// Close closes the sockets.
func (p *Pinger) Close() error {
	var errs []error
	for _, f := range p.fams {
		if err := f.conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ping nodes: %w", err)
	}
	return nil
}
