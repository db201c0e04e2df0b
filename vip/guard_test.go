package vip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// The test binary doubles as the guard and as a parent of one, chosen by
// its first argument, the second naming the file where the guard's fake
// remover writes what it removes (see guardHelper).
const (
	guardHelperArg  = "__failover_vip_guard"
	parentHelperArg = "__failover_vip_guard_parent"
	// guardQuietEnv keeps the guard's log out of the test's output where
	// nothing reads it.
	guardQuietEnv = "FAILOVER_TEST_GUARD_QUIET"
)

func init() {
	// init, not TestMain: another file of the package may own TestMain.
	if len(os.Args) == 3 {
		switch os.Args[1] {
		case guardHelperArg:
			os.Exit(guardHelper(os.Args[2]))
		case parentHelperArg:
			os.Exit(parentHelper(os.Args[2]))
		}
	}
}

// fileRemover appends "PREFIX IFNAME" lines to a file instead of
// touching the kernel.
type fileRemover string

func (f fileRemover) Remove(v VIP) (bool, error) {
	fd, err := os.OpenFile(string(f), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return false, err
	}
	_, err = fmt.Fprintf(fd, "%s %s\n", v.Prefix, v.Interface)
	return true, errors.Join(err, fd.Close())
}

// guardHelper is the guard as directord runs it, but for the remover.
func guardHelper(out string) int {
	var w io.Writer = os.Stderr
	if os.Getenv(guardQuietEnv) != "" {
		w = io.Discard
	}
	log := slog.New(slog.NewTextHandler(w, nil))
	if err := runGuard(os.Stdin, log, guardEnv{rm: fileRemover(out)}); err != nil {
		return 1
	}
	return 0
}

// parentHelper plays directord: it starts a guard, holds 192.0.2.10/24
// and 2001:db8::10/64, holds and drops 192.0.2.11/24, prints the guard's
// pid and waits to be killed.
func parentHelper(out string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	g, err := StartGuard(context.Background(), []string{self, guardHelperArg, out}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dropped := VIP{netip.MustParsePrefix("192.0.2.11/24"), "eth0"}
	for _, err := range []error{g.Hold(testVIP4), g.Hold(dropped), g.Hold(testVIP6), g.Drop(dropped)} {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	fmt.Println(g.cmd.Process.Pid)
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed, or the test goes
	return 0
}

// fakeRemover records removals; VIPs in fail fail.
type fakeRemover struct {
	removed []VIP
	fail    map[VIP]bool
}

func (f *fakeRemover) Remove(v VIP) (bool, error) {
	if f.fail[v] {
		return false, syscall.EPERM
	}
	f.removed = append(f.removed, v)
	return true, nil
}

func TestGuardRemovesHeldAtEOF(t *testing.T) {
	in := strings.Join([]string{
		"hold 192.0.2.10/24 eth0",
		"hold 192.0.2.11/24 eth0",
		"hold 2001:db8::10/64 eth1",
		"hold 192.0.2.10/24 eth0", // again: still one
		"drop 192.0.2.11/24 eth0",
		"drop 198.51.100.1/24 eth0", // never held: fine
		"",
	}, "\n")
	log, buf := testLogger()
	rm := &fakeRemover{}
	if err := serveGuard(strings.NewReader(in), log, guardEnv{rm: rm}); err != nil {
		t.Fatal(err)
	}
	if want := []VIP{testVIP4, testVIP6}; !slices.Equal(rm.removed, want) {
		t.Errorf("removed %v, want %v", rm.removed, want)
	}
	if !strings.Contains(buf.String(), "removed vip") {
		t.Errorf("removals not logged:\n%s", buf)
	}
}

func TestGuardByeRemovesNothing(t *testing.T) {
	rm := &fakeRemover{}
	log, _ := testLogger()
	in := "hold 192.0.2.10/24 eth0\nbye\nhold 2001:db8::10/64 eth1\n"
	if err := serveGuard(strings.NewReader(in), log, guardEnv{rm: rm}); err != nil {
		t.Fatal(err)
	}
	if len(rm.removed) != 0 {
		t.Errorf("removed %v after bye", rm.removed)
	}
}

func TestGuardIgnoresBadLines(t *testing.T) {
	bad := []string{
		"hold",
		"hold 192.0.2.12 eth0", // no prefix length
		"hold 192.0.2.12/24 eth0 extra",
		"hold 192.0.2.12/33 eth0",
		"hold 192.0.2.12/24 bad/name",
		"hold 192.0.2.12/24 fe80::1%eth0",
		"hold 192.0.2.12/24 " + strings.Repeat("x", 2*maxGuardLine), // overlong
		"take 192.0.2.12/24 eth0",
		"bye now",
		"\x00\xff",
	}
	in := "hold 192.0.2.10/24 eth0\n" + strings.Join(bad, "\n") + "\n" +
		"hold 2001:db8::10/64 eth1\n" +
		"hold 192.0.2.13/24 eth0" // unfinished: the parent died writing it
	log, buf := testLogger()
	rm := &fakeRemover{}
	if err := serveGuard(strings.NewReader(in), log, guardEnv{rm: rm}); err != nil {
		t.Fatal(err)
	}
	if want := []VIP{testVIP4, testVIP6}; !slices.Equal(rm.removed, want) {
		t.Errorf("removed %v, want %v", rm.removed, want)
	}
	logged := strings.Count(buf.String(), "ignoring bad line") + strings.Count(buf.String(), "ignoring overlong line")
	if logged != len(bad) {
		t.Errorf("logged %d bad lines, want %d:\n%s", logged, len(bad), buf)
	}
	if !strings.Contains(buf.String(), "ignoring unfinished last line") {
		t.Errorf("the unfinished line was not logged:\n%s", buf)
	}
}

func TestGuardReadErrorCountsAsParentGone(t *testing.T) {
	broken := errors.New("broken pipe")
	r := io.MultiReader(strings.NewReader("hold 192.0.2.10/24 eth0\n"), iotest.ErrReader(broken))
	log, buf := testLogger()
	rm := &fakeRemover{}
	if err := serveGuard(r, log, guardEnv{rm: rm}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rm.removed, []VIP{testVIP4}) {
		t.Errorf("removed %v, want %v", rm.removed, testVIP4)
	}
	if !strings.Contains(buf.String(), "broken pipe") {
		t.Errorf("read error not logged:\n%s", buf)
	}
}

func TestGuardRemovalFailureStillRemovesTheRest(t *testing.T) {
	rm := &fakeRemover{fail: map[VIP]bool{testVIP4: true}}
	log, _ := testLogger()
	err := serveGuard(strings.NewReader("hold 192.0.2.10/24 eth0\nhold 2001:db8::10/64 eth1\n"), log, guardEnv{rm: rm})
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("serveGuard = %v, want EPERM", err)
	}
	if !slices.Equal(rm.removed, []VIP{testVIP6}) {
		t.Errorf("removed %v, want %v", rm.removed, testVIP6)
	}
}

// TestGuardSpeaksWhatTheGuardReads: what Hold and Drop write is what
// the guard understands.
func TestGuardSpeaksWhatTheGuardReads(t *testing.T) {
	pr, pw := io.Pipe()
	log, _ := testLogger()
	g := &Guard{log: log, stdin: pw}
	rm := &fakeRemover{}
	done := make(chan error, 1)
	go func() { done <- serveGuard(pr, log, guardEnv{rm: rm}) }()
	dropped := VIP{netip.MustParsePrefix("192.0.2.11/24"), "eth0"}
	for _, err := range []error{g.Hold(testVIP4), g.Hold(dropped), g.Hold(testVIP6), g.Drop(dropped)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Hold(VIP{testVIP4.Prefix, "two words"}); !errors.Is(err, errBadInterface) {
		t.Errorf("Hold of a bad name = %v, want errBadInterface", err)
	}
	g.abandon()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []VIP{testVIP4, testVIP6}; !slices.Equal(rm.removed, want) {
		t.Errorf("removed %v, want %v", rm.removed, want)
	}
	if err := g.Hold(testVIP4); !errors.Is(err, ErrGuardClosed) {
		t.Errorf("Hold after the pipe closed = %v, want ErrGuardClosed", err)
	}
}

// startTestGuard starts the test binary as a guard whose removals go to
// the returned file.
func startTestGuard(t *testing.T, ctx context.Context) (*Guard, string) {
	t.Helper()
	// Else the race runtime lingers a second in every helper's exit.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	t.Setenv(guardQuietEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir() + "/removed"
	log, _ := testLogger()
	g, err := StartGuard(ctx, []string{self, guardHelperArg, out}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g, out
}

func guardRemoved(t *testing.T, out string) []string {
	t.Helper()
	b, err := os.ReadFile(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestStartGuardCloseRemovesNothing(t *testing.T) {
	g, out := startTestGuard(t, context.Background())
	if err := g.Hold(testVIP4); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := guardRemoved(t, out); len(got) != 0 {
		t.Errorf("removed %q after a clean close", got)
	}
	if err := g.Hold(testVIP6); !errors.Is(err, ErrGuardClosed) {
		t.Errorf("Hold after Close = %v, want ErrGuardClosed", err)
	}
}

func TestStartGuardRemovesWhenThePipeBreaks(t *testing.T) {
	g, out := startTestGuard(t, context.Background())
	for _, err := range []error{g.Hold(testVIP4), g.Hold(testVIP6), g.Drop(testVIP6)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	g.abandon() // what the parent's death does to the pipe
	<-g.done
	if g.err != nil {
		t.Errorf("guard exited with %v", g.err)
	}
	if got, want := guardRemoved(t, out), []string{"192.0.2.10/24 eth0"}; !slices.Equal(got, want) {
		t.Errorf("removed %q, want %q", got, want)
	}
}

func TestStartGuardContextEndRemoves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g, out := startTestGuard(t, ctx)
	if err := g.Hold(testVIP6); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-g.done
	if got, want := guardRemoved(t, out), []string{"2001:db8::10/64 eth1"}; !slices.Equal(got, want) {
		t.Errorf("removed %q, want %q", got, want)
	}
}

func TestStartGuardOfNothing(t *testing.T) {
	log, _ := testLogger()
	if _, err := StartGuard(context.Background(), nil, log); err == nil {
		t.Error("StartGuard with no command succeeded")
	}
	if _, err := StartGuard(context.Background(), []string{"/nonexistent/directord"}, log); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("StartGuard of a missing binary = %v, want ErrNotExist", err)
	}
}

// guardSigIgnored reads which signals a process ignores.
func guardSigIgnored(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no SigIgn in status")
}

// TestGuardOutlivesItsParent: the parent (this binary as parentHelper)
// is killed with SIGKILL, with its whole process group, after the guard
// was sent SIGTERM, SIGINT and SIGHUP; the guard removes what the parent
// held, and only that.
func TestGuardOutlivesItsParent(t *testing.T) {
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir() + "/removed"
	parent := exec.Command(self, parentHelperArg, out)
	parent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The guard inherits the parent's stderr: this pipe ends when both
	// have exited.
	stderr, err := parent.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parent.StdinPipe(); err != nil { // held open: the parent waits on it
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-parent.Process.Pid, syscall.SIGKILL)
		_ = parent.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		all, _ := io.ReadAll(stderr)
		t.Fatalf("parent helper: %v\n%s", err, all)
	}
	guardPid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("parent helper printed %q", line)
	}

	// The guard ignores these as soon as it runs; nothing else tells
	// when that is, so watch its signal dispositions.
	const want uint64 = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1) | 1<<(syscall.SIGTERM-1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ign, err := guardSigIgnored(guardPid)
		if err != nil {
			t.Fatalf("guard %d: %v", guardPid, err)
		}
		if ign&want == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("guard %d ignores signals %#x, want %#x among them", guardPid, ign, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if err := syscall.Kill(guardPid, sig); err != nil {
			t.Fatalf("signal guard: %v", err)
		}
	}
	if err := syscall.Kill(-parent.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	logs, err := io.ReadAll(stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Wait(); err == nil {
		t.Error("the parent helper was not killed")
	}
	got := guardRemoved(t, out)
	if want := []string{"192.0.2.10/24 eth0", "2001:db8::10/64 eth1"}; !slices.Equal(got, want) {
		t.Errorf("guard removed %q, want %q; its log:\n%s", got, want, logs)
	}
	if !strings.Contains(string(logs), "parent gone without saying bye") {
		t.Errorf("the guard did not log why it removed them:\n%s", logs)
	}
	if err := syscall.Kill(guardPid, 0); !errors.Is(err, syscall.ESRCH) {
		// Its pid may be reused only after it is reaped; init reaps
		// orphans, so a guard that exited is gone or a zombie.
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", guardPid)); !strings.Contains(string(st), ") Z ") {
			t.Errorf("guard %d still running after removing the vips", guardPid)
		}
	}
}
