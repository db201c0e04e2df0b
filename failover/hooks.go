package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/directorlb/director/childenv"
)

// hookWaitDelay bounds the wait, once the hook has exited (or its
// process group was killed at the timeout), for a process it left
// behind that still holds its stderr open.
const hookWaitDelay = 250 * time.Millisecond

// hookOutputMax is how much of a hook's stderr is kept, for the error
// reported when it fails; the rest is read and dropped.
const hookOutputMax = 4096

// runHook runs argv plus args without a shell, with childenv's
// environment, in its own process group that is killed whole when
// timeout passes. Its exit status alone decides: a hook that exits 0
// succeeded, even if a process it started in the background still holds
// its stderr (that process is left to run; it is not waited for). A
// failure's error carries the first line of the first hookOutputMax
// bytes the hook wrote to stderr. Its stdout goes to /dev/null.
func runHook(ctx context.Context, timeout time.Duration, argv []string, args ...string) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append(append([]string{}, argv[1:]...), args...)
	cmd := exec.CommandContext(ctx, argv[0], full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = hookWaitDelay
	cmd.Env = childenv.Environ()
	stderr := &headBuffer{max: hookOutputMax}
	cmd.Stderr = stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// Exited 0 in time; only a leftover process kept the pipe open
		// (Wait reports ErrWaitDelay only after a clean exit).
		err = nil
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	if line, _, _ := strings.Cut(strings.TrimSpace(stderr.buf.String()), "\n"); line != "" {
		err = fmt.Errorf("%w: %s", err, line)
	}
	return fmt.Errorf("%s: %w", argv[0], err)
}

// headBuffer keeps the first max bytes written and drops the rest,
// while reporting every write whole, so the writer is never blocked nor
// sees an error however much it writes.
type headBuffer struct {
	buf bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
