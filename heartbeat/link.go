package heartbeat

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/directorlb/director/mcast"
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

// Open opens the link (OpenSerial, OpenMulticast or OpenUnicast) as a
// Link that outlives a failing device: when receiving fails it backs
// off, then closes and reopens the device (see reopenLink). Its Recv
// returns an error only once it is closed, or for one frame too long for
// the buffer. log says when receiving starts failing and when frames
// arrive again; nil: slog.Default().
func (s LinkSpec) Open(log *slog.Logger) (Link, error) {
	if log == nil {
		log = slog.Default()
	}
	return newReopenLink(s.open, log)
}

// open opens the device or socket s names, once.
func (s LinkSpec) open() (Link, error) {
	switch {
	case s.Serial != "":
		return OpenSerial(s.Serial)
	case s.Multicast.IsValid():
		return OpenMulticast(s.Interface, s.Port, s.Multicast)
	}
	return OpenUnicast(s.Interface, s.Port, s.Peer)
}

// OpenSender opens a link that only sends where s's link does: a UDP
// one from a port of its own, so that it can be open beside the link
// itself (the peer checks the sender's address, or that a frame was sent
// to the group, never the port). A serial device is opened as it is.
// The VIP guard says a dead director's farewell through such links.
func (s LinkSpec) OpenSender() (Link, error) {
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
		if err := mcast.SetSend(conn, ifi, dst.Is6(), 1); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return &udpLink{name: name, conn: conn, dst: netip.AddrPortFrom(dst, s.Port)}, nil
}

// A device can fail for good under its reader: a serial line whose other
// end hung up fails every read at once, with EOF or EIO. The node reads
// again as soon as a receive fails (one bad frame says nothing of the
// next), so a link from LinkSpec.Open keeps such errors to itself: it
// waits between attempts, longer after each consecutive error, and
// closes and reopens the device, until a frame comes.
const (
	// recvBackoffMin doubles after each consecutive error, up to
	// recvBackoffMax: a few attempts a second on a device that fails
	// for good, while one that fails once costs a frame or two.
	recvBackoffMin = 5 * time.Millisecond
	recvBackoffMax = time.Second
	// recvReopenAfter consecutive errors reopen the device even when no
	// one of them says it is gone for good (recvGone).
	recvReopenAfter = 3
)

// errReopening is what Send says while the link has no open device.
var errReopening = errors.New("being reopened after receive errors")

// reopenLink is a Link that reopens its device when receiving fails.
// Recv, the only one to reopen, runs on one goroutine at a time; Send
// uses whatever device is open; Close ends both.
type reopenLink struct {
	name string
	open func() (Link, error)
	log  *slog.Logger
	done chan struct{} // closed by Close

	mu     sync.Mutex
	cur    Link // nil while it is being reopened
	closed bool

	rmu      sync.Mutex // one Recv at a time; guards what follows
	failures int        // consecutive receive or reopen errors
	since    time.Time  // of the first of them
}

// newReopenLink opens a link with open, which it calls again to reopen.
func newReopenLink(open func() (Link, error), log *slog.Logger) (*reopenLink, error) {
	l, err := open()
	if err != nil {
		return nil, err
	}
	return &reopenLink{name: l.Name(), open: open, log: log, cur: l, done: make(chan struct{})}, nil
}

func (r *reopenLink) Name() string { return r.name }

// current is the open device: nil while there is none, an error once
// the link is closed.
func (r *reopenLink) current() (Link, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, net.ErrClosed
	}
	return r.cur, nil
}

func (r *reopenLink) Send(frame []byte) error {
	l, err := r.current()
	if err == nil && l == nil {
		err = errReopening
	}
	if err != nil {
		return fmt.Errorf("%s: send: %w", r.name, err)
	}
	return l.Send(frame)
}

func (r *reopenLink) Recv(buf []byte) (int, error) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	for {
		l, err := r.current()
		if err != nil {
			return 0, fmt.Errorf("%s: receive: %w", r.name, err)
		}
		if l == nil {
			l, err = r.reopen()
		}
		if err == nil {
			var n int
			n, err = l.Recv(buf)
			if err == nil || errors.Is(err, io.ErrShortBuffer) {
				// A frame came, whole or too long: the device works.
				r.working()
				return n, err
			}
			if recvGone(err) || r.failures+1 >= recvReopenAfter {
				r.drop(l)
			}
		}
		if _, cerr := r.current(); cerr != nil {
			// Closed, which is what failed the receive or the reopen.
			return 0, fmt.Errorf("%s: receive: %w (%w)", r.name, cerr, err)
		}
		r.failed(err)
		wait := time.NewTimer(recvBackoff(r.failures))
		select {
		case <-r.done:
		case <-wait.C:
		}
		wait.Stop()
	}
}

// recvGone says whether err means the device is gone for good, so that
// reading it again is pointless: a hung-up line (EOF, EIO), a device
// unplugged (ENXIO, ENODEV), a descriptor closed under the reader.
func recvGone(err error) bool {
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, syscall.EIO, syscall.ENXIO, syscall.ENODEV, syscall.EBADF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// recvBackoff is the wait after the n-th consecutive error.
func recvBackoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := recvBackoffMin << min(n-1, 20)
	return min(d, recvBackoffMax)
}

// reopen opens the device again and makes it the link's.
func (r *reopenLink) reopen() (Link, error) {
	l, err := r.open()
	if err != nil {
		return nil, fmt.Errorf("reopen: %w", err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		l.Close()
		return nil, net.ErrClosed
	}
	r.cur = l
	r.mu.Unlock()
	r.log.Debug("failover: heartbeat link reopened", "link", r.name)
	return l, nil
}

// drop closes l, the link's device, to be reopened.
func (r *reopenLink) drop(l Link) {
	r.mu.Lock()
	if r.cur == l {
		r.cur = nil
	}
	r.mu.Unlock()
	l.Close()
}

// failed counts an error, and says so when it is the first in a row:
// a device failing for good is logged once, not at every attempt.
func (r *reopenLink) failed(err error) {
	r.failures++
	if r.failures == 1 {
		r.since = time.Now()
		r.log.Warn("failover: heartbeat link cannot receive; retrying with backoff and reopening it", "link", r.name, "err", err)
		return
	}
	r.log.Debug("failover: heartbeat link receive", "link", r.name, "err", err, "failures", r.failures)
}

// working ends a run of errors.
func (r *reopenLink) working() {
	if r.failures > 0 {
		r.log.Info("failover: heartbeat link receives again", "link", r.name, "after", time.Since(r.since).Round(time.Millisecond), "errors", r.failures)
		r.failures = 0
	}
}

func (r *reopenLink) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	l := r.cur
	r.cur = nil
	r.mu.Unlock()
	if l == nil {
		return nil
	}
	return l.Close()
}
