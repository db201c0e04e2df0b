package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// As a child process, the test binary acts as an unprivileged client.
func TestMain(m *testing.M) {
	if path := os.Getenv("CONTROL_TEST_CLIENT"); path != "" {
		err := Call(context.Background(), path, Request{Cmd: "status"}, nil)
		fmt.Print(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func serve(t *testing.T, h Handler) string {
	t.Helper()
	return serveIn(t, t.TempDir(), h)
}

func serveIn(t *testing.T, dir string, h Handler) string {
	t.Helper()
	path := filepath.Join(dir, "run", "director.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

func TestRoundTrip(t *testing.T) {
	path := serve(t, func(_ context.Context, r Request) (any, error) {
		switch r.Cmd {
		case "echo":
			return map[string]string{"service": r.Service, "address": r.Address}, nil
		case "fail":
			return nil, errors.New("config.yaml:3:5: services[0].port: must be 1-65535")
		}
		return nil, fmt.Errorf("unknown command %q", r.Cmd)
	})
	var got map[string]string
	if err := Call(context.Background(), path, Request{Cmd: "echo", Service: "web", Address: "10.0.0.1:80"}, &got); err != nil {
		t.Fatal(err)
	}
	if got["service"] != "web" || got["address"] != "10.0.0.1:80" {
		t.Fatalf("got %v", got)
	}
	err := Call(context.Background(), path, Request{Cmd: "fail"}, nil)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "services[0].port") {
		t.Fatalf("remote error lost: %v", err)
	}
}

func TestSocketIsPrivate(t *testing.T) {
	path := serve(t, func(context.Context, Request) (any, error) { return nil, nil })
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(filepath.Dir(path))
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v, want 0700", dst.Mode().Perm())
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	path := serve(t, func(context.Context, Request) (any, error) { return nil, nil })
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second listener on a live socket: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "director.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	// Closing a unix listener removes its file; a crash would not, so
	// recreate the file to look like one.
	l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("stale socket file missing:", err)
	}
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestNoDaemon(t *testing.T) {
	err := Call(context.Background(), filepath.Join(t.TempDir(), "none.sock"), Request{Cmd: "status"}, nil)
	if !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("got %v, want ErrNoDaemon", err)
	}
}

// TestNonRootRefused runs a client as nobody. With the socket's mode
// loosened, the peer-credential check must still refuse it.
func TestNonRootRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	called := false
	// t.TempDir's parent is private; nobody must reach the socket itself.
	open, err := os.MkdirTemp("", "control-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	path := serveIn(t, open, func(context.Context, Request) (any, error) { called = true; return nil, nil })
	for _, p := range []string{open, filepath.Dir(path), path} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	exe := copyExecutable(t)
	cmd := exec.Command(exe, "-test.run", "^$")
	cmd.Env = append(os.Environ(), "CONTROL_TEST_CLIENT="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "the control socket is for root (uid 65534)") || called {
		t.Fatalf("non-root client: %q (handler called: %v)", out, called)
	}
}

// copyExecutable puts the test binary where an unprivileged user can run
// it: go test builds it in a directory only root may enter.
func copyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "control-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "client")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// failingListener fails its first Accepts with errs (then, if forever is
// set, every one), as accept(2) does when descriptors or buffers run out.
type failingListener struct {
	net.Listener
	mu      sync.Mutex
	errs    []syscall.Errno
	forever bool
	fails   int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 || l.forever {
		errno := syscall.EMFILE
		if len(l.errs) > 0 {
			errno, l.errs = l.errs[0], l.errs[1:]
		}
		l.fails++
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "unix", Addr: l.Addr(), Err: os.NewSyscallError("accept4", errno)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// A moment without descriptors (another client holding them all) must
// not stop the control socket, and so directord.
func TestServeSurvivesAcceptErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "director.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: l, errs: []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, fl, func(context.Context, Request) (any, error) { return "pong", nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	got := make(chan error, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		var out string
		err := Call(cctx, path, Request{Cmd: "ping"}, &out)
		if err == nil && out != "pong" {
			err = fmt.Errorf("answer %q", out)
		}
		got <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Serve stopped on an accept error: %v", err)
	case err := <-got:
		if err != nil {
			t.Fatalf("a request after accept errors: %v", err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}

// While accept keeps failing, Serve backs off (it does not spin) and
// still stops when its context ends; a listener closed under it stops it
// with an error.
func TestServeBacksOffAndStops(t *testing.T) {
	l, err := Listen(filepath.Join(t.TempDir(), "director.sock"))
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: l, forever: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- Serve(ctx, fl, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	// The backoff doubles from 5ms: by 1.3s at most 9 tries (a spin
	// would make millions).
	timer := time.NewTimer(1300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Serve stopped on EMFILE: %v", err)
	case <-timer.C:
	}
	fl.mu.Lock()
	fails := fl.fails
	fl.mu.Unlock()
	if fails < 3 || fails > 10 {
		t.Errorf("%d accepts in %v of EMFILE, want a doubling backoff from 5ms", fails, time.Since(start))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop within 5s of its context's end")
	}

	l2, err := Listen(filepath.Join(t.TempDir(), "director.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- Serve(context.Background(), l2, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	l2.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve on a closed listener: %v, want net.ErrClosed", err)
	}
}
