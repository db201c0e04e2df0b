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
)

// hookWaitDelay bounds the wait, after the hook's process group was
// killed, for a process it left behind holding its output.
const hookWaitDelay = 250 * time.Millisecond

// runHook runs argv plus args without a shell, in its own process group
// that is killed whole when timeout passes, and returns its error with
// the first line it wrote to stderr.
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
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	if line, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n"); line != "" {
		err = fmt.Errorf("%w: %s", err, line)
	}
	return fmt.Errorf("%s: %w", argv[0], err)
}
