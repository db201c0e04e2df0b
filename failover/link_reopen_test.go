package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptyOpen opens a pseudo-terminal's master and returns it with its
// slave's path.
func ptyOpen(t *testing.T) (*os.File, string) {
	t.Helper()
	mf, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	rc, err := mf.SyscallConn()
	if err != nil {
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
	if err := serialMakeRaw(mf); err != nil {
		mf.Close()
		t.Fatal(err)
	}
	return mf, fmt.Sprintf("/dev/pts/%d", n)
}

// ptyPeer plays the peer director on a pty's master: it sends a
// heartbeat every interval and reads (and drops) what the node sends,
// so the node's writes never fill the line.
type ptyPeer struct {
	master *os.File
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startPtyPeer(t *testing.T, master *os.File, interval time.Duration, seq *uint64) *ptyPeer {
	p := &ptyPeer{master: master, stop: make(chan struct{})}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(io.Discard, master)
	}()
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			*seq++
			m := Message{Kind: KindHeartbeat, Node: "a", Priority: 100, Role: RoleStandby, Boot: 7, Seq: *seq, Time: time.Now()}
			frame, err := Encode(wireTestKey, m)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = master.Write(serialEncode(frame))
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// hangUp stops the peer and closes the master: the other end of the
// line is gone, and the slave's reads fail at once, for good.
func (p *ptyPeer) hangUp() {
	close(p.stop)
	p.master.Close()
	p.wg.Wait()
}

// readSyscalls is how many read system calls this process made so far.
func readSyscalls(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("cannot count read system calls: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "syscr: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no syscr in /proc/self/io")
	return 0
}

// linkUp waits (bounded) until the node's only link is up, or down.
func linkUp(t *testing.T, n *Node, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := n.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Links[0].Up == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s: up %v %v after the change, want %v: %+v", st.Links[0].Name, st.Links[0].Up, within, want, st.Links[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSerialLinkHangupBacksOffAndReopens: the peer's end of a serial
// line hangs up, so every read fails at once. The node's reader does not
// spin on it (it makes a few reads a second, not millions), the link is
// reported down, and once a line is there again at the configured path
// the link is reopened and carries heartbeats.
func TestSerialLinkHangupBacksOffAndReopens(t *testing.T) {
	const keepalive, deadtime = 50 * time.Millisecond, 300 * time.Millisecond
	dir := t.TempDir()
	tty := filepath.Join(dir, "ttyS9")
	// pointTo makes the configured path name another line, as udev
	// does for a USB adapter plugged in again.
	pointTo := func(slave string) {
		tmp := tty + ".new"
		if err := os.Symlink(slave, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tty); err != nil {
			t.Fatal(err)
		}
	}
	m1, s1 := ptyOpen(t)
	pointTo(s1)
	var seq uint64
	peer := startPtyPeer(t, m1, keepalive, &seq)

	linkLog, logged := vipTestLogger()
	link, err := LinkSpec{Serial: tty}.Open(linkLog)
	if err != nil {
		t.Fatal(err)
	}
	cfg := NodeConfig{Key: wireTestKey, Links: []Link{link}, Keepalive: keepalive, Log: slog.New(slog.DiscardHandler)}
	cfg.Node, cfg.Priority, cfg.Deadtime, cfg.Initdead = "b", 200, deadtime, deadtime
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- node.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Error("the node did not stop within 10s")
		}
	}()
	linkUp(t, node, true, 5*time.Second)

	peer.hangUp()
	before := readSyscalls(t)
	linkUp(t, node, false, 5*time.Second)
	// A second of a line that fails every read: a reader that retries
	// at once makes a read system call per retry.
	time.Sleep(time.Second)
	if reads := readSyscalls(t) - before; reads > 200 {
		t.Errorf("%d reads in about a second of a hung-up line: the reader spins", reads)
	}

	m2, s2 := ptyOpen(t)
	pointTo(s2)
	peer = startPtyPeer(t, m2, keepalive, &seq)
	defer peer.hangUp()
	linkUp(t, node, true, 5*time.Second)
	// Once per change, not once per error.
	text := logged.String()
	for _, msg := range []string{"heartbeat link cannot receive", "heartbeat link receives again"} {
		if n := strings.Count(text, msg); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", msg, n, text)
		}
	}
}

// fakeDevice is a device a reopenLink opens through fakeDevices: while
// broken, every receive fails at once; otherwise it delivers frames.
type fakeDevices struct {
	mu      sync.Mutex
	broken  error // what receives (and opens, with openErr) fail with
	openErr error
	opens   int
	recvs   int
	frames  chan []byte
}

type fakeDevice struct {
	d      *fakeDevices
	closed chan struct{}
	once   sync.Once
}

func (d *fakeDevices) open() (Link, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opens++
	if d.openErr != nil {
		return nil, d.openErr
	}
	return &fakeDevice{d: d, closed: make(chan struct{})}, nil
}

func (d *fakeDevices) set(broken, openErr error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.broken, d.openErr = broken, openErr
}

func (d *fakeDevices) counts() (opens, recvs int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opens, d.recvs
}

func (f *fakeDevice) Name() string        { return "fake" }
func (f *fakeDevice) Send(b []byte) error { return nil }
func (f *fakeDevice) Close() error        { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeDevice) Recv(buf []byte) (int, error) {
	f.d.mu.Lock()
	f.d.recvs++
	broken := f.d.broken
	f.d.mu.Unlock()
	if broken != nil {
		return 0, broken
	}
	select {
	case b := <-f.d.frames:
		if len(b) > len(buf) {
			return 0, io.ErrShortBuffer
		}
		return copy(buf, b), nil
	case <-f.closed:
		return 0, net.ErrClosed
	}
}

// A device that fails every receive at once is read a few times a
// second, not in a loop; it is reopened, and Send says so meanwhile;
// once it works again frames come through; Close ends a Recv waiting
// out its backoff.
func TestReopenLinkBacksOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"gone", fmt.Errorf("read: %w", syscall.EIO)},
		{"other", errors.New("a receive error of no known kind")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDevices{frames: make(chan []byte, 1)}
			log, logged := vipTestLogger()
			l, err := newReopenLink(d.open, log)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			d.set(tc.err, errors.New("no such device yet"))
			got := linkRecvAsync(l, MaxFrameSize)
			start := time.Now()
			// The window over which receives are counted.
			time.Sleep(time.Second)
			opens, recvs := d.counts()
			if recvs+opens > 20 {
				t.Errorf("%d receives and %d opens in %v of a failing device", recvs, opens, time.Since(start).Round(time.Millisecond))
			}
			if opens < 2 {
				t.Errorf("%d opens: the failing device was never reopened", opens)
			}
			if err := l.Send([]byte("x")); !errors.Is(err, errReopening) {
				t.Errorf("Send while reopening: %v, want errReopening", err)
			}
			d.set(nil, nil)
			d.frames <- []byte("back")
			if r := linkWait(t, got); r.err != nil || string(r.frame) != "back" {
				t.Fatalf("after the device works again: %q, %v", r.frame, r.err)
			}
			if err := l.Send([]byte("x")); err != nil {
				t.Errorf("Send once reopened: %v", err)
			}
			text := logged.String()
			if n := strings.Count(text, "level=WARN"); n != 1 {
				t.Errorf("%d warnings, want one:\n%s", n, text)
			}
			// A frame too long for the buffer is that frame's error: the
			// device is not reopened for it.
			opens, _ = d.counts()
			d.frames <- make([]byte, MaxFrameSize+1)
			if r := linkWait(t, linkRecvAsync(l, MaxFrameSize)); !errors.Is(r.err, io.ErrShortBuffer) {
				t.Errorf("a long frame: %v, want io.ErrShortBuffer", r.err)
			}
			if again, _ := d.counts(); again != opens {
				t.Errorf("reopened for a frame too long")
			}
			// Close ends a Recv that waits out a backoff.
			d.set(tc.err, errors.New("no such device yet"))
			opens, recvs = d.counts()
			got = linkRecvAsync(l, MaxFrameSize)
			for {
				// Nine failures in: the backoff is at its longest.
				if o, r := d.counts(); o+r >= opens+recvs+9 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			closed := time.Now()
			linkCloseUnblocksPending(t, l, got)
			if d := time.Since(closed); d > recvBackoffMax/2 {
				t.Errorf("Recv ended %v after Close: it waited out its backoff", d)
			}
		})
	}
}

// linkCloseUnblocksPending closes l and checks that the Recv pending on
// ch ends with net.ErrClosed.
func linkCloseUnblocksPending(t *testing.T, l Link, ch <-chan linkRecvResult) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := linkWait(t, ch); !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Recv after Close: %q, %v; want net.ErrClosed", r.frame, r.err)
	}
}
