package heartbeat_test

// The node's side of a serial line that hangs up. The test drives a
// failover.Node, which package heartbeat cannot import: it is an
// external test, and takes what it needs of heartbeat's insides from
// export_test.go.

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
)

// ptyOpen opens a pseudo-terminal's master, raw, and returns it with its
// slave's path.
func ptyOpen(t *testing.T) (*os.File, string) {
	t.Helper()
	mf, path := heartbeat.OpenPty(t)
	if err := heartbeat.SerialMakeRaw(mf); err != nil {
		mf.Close()
		t.Fatal(err)
	}
	return mf, path
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
			m := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 100, Role: heartbeat.RoleStandby, Boot: 7, Seq: *seq, Time: time.Now()}
			frame, err := heartbeat.Encode(heartbeat.TestKey, m)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = master.Write(heartbeat.SerialEncode(frame))
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
func linkUp(t *testing.T, n *failover.Node, want bool, within time.Duration) {
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

	linkLog, logged := heartbeat.TestLogger()
	link, err := heartbeat.LinkSpec{Serial: tty}.Open(linkLog)
	if err != nil {
		t.Fatal(err)
	}
	cfg := failover.NodeConfig{Key: heartbeat.TestKey, Links: []heartbeat.Link{link}, Keepalive: keepalive, Log: slog.New(slog.DiscardHandler)}
	cfg.Node, cfg.Priority, cfg.Deadtime, cfg.Initdead = "b", 200, deadtime, deadtime
	node, err := failover.NewNode(cfg)
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
