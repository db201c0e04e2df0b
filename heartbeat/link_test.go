package heartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// linkRecvResult is one Recv's outcome, delivered on a channel so a
// test can bound how long it waits.
type linkRecvResult struct {
	frame []byte
	err   error
}

// linkRecvAsync runs one Recv in the background.
func linkRecvAsync(l Link, size int) <-chan linkRecvResult {
	ch := make(chan linkRecvResult, 1)
	go func() {
		buf := make([]byte, size)
		n, err := l.Recv(buf)
		ch <- linkRecvResult{buf[:n], err}
	}()
	return ch
}

func linkWait(t *testing.T, ch <-chan linkRecvResult) linkRecvResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10s")
		return linkRecvResult{}
	}
}

func linkExpect(t *testing.T, l Link, want []byte) {
	t.Helper()
	r := linkWait(t, linkRecvAsync(l, serialMaxFrame))
	if r.err != nil {
		t.Fatalf("%s: Recv: %v", l.Name(), r.err)
	}
	if !bytes.Equal(r.frame, want) {
		t.Fatalf("%s: received %q, want %q", l.Name(), r.frame, want)
	}
}

// linkCloseUnblocks checks that Close ends a pending Recv with
// net.ErrClosed, whether Recv was already blocked or not yet started.
func linkCloseUnblocks(t *testing.T, l Link) {
	t.Helper()
	ch := linkRecvAsync(l, MaxFrameSize)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := linkWait(t, ch); !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Recv after Close: %q, %v; want net.ErrClosed", r.frame, r.err)
	}
}

// --- serial ---

// openPty opens a pseudo-terminal's master, unlocked, and returns it with
// its slave's path.
func openPty(t *testing.T) (*os.File, string) {
	t.Helper()
	mf, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	rc, err := mf.SyscallConn()
	if err != nil {
		mf.Close()
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ierr != nil {
		mf.Close()
		t.Fatalf("unlock pty: %v %v", err, ierr)
	}
	return mf, fmt.Sprintf("/dev/pts/%d", n)
}

// serialTestPair opens a pseudo-terminal and returns a link on each
// end: OpenSerial on the slave (/dev/pts/N), newSerialLink on the
// master.
func serialTestPair(t *testing.T) (slave, master *serialLink) {
	t.Helper()
	mf, path := openPty(t)
	m, err := newSerialLink("serial ptmx", mf)
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	sl, err := OpenSerial(path)
	if err != nil {
		t.Fatalf("OpenSerial(%s): %v", path, err)
	}
	t.Cleanup(func() { sl.Close() })
	if got, want := sl.Name(), "serial "+path; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	return sl.(*serialLink), m
}

// serialAwkwardFrame holds every byte value, so the line must be raw:
// XON/XOFF, ^C, ^D, CR, LF, DEL and the sync bytes themselves.
func serialAwkwardFrame(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	copy(b, []byte{serialSync0, serialSync1, 0x11, 0x13, 0x03, 0x04, '\r', '\n', 0x7f, serialSync0})
	return b
}

func TestSerialLinkBothWays(t *testing.T) {
	slave, master := serialTestPair(t)
	frames := [][]byte{
		[]byte("hello"),
		serialAwkwardFrame(300),
		serialAwkwardFrame(serialMaxFrame),
		{serialSync0},
	}
	for _, dir := range []struct{ from, to Link }{{slave, master}, {master, slave}} {
		for _, f := range frames {
			// Receive while sending: a frame may exceed the tty's buffer.
			ch := linkRecvAsync(dir.to, serialMaxFrame)
			if err := dir.from.Send(f); err != nil {
				t.Fatalf("%s: Send: %v", dir.from.Name(), err)
			}
			r := linkWait(t, ch)
			if r.err != nil || !bytes.Equal(r.frame, f) {
				t.Fatalf("%s -> %s: got %x (%v), want %x", dir.from.Name(), dir.to.Name(), r.frame, r.err, f)
			}
		}
	}
}

func TestSerialLinkRefusesFrameSizes(t *testing.T) {
	slave, _ := serialTestPair(t)
	for _, n := range []int{0, serialMaxFrame + 1} {
		if err := slave.Send(make([]byte, n)); err == nil {
			t.Errorf("Send of %d bytes accepted", n)
		}
	}
}

func TestSerialLinkShortBuffer(t *testing.T) {
	slave, master := serialTestPair(t)
	if err := master.Send([]byte("a longer frame")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := slave.Recv(buf); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("Recv into a short buffer: %v, want io.ErrShortBuffer", err)
	}
	// The frame was consumed; the next one arrives whole.
	if err := master.Send([]byte("next")); err != nil {
		t.Fatal(err)
	}
	linkExpect(t, slave, []byte("next"))
}

// serialHeader builds a header announcing n bytes, with the complement
// given (the right one is ^n).
func serialHeader(n, complement uint16) []byte {
	b := []byte{serialSync0, serialSync1}
	b = binary.BigEndian.AppendUint16(b, n)
	return binary.BigEndian.AppendUint16(b, complement)
}

// TestSerialLinkResyncs writes junk straight onto the line, then a good
// frame: the reader's first frame is the good one.
func TestSerialLinkResyncs(t *testing.T) {
	good := []byte("the good frame")
	corrupt := func(i int) []byte {
		b := serialEncode([]byte("a frame damaged in transit"))
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name string
		junk []byte
	}{
		{"noise", []byte("\x00\xff line noise \x13\x11")},
		{"lone sync bytes", []byte{serialSync0, 0, serialSync1, serialSync0, serialSync0}},
		{"sync, bad complement", serialHeader(10, 10)},
		{"sync, length 0", serialHeader(0, 0xffff)},
		{"sync, length over the maximum", serialHeader(serialMaxFrame+1, ^uint16(serialMaxFrame+1))},
		{"bad CRC", corrupt(len(corrupt(0)) - 1)},
		{"flipped frame byte", corrupt(serialHeaderLen + 3)},
		{"flipped length", corrupt(3)},
		{"frame inside a false header", append(serialHeader(5, ^uint16(5)), serialEncode([]byte("x"))[:3]...)},
		// The sender gave up mid-frame: the header announces more bytes
		// than ever come. The reader gives up after serialFrameGap.
		{"truncated frame", serialEncode(serialAwkwardFrame(200))[:40]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slave, master := serialTestPair(t)
			if _, err := master.f.Write(tt.junk); err != nil {
				t.Fatal(err)
			}
			if err := master.Send(good); err != nil {
				t.Fatal(err)
			}
			linkExpect(t, slave, good)
		})
	}
}

func TestSerialLinkCloseUnblocksRecv(t *testing.T) {
	slave, master := serialTestPair(t)
	linkCloseUnblocks(t, slave)
	linkCloseUnblocks(t, master)
	if err := slave.Send([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want net.ErrClosed", err)
	}
}

func TestSerialDeframerSplitReads(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i := range 20 {
		f := serialAwkwardFrame(1 + i*37%serialMaxFrame)
		want = append(want, f)
		stream = append(stream, serialEncode(f)...)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var d serialDeframer
	var got [][]byte
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(100))
		d.feed(stream[:n])
		stream = stream[n:]
		for {
			f, ok := d.next()
			if !ok {
				break
			}
			got = append(got, append([]byte(nil), f...))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames out of %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// FuzzSerialDeframe: whatever noise precedes them, two copies of a
// full-size frame end the stream and the last frame out is that frame.
// A false frame found in the noise (its CRC would have to match) can
// reach at most a full frame's length past its start, so never past the
// second copy's sync.
func FuzzSerialDeframe(f *testing.F) {
	f.Add([]byte{}, uint8(7))
	f.Add(serialEncode([]byte("hello")), uint8(3))
	f.Add(append(serialHeader(100, ^uint16(100)), "short"...), uint8(1))
	f.Add(corruptedSerial(), uint8(50))
	big := make([]byte, serialMaxFrame)
	for i := range big {
		big[i] = byte(i%200) + 1 // no sync byte inside
	}
	packet := serialEncode(big)
	if bytes.Contains(packet[1:], serialSync) {
		f.Fatal("test frame holds a sync inside")
	}
	f.Fuzz(func(t *testing.T, noise []byte, chunk uint8) {
		stream := append(append(append([]byte(nil), noise...), packet...), packet...)
		step := int(chunk) + 1
		var d serialDeframer
		var last []byte
		for len(stream) > 0 {
			n := min(len(stream), step)
			d.feed(stream[:n])
			stream = stream[n:]
			for {
				fr, ok := d.next()
				if !ok {
					break
				}
				if len(fr) == 0 || len(fr) > serialMaxFrame {
					t.Fatalf("frame of %d bytes", len(fr))
				}
				last = append(last[:0], fr...)
			}
			if len(d.buf) > serialHeaderLen+serialMaxFrame+serialTrailerLen+step {
				t.Fatalf("deframer holds %d bytes", len(d.buf))
			}
		}
		if !bytes.Equal(last, big) {
			t.Fatalf("last frame out is %d bytes, not the full-size frame", len(last))
		}
	})
}

func corruptedSerial() []byte {
	b := serialEncode([]byte("corrupted"))
	b[len(b)-2] ^= 1
	return b
}

// --- UDP ---

// udpFreePort finds a port free on loopback for now.
func udpFreePort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// udpLoopbackPair opens two unicast links on lo that talk to each other
// on two ports.
func udpLoopbackPair(t *testing.T, addr netip.Addr) (a, b *udpLink) {
	t.Helper()
	pa, pb := udpFreePort(t), udpFreePort(t)
	a, err := openUnicast("lo", pa, netip.AddrPortFrom(addr, pb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = openUnicast("lo", pb, netip.AddrPortFrom(addr, pa))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

func TestUnicastLinkLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			ip := netip.MustParseAddr(addr)
			if ip.Is6() {
				if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			a, b := udpLoopbackPair(t, ip)
			if want := "udp lo " + addr; a.Name() != want {
				t.Errorf("Name() = %q, want %q", a.Name(), want)
			}
			frame := serialAwkwardFrame(MaxFrameSize)
			if err := a.Send(frame); err != nil {
				t.Fatal(err)
			}
			linkExpect(t, b, frame)
			if err := b.Send([]byte("back")); err != nil {
				t.Fatal(err)
			}
			linkExpect(t, a, []byte("back"))
		})
	}
}

// TestUnicastLinkDropsStrangers: a datagram from another address is
// dropped, so the peer's frame sent after it is the first one Recv
// returns. Loopback delivers in order, so had the stranger's datagram
// been kept it would have come first.
func TestUnicastLinkDropsStrangers(t *testing.T) {
	a, b := udpLoopbackPair(t, netip.MustParseAddr("127.0.0.1"))
	stranger, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	bAddr := b.conn.LocalAddr().(*net.UDPAddr)
	for range 3 {
		if _, err := stranger.WriteTo([]byte("from a stranger"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: bAddr.Port}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send([]byte("from the peer")); err != nil {
		t.Fatal(err)
	}
	linkExpect(t, b, []byte("from the peer"))
}

func TestUnicastLinkCloseUnblocksRecv(t *testing.T) {
	a, _ := udpLoopbackPair(t, netip.MustParseAddr("127.0.0.1"))
	linkCloseUnblocks(t, a)
}

// TestUDPLinksSharePortAcrossInterfaces: with SO_BINDTODEVICE set before
// bind, links on two interfaces use the same port; two on one do not.
func TestUDPLinksSharePortAcrossInterfaces(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	other := ""
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			other = i.Name
			break
		}
	}
	if other == "" {
		t.Skip("no interface besides loopback")
	}
	port := udpFreePort(t)
	peer := netip.MustParseAddr("127.0.0.1")
	l1, err := OpenUnicast("lo", port, peer)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := OpenUnicast(other, port, netip.MustParseAddr("192.0.2.99"))
	if err != nil {
		t.Fatalf("second link on %s, port %d: %v", other, port, err)
	}
	defer l2.Close()
	if l3, err := OpenUnicast("lo", port, peer); !errors.Is(err, syscall.EADDRINUSE) {
		if err == nil {
			l3.Close()
		}
		t.Fatalf("second link on lo, port %d: %v, want EADDRINUSE", port, err)
	}
}

func TestUDPLinkSocketOptions(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		a, _ := udpLoopbackPair(t, netip.MustParseAddr(addr))
		rc, err := a.conn.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var all, all6 int
		var dev string
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			all, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL)
			if gerr == nil {
				dev, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
			}
			if gerr == nil && a.peer.Is6() {
				all6, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL)
			}
		}); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if all != 0 || all6 != 0 || dev != "lo" {
			t.Errorf("%s: IP_MULTICAST_ALL %d, IPV6_MULTICAST_ALL %d, bound to %q; want 0, 0, lo", addr, all, all6, dev)
		}
	}
}

func TestOpenUDPLinkRefuses(t *testing.T) {
	port := udpFreePort(t)
	tests := []struct {
		name string
		open func() (Link, error)
	}{
		{"multicast peer", func() (Link, error) { return OpenUnicast("lo", port, netip.MustParseAddr("239.1.1.1")) }},
		{"unspecified peer", func() (Link, error) { return OpenUnicast("lo", port, netip.IPv4Unspecified()) }},
		{"no peer", func() (Link, error) { return OpenUnicast("lo", port, netip.Addr{}) }},
		{"unicast port 0", func() (Link, error) { return OpenUnicast("lo", 0, netip.MustParseAddr("127.0.0.1")) }},
		{"unknown interface", func() (Link, error) { return OpenUnicast("nosuch0", port, netip.MustParseAddr("127.0.0.1")) }},
		{"unicast group", func() (Link, error) { return OpenMulticast("lo", port, netip.MustParseAddr("10.1.1.1")) }},
		{"multicast port 0", func() (Link, error) { return OpenMulticast("lo", 0, netip.MustParseAddr("239.1.1.1")) }},
		{"multicast unknown interface", func() (Link, error) {
			return OpenMulticast("nosuch0", port, netip.MustParseAddr("ff02::12"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := tt.open(); err == nil {
				l.Close()
				t.Fatalf("opened %s", l.Name())
			}
		})
	}
}

// The guard's sender opens beside the link it stands for (its own port,
// the same interface and peer) and the peer's link takes its frames: a
// unicast link checks the sender's address, not its port. (The guard's
// line for the link is tested with the guard: vip.TestLinkLineRoundTrip.)
func TestLinkSenderBesideItsLink(t *testing.T) {
	a, b := udpLoopbackPair(t, netip.MustParseAddr("127.0.0.1"))
	spec := LinkSpec{Interface: "lo", Peer: netip.MustParseAddr("127.0.0.1"), Port: uint16(b.conn.LocalAddr().(*net.UDPAddr).Port)}
	s, err := spec.OpenSender()
	if err != nil {
		t.Fatalf("a sender beside the open link %s: %v", a.Name(), err)
	}
	defer s.Close()
	if err := s.Send([]byte("farewell")); err != nil {
		t.Fatal(err)
	}
	linkExpect(t, b, []byte("farewell"))
}
