//go:build lab

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/lab/topo"
)

// linksKey authenticates the frames the link tests send, so every frame
// received is also checked to be a heartbeat, whole.
var linksKey = []byte("links-test-key-0123456789")

// linksEnd is one open link and the frames it receives, in order.
type linksEnd struct {
	l  heartbeat.Link
	rx chan []byte
}

// linksOpen opens a link inside h and receives from it until cleanup.
func linksOpen(t *testing.T, h *topo.Host, open func() (heartbeat.Link, error)) *linksEnd {
	t.Helper()
	var l heartbeat.Link
	if err := h.Do(func() (err error) {
		l, err = open()
		return err
	}); err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	e := &linksEnd{l: l, rx: make(chan []byte, 64)}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, heartbeat.MaxFrameSize)
		for {
			n, err := l.Recv(buf)
			if err != nil {
				done <- err
				return
			}
			e.rx <- append([]byte(nil), buf[:n]...)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: %s: Recv ended with %v, want net.ErrClosed", h.Name, l.Name(), err)
		}
	})
	return e
}

// linksFrame is a heartbeat from node, distinct by seq.
func linksFrame(t *testing.T, node string, seq uint64) []byte {
	t.Helper()
	b, err := heartbeat.Encode(linksKey, heartbeat.Message{
		Kind: heartbeat.KindHeartbeat, Node: node, Role: heartbeat.RoleActive,
		Boot: 1, Seq: seq, Time: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func linksDescribe(frame []byte) string {
	m, err := heartbeat.Decode(linksKey, frame)
	if err != nil {
		return fmt.Sprintf("%x (%v)", frame, err)
	}
	return fmt.Sprintf("%s#%d", m.Node, m.Seq)
}

// linksNext waits for e's next frame, which must be want.
func linksNext(t *testing.T, e *linksEnd, want []byte) {
	t.Helper()
	select {
	case got := <-e.rx:
		if !bytes.Equal(got, want) {
			t.Fatalf("%s received %s, want %s", e.l.Name(), linksDescribe(got), linksDescribe(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s received nothing in 10s, want %s", e.l.Name(), linksDescribe(want))
	}
}

// linksPair is one link open on both hosts.
type linksPair struct{ a, b *linksEnd }

// TestHeartbeatLinks: two hosts on two switches, a unicast link over
// one and IPv4 and IPv6 multicast links over the other, all on port 694.
// Each frame arrives on the peer's matching link only, a sender never
// hears itself, and a cut cable stops its link alone.
func TestHeartbeatLinks(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	a, b := n.Host("a"), n.Host("b")
	sw1, sw2 := n.Switch("hb1"), n.Switch("hb2")
	aIf1, bIf1 := sw1.Plug(a, "10.71.1.1/24"), sw1.Plug(b, "10.71.1.2/24")
	aIf2, bIf2 := sw2.Plug(a, "10.71.2.1/24,fd71:2::1/64"), sw2.Plug(b, "10.71.2.2/24,fd71:2::2/64")
	a.WaitIPv6(aIf2, 5*time.Second)
	b.WaitIPv6(bIf2, 5*time.Second)

	const port = 694
	group4, group6 := netip.MustParseAddr("239.192.0.18"), netip.MustParseAddr("ff02::12")
	open := func(h *topo.Host, if1, if2, peer string) []*linksEnd {
		return []*linksEnd{
			linksOpen(t, h, func() (heartbeat.Link, error) {
				return heartbeat.OpenUnicast(if1, port, netip.MustParseAddr(peer))
			}),
			linksOpen(t, h, func() (heartbeat.Link, error) { return heartbeat.OpenMulticast(if2, port, group4) }),
			linksOpen(t, h, func() (heartbeat.Link, error) { return heartbeat.OpenMulticast(if2, port, group6) }),
		}
	}
	ae, be := open(a, aIf1, aIf2, "10.71.1.2"), open(b, bIf1, bIf2, "10.71.1.1")
	unicast := linksPair{ae[0], be[0]}
	pairs := []linksPair{unicast, {ae[1], be[1]}, {ae[2], be[2]}}
	for _, e := range ae {
		t.Logf("a: %s", e.l.Name())
	}
	if got, want := unicast.a.l.Name(), "udp "+aIf1+" 10.71.1.2"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if got, want := ae[1].l.Name(), "multicast "+aIf2+" 239.192.0.18"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}

	seq := uint64(0)
	send := func(from *linksEnd, node string) []byte {
		t.Helper()
		seq++
		f := linksFrame(t, node, seq)
		if err := from.l.Send(f); err != nil {
			t.Fatalf("%s: Send: %v", from.l.Name(), err)
		}
		return f
	}
	// A round sends one frame on every link from one side; each link on
	// the other side must receive exactly that frame next. Anything a
	// link heard beyond its own peer's frames in earlier rounds (its own
	// multicast, another link's traffic) would be received first.
	round := func(aToB bool) {
		t.Helper()
		for _, p := range pairs {
			from, to, node := p.a, p.b, "a"
			if !aToB {
				from, to, node = p.b, p.a, "b"
			}
			linksNext(t, to, send(from, node))
		}
	}
	round(true)
	round(false)
	round(true)
	round(false)

	// Cut a's cable on the unicast switch. Unicast frames sent either
	// way go nowhere, while the multicast links carry frames both ways:
	// after several of those round trips, nothing has come through on
	// unicast, though a unicast frame takes no longer than a multicast
	// one.
	sw1.SetCable(a, aIf1, false)
	lost := map[string]bool{}
	for range 3 {
		for _, dir := range []struct {
			from *linksEnd
			node string
		}{{unicast.a, "a"}, {unicast.b, "b"}} {
			seq++
			f := linksFrame(t, dir.node, seq)
			if err := dir.from.l.Send(f); err != nil {
				t.Logf("%s with the cable cut: %v", dir.from.l.Name(), err)
			}
			lost[string(f)] = true
		}
		for _, p := range pairs[1:] {
			linksNext(t, p.b, send(p.a, "a"))
			linksNext(t, p.a, send(p.b, "b"))
		}
	}
	for _, e := range []*linksEnd{unicast.a, unicast.b} {
		select {
		case got := <-e.rx:
			t.Fatalf("%s received %s with the cable cut", e.l.Name(), linksDescribe(got))
		default:
		}
	}

	// Restore the cable: unicast carries frames again. The carrier loss
	// flushed a's neighbour entry for b, so a's frames sent during the
	// cut may wait in the kernel's queue for the address to resolve and
	// go out once the cable is back (the receiver's ReplayGuard refuses
	// them as old); nothing else may arrive.
	sw1.SetCable(a, aIf1, true)
	for _, dir := range []struct {
		from, to *linksEnd
		node     string
	}{{unicast.a, unicast.b, "a"}, {unicast.b, unicast.a, "b"}} {
		sent := map[string]bool{}
		// classify says whether got is a frame sent after the repair,
		// and fails on a frame that is neither that nor a late one.
		classify := func(got []byte) bool {
			switch {
			case sent[string(got)]:
				return true
			case lost[string(got)]:
				t.Logf("%s received %s, sent during the cut, late", dir.to.l.Name(), linksDescribe(got))
				return false
			}
			t.Fatalf("%s received %s, not a frame of its peer's", dir.to.l.Name(), linksDescribe(got))
			return false
		}
		deadline := time.Now().Add(15 * time.Second)
		retry := time.NewTicker(200 * time.Millisecond)
		for back := false; !back; {
			sent[string(send(dir.from, dir.node))] = true
			select {
			case got := <-dir.to.rx:
				back = classify(got)
			case <-retry.C:
				if time.Now().After(deadline) {
					t.Fatalf("%s: nothing received in 15s after the cable was restored", dir.to.l.Name())
				}
			}
		}
		retry.Stop()
		t.Logf("%s: back after %d frames", dir.to.l.Name(), len(sent))
		// Take in the retries still in flight, up to one sent last.
		final := send(dir.from, dir.node)
		sent[string(final)] = true
		for {
			var got []byte
			select {
			case got = <-dir.to.rx:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s received nothing in 10s, want %s", dir.to.l.Name(), linksDescribe(final))
			}
			if classify(got) && bytes.Equal(got, final) {
				break
			}
		}
	}
	// In order again: each link's next frame is its peer's next.
	round(true)
	round(false)
}

// TestPingProber: a director with one ping node that answers and one
// that does not exist reports 1 of 2; with its cable cut, 0.
func TestPingProber(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	dir, gw := n.Host("dir"), n.Host("gw")
	lan := n.Switch("lan")
	dirIf := lan.Plug(dir, "10.72.0.2/24,fd72::2/64")
	lan.Plug(gw, "10.72.0.1/24,fd72::1/64")

	var pingers []*failover.Pinger
	for _, nodes := range [][]string{{"10.72.0.1", "10.72.0.99"}, {"fd72::1", "fd72::99"}} {
		var addrs []netip.Addr
		for _, a := range nodes {
			addrs = append(addrs, netip.MustParseAddr(a))
		}
		var p *failover.Pinger
		if err := dir.Do(func() (err error) {
			p, err = failover.NewPinger(addrs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		if p.Total() != 2 {
			t.Fatalf("Total() = %d, want 2", p.Total())
		}
		pingers = append(pingers, p)
	}
	probe := func(want int) {
		t.Helper()
		for i, p := range pingers {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			start := time.Now()
			got := p.Probe(ctx)
			cancel()
			t.Logf("pinger %d: %d of %d in %v", i, got, p.Total(), time.Since(start).Round(time.Millisecond))
			if got != want {
				t.Fatalf("pinger %d: %d of %d ping nodes answered, want %d", i, got, p.Total(), want)
			}
		}
	}
	probe(1)
	lan.SetCable(dir, dirIf, false)
	probe(0)
	lan.SetCable(dir, dirIf, true)
	probe(1)
}
