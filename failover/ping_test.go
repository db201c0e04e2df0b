package failover

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pingPacket is one datagram a fake socket delivers.
type pingPacket struct {
	b    []byte
	from netip.Addr
}

// pingRequest is an echo request the fake socket was given.
type pingRequest struct {
	to      netip.Addr
	id, seq int
}

// fakePingConn stands in for a raw ICMP socket. answer decides, for
// each request written, what arrives (nil: nothing); sendErr fails the
// write to some nodes.
type fakePingConn struct {
	v6      bool
	answer  func(r pingRequest) []pingPacket
	sendErr map[netip.Addr]error

	mu       sync.Mutex
	requests []pingRequest
	inbox    []pingPacket
	deadline time.Time
	closed   bool
	wake     chan struct{} // closed and replaced when anything changes
	waiting  chan struct{} // receives when a read finds nothing to read
}

func newFakePingConn(v6 bool, answer func(pingRequest) []pingPacket) *fakePingConn {
	return &fakePingConn{v6: v6, answer: answer, wake: make(chan struct{}), waiting: make(chan struct{}, 1)}
}

func (c *fakePingConn) changed() {
	close(c.wake)
	c.wake = make(chan struct{})
}

func (c *fakePingConn) WriteTo(b []byte, dst net.Addr) (int, error) {
	ipa := dst.(*net.IPAddr)
	to, _ := netip.AddrFromSlice(ipa.IP)
	to = to.Unmap().WithZone(ipa.Zone)
	if err := c.sendErr[to]; err != nil {
		return 0, err
	}
	proto := 1
	if c.v6 {
		proto = 58
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return 0, err
	}
	echo := m.Body.(*icmp.Echo)
	r := pingRequest{to: to, id: echo.ID, seq: echo.Seq}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.requests = append(c.requests, r)
	if c.answer != nil {
		c.inbox = append(c.inbox, c.answer(r)...)
	}
	c.changed()
	return len(b), nil
}

func (c *fakePingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, nil, net.ErrClosed
		}
		dl, wake := c.deadline, c.wake
		if !dl.IsZero() && !time.Now().Before(dl) {
			c.mu.Unlock()
			return 0, nil, os.ErrDeadlineExceeded
		}
		if len(c.inbox) > 0 {
			p := c.inbox[0]
			c.inbox = c.inbox[1:]
			c.mu.Unlock()
			return copy(b, p.b), &net.IPAddr{IP: p.from.AsSlice(), Zone: p.from.Zone()}, nil
		}
		c.mu.Unlock()
		select {
		case c.waiting <- struct{}{}:
		default:
		}
		var timer <-chan time.Time
		if !dl.IsZero() {
			t := time.NewTimer(time.Until(dl))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-wake:
		case <-timer:
		}
	}
}

func (c *fakePingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	c.changed()
	return nil
}

func (c *fakePingConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.changed()
	return nil
}

func (c *fakePingConn) sent() []pingRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]pingRequest(nil), c.requests...)
}

// pingReply builds an ICMP message of the family of from.
func pingReply(from netip.Addr, typ icmp.Type, id, seq int) pingPacket {
	// Marshal fails only for a body it cannot encode; an Echo it can.
	b, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: pingPayload}}).Marshal(nil)
	return pingPacket{b: b, from: from}
}

// pingEcho answers every request correctly.
func pingEcho(r pingRequest) []pingPacket {
	typ := icmp.Type(ipv4.ICMPTypeEchoReply)
	if r.to.Is6() {
		typ = ipv6.ICMPTypeEchoReply
	}
	return []pingPacket{pingReply(r.to, typ, r.id, r.seq)}
}

// fakePinger builds a Pinger over fake sockets made by answer, and
// returns the sockets it opened by family.
func fakePinger(t *testing.T, nodes []string, answer func(pingRequest) []pingPacket) (*Pinger, map[bool]*fakePingConn) {
	t.Helper()
	conns := map[bool]*fakePingConn{}
	var addrs []netip.Addr
	for _, n := range nodes {
		addrs = append(addrs, netip.MustParseAddr(n))
	}
	p, err := newPinger(addrs, func(v6 bool) (pingConn, error) {
		c := newFakePingConn(v6, answer)
		conns[v6] = c
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, conns
}

func TestPingerAllAnswer(t *testing.T) {
	p, conns := fakePinger(t, []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}, pingEcho)
	if p.Total() != 3 || len(conns) != 2 {
		t.Fatalf("Total %d with %d sockets, want 3 with 2", p.Total(), len(conns))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got := p.Probe(ctx); got != 3 {
		t.Fatalf("Probe = %d, want 3", got)
	}
	if ctx.Err() != nil {
		t.Fatal("Probe waited for its context although every node answered")
	}
	// Each probe has a new sequence number, the same ID.
	first := conns[false].sent()[0]
	if got := p.Probe(ctx); got != 3 {
		t.Fatalf("second Probe = %d, want 3", got)
	}
	second := conns[false].sent()[2]
	if second.id != first.id || uint16(second.seq) != uint16(first.seq+1) {
		t.Fatalf("second probe id %d seq %d after id %d seq %d", second.id, second.seq, first.id, first.seq)
	}
}

func TestPingerOpensOnlyFamiliesNeeded(t *testing.T) {
	_, conns := fakePinger(t, []string{"192.0.2.1"}, nil)
	if _, ok := conns[true]; ok || conns[false] == nil {
		t.Fatalf("sockets opened: %v, want IPv4 only", conns)
	}
	_, conns = fakePinger(t, []string{"2001:db8::1"}, nil)
	if _, ok := conns[false]; ok || conns[true] == nil {
		t.Fatalf("sockets opened: %v, want IPv6 only", conns)
	}
}

func TestPingerNoNodes(t *testing.T) {
	p, conns := fakePinger(t, nil, nil)
	if len(conns) != 0 {
		t.Fatalf("opened %d sockets for no nodes", len(conns))
	}
	if got := p.Probe(context.Background()); got != 0 || p.Total() != 0 {
		t.Fatalf("%d of %d, want 0 of 0", got, p.Total())
	}
	// The real constructor opens nothing either, so needs no privilege.
	real, err := NewPinger(nil)
	if err != nil || real.Total() != 0 || real.Close() != nil {
		t.Fatalf("NewPinger(nil): %v", err)
	}
}

// TestPingerIgnoresOtherICMP: only 192.0.2.1 answers this probe
// correctly; everything else that arrives must not count.
func TestPingerIgnoresOtherICMP(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	stranger := netip.MustParseAddr("198.51.100.7")
	v6node := netip.MustParseAddr("2001:db8::1")
	p, _ := fakePinger(t, []string{a.String(), b.String(), v6node.String()}, func(r pingRequest) []pingPacket {
		switch r.to {
		case a:
			return []pingPacket{
				pingReply(a, ipv4.ICMPTypeEchoReply, r.id, r.seq),
				pingReply(a, ipv4.ICMPTypeEchoReply, r.id, r.seq), // a duplicate counts once
			}
		case b:
			return []pingPacket{
				pingReply(b, ipv4.ICMPTypeEchoReply, r.id+1, r.seq),      // another prober's
				pingReply(b, ipv4.ICMPTypeEchoReply, r.id, r.seq-1),      // an earlier probe's
				pingReply(b, ipv4.ICMPTypeEcho, r.id, r.seq),             // a request, not a reply
				pingReply(b, ipv4.ICMPTypeDestinationUnreachable, 0, 0),  // not an echo at all
				pingReply(stranger, ipv4.ICMPTypeEchoReply, r.id, r.seq), // from a node we did not ask
				{b: []byte{0, 0}, from: b},                               // garbage
				pingReply(b, ipv6.ICMPTypeEchoReply, r.id, r.seq),        // the other family's type number
			}
		case v6node:
			return []pingPacket{
				pingReply(v6node, ipv6.ICMPTypeEchoRequest, r.id, r.seq),
				pingReply(v6node, ipv4.ICMPTypeEchoReply, r.id, r.seq), // type 0 is not ICMPv6's reply
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if got := p.Probe(ctx); got != 1 {
		t.Fatalf("Probe = %d, want 1", got)
	}
}

// TestPingerIgnoresLateReplies: replies to an earlier probe that arrive
// during this one do not count for it.
func TestPingerIgnoresLateReplies(t *testing.T) {
	node := netip.MustParseAddr("192.0.2.1")
	probes := 0
	p, _ := fakePinger(t, []string{node.String()}, func(r pingRequest) []pingPacket {
		probes++
		if probes == 1 {
			return nil // the first probe goes unanswered...
		}
		// ... and its answer comes during the second.
		return []pingPacket{pingReply(node, ipv4.ICMPTypeEchoReply, r.id, r.seq-1)}
	})
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if got := p.Probe(ctx); got != 0 {
			t.Fatalf("probe %d = %d, want 0", i+1, got)
		}
		cancel()
	}
}

// TestPingerSendFailure: a node that cannot be sent to is not reached,
// and the probe does not wait for it.
func TestPingerSendFailure(t *testing.T) {
	down := netip.MustParseAddr("192.0.2.9")
	var addrs []netip.Addr
	for _, n := range []string{"192.0.2.1", down.String()} {
		addrs = append(addrs, netip.MustParseAddr(n))
	}
	p, err := newPinger(addrs, func(v6 bool) (pingConn, error) {
		c := newFakePingConn(v6, pingEcho)
		c.sendErr = map[netip.Addr]error{down: syscall.ENETUNREACH}
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got := p.Probe(ctx); got != 1 || ctx.Err() != nil {
		t.Fatalf("Probe = %d (context %v), want 1 at once", got, ctx.Err())
	}
}

// TestPingerCancel: a context without a deadline ends the probe when it
// is cancelled, and the next probe still waits for its replies.
func TestPingerCancel(t *testing.T) {
	node := netip.MustParseAddr("192.0.2.1")
	answer := false
	p, conns := fakePinger(t, []string{node.String()}, func(r pingRequest) []pingPacket {
		if !answer {
			return nil
		}
		return pingEcho(r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- p.Probe(ctx) }()
	<-conns[false].waiting // Probe is reading, with nothing to read
	cancel()
	select {
	case got := <-done:
		if got != 0 {
			t.Fatalf("Probe = %d, want 0", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Probe did not return after its context was cancelled")
	}
	// The cancelled probe's past deadline must not leak into this one.
	answer = true
	if got := p.Probe(context.Background()); got != 1 {
		t.Fatalf("Probe after a cancelled one = %d, want 1", got)
	}
}

func TestPingerCloseEndsProbe(t *testing.T) {
	p, conns := fakePinger(t, []string{"192.0.2.1"}, nil)
	done := make(chan int, 1)
	go func() { done <- p.Probe(context.Background()) }()
	<-conns[false].waiting
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != 0 {
			t.Fatalf("Probe = %d, want 0", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Probe did not return after Close")
	}
}

func TestNewPingerRefuses(t *testing.T) {
	var many []netip.Addr
	for i := range 256 {
		many = append(many, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	tests := map[string][]netip.Addr{
		"invalid":     {{}},
		"unspecified": {netip.IPv4Unspecified()},
		"multicast":   {netip.MustParseAddr("ff02::1")},
		"duplicate":   {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1")},
		"too many":    many,
	}
	for name, nodes := range tests {
		opened := 0
		_, err := newPinger(nodes, func(v6 bool) (pingConn, error) {
			opened++
			return newFakePingConn(v6, nil), nil
		})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if opened != 0 {
			t.Errorf("%s: opened %d sockets before refusing", name, opened)
		}
	}
	if _, err := newPinger([]netip.Addr{netip.MustParseAddr("192.0.2.1")}, func(bool) (pingConn, error) {
		return nil, syscall.EPERM
	}); !errors.Is(err, syscall.EPERM) {
		t.Errorf("socket failure: %v, want EPERM", err)
	}
}

// TestPingerLoopback pings 127.0.0.1 and ::1 through real raw sockets.
func TestPingerLoopback(t *testing.T) {
	nodes := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	p, err := NewPinger(nodes)
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("no raw sockets: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got := p.Probe(ctx)
		cancel()
		if got != 2 {
			t.Fatalf("probe %d: %d of %d answered, want 2", i+1, got, p.Total())
		}
	}
}
