package heartbeat

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuffer is a log sink that a link's goroutines and the test share.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLogger logs everything, debug included, to the buffer it returns.
func testLogger() (*slog.Logger, *logBuffer) {
	var buf logBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
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
			log, logged := testLogger()
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
