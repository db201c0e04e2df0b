package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
