package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/directorlb/director/childenv"
)

// execWaitDelay bounds how long a probe waits, after the process group was
// killed or the command exited, for its output pipe to close. It is the
// most an exec probe can overrun its timeout.
const execWaitDelay = 250 * time.Millisecond

// Exec runs a command (no shell) and is healthy when it exits 0. In every
// argument, {address} is replaced by the target address and {port} by its
// port. The command runs in its own process group, and the whole group is
// killed with SIGKILL when the probe times out, so helpers it spawned do
// not outlive the check. It runs with childenv's environment, not
// directord's, which holds the secrets password_env names.
//
// With DynamicWeight, the first line of stdout, if it is an integer, is a
// weight percentage clamped to [0,100] (100 = the configured weight). A
// healthy exit whose first line is not an integer reports no weight
// (NoWeight, i.e. 100%): the exit status is what decides health, and a
// script that prints a banner must not take its server out.
//
// With WeightFromExit, keepalived's misc_dynamic convention: exit 0 is
// healthy at the configured weight, 1 is failed, and 2 to 255 are healthy
// with the weight percentage exit - 2 (0 to 253: with a real server weight
// of 100 the kernel weight is exactly exit - 2, keepalived's meaning).
type Exec struct {
	Argv           []string
	DynamicWeight  bool
	WeightFromExit bool
}

// limitedBuffer keeps the first max bytes written and discards the rest,
// while still reporting success so the child never blocks or gets EPIPE.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// argv returns the command line with the placeholders substituted.
func (e Exec) argv(target netip.AddrPort) []string {
	r := strings.NewReplacer("{address}", target.Addr().String(), "{port}", strconv.Itoa(int(target.Port())))
	out := make([]string, len(e.Argv))
	for i, a := range e.Argv {
		out[i] = r.Replace(a)
	}
	return out
}

// Probe implements Prober.
func (e Exec) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	if len(e.Argv) == 0 {
		return fail(ctx, start, errors.New("exec: no command"))
	}
	argv := e.argv(target)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Setpgid made the child the leader of a group whose id is its
		// pid; the negative pid signals every process in it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = execWaitDelay
	cmd.Env = childenv.Environ()
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = 4096, 4096
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command exited but something it started still holds its
		// output open. The group id cannot have been reused while that
		// process lives, so killing the group is safe and stops the leak.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return fail(ctx, start, fmt.Errorf("exec %s: exited, but a process it started kept its output open: %w", argv[0], err))
	}
	if code := exitCode(err); e.WeightFromExit && code >= 2 && code <= 255 {
		r := ok(start)
		r.Weight = code - 2
		return r
	}
	if err != nil {
		if msg := firstLine(stderr.buf.Bytes()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return fail(ctx, start, fmt.Errorf("exec %s: %w", argv[0], err))
	}
	r := ok(start)
	if e.DynamicWeight {
		if n, perr := strconv.Atoi(firstLine(stdout.buf.Bytes())); perr == nil {
			r.Weight = min(max(n, 0), 100)
		}
	}
	return r
}

func firstLine(b []byte) string {
	s := bufio.NewScanner(bytes.NewReader(b))
	if s.Scan() {
		return strings.TrimSpace(s.Text())
	}
	return ""
}

// exitCode is the exit status of a command that exited on its own, or -1
// (killed by a signal, or not run at all).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode()
	}
	return -1
}
