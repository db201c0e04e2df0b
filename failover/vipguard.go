package failover

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
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// The VIP guard exists because the kernel keeps the addresses a process
// added after the process dies: a director killed with SIGKILL (or by the
// OOM killer) would go on answering for the VIPs while its peer takes
// them over. The guard is a child process that only reads a pipe from
// its parent; the parent tells it which VIPs it holds, and when the pipe
// ends without a goodbye the parent is gone and the guard removes them.
//
// The protocol is one line per message, fields separated by a space:
//
//	hold 192.0.2.10/24 eth0   the parent is about to add this VIP
//	drop 192.0.2.10/24 eth0   the parent has removed it
//	bye                       the parent is exiting cleanly: remove nothing

// GuardArg is the argument that makes directord's binary run as the VIP
// guard (RunGuard) instead of as the daemon.
const GuardArg = "-vip-guard"

// ErrGuardClosed is returned by a Guard's Hold and Drop after Close, or
// after the guard was abandoned because its context ended.
var ErrGuardClosed = errors.New("vip guard closed")

// maxGuardLine bounds a protocol line; a real one is far shorter.
const maxGuardLine = 256

// Guard is the parent's handle on the guard child.
type Guard struct {
	log  *slog.Logger
	cmd  *exec.Cmd
	done chan struct{} // closed when the child has exited
	err  error         // the child's exit, once done is closed

	mu     sync.Mutex
	stdin  io.WriteCloser
	closed bool
}

// StartGuard starts the guard child, argv being the command that runs
// RunGuard, e.g. {os.Executable(), GuardArg}. The child runs in a process
// group of its own, so that a signal to the parent's group (a terminal's
// ^C, a kill of the whole group) leaves it to do its work.
//
// When ctx ends, the pipe is closed without a goodbye: the guard removes
// whatever is still held and exits, as if this process had died.
func StartGuard(ctx context.Context, argv []string, log *slog.Logger) (*Guard, error) {
	if len(argv) == 0 {
		return nil, errors.New("start vip guard: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr // its logs join ours
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start vip guard: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start vip guard %s: %w", argv[0], err)
	}
	g := &Guard{log: log, cmd: cmd, done: make(chan struct{}), stdin: stdin}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		if !closed {
			g.log.Error("vip guard exited early; vips are no longer guarded", "pid", cmd.Process.Pid, "err", g.err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			g.abandon()
		case <-g.done:
		}
	}()
	log.Debug("vip guard started", "pid", cmd.Process.Pid)
	return g, nil
}

// Hold tells the guard that v is about to be added.
func (g *Guard) Hold(v VIP) error { return g.send("hold", v) }

// Drop tells the guard that v has been removed.
func (g *Guard) Drop(v VIP) error { return g.send("drop", v) }

func (g *Guard) send(verb string, v VIP) error {
	if err := v.check(); err != nil {
		return fmt.Errorf("vip guard %s: %w", verb, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("vip guard %s %s: %w", verb, v, ErrGuardClosed)
	}
	// One write per line: a pipe write this short is atomic, so the guard
	// never sees half a line from a parent that lived to finish the call.
	if _, err := io.WriteString(g.stdin, verb+" "+v.Prefix.String()+" "+v.Interface+"\n"); err != nil {
		return fmt.Errorf("vip guard %s %s: %w", verb, v, err)
	}
	return nil
}

// Close says goodbye, so the guard removes nothing, and waits for it to
// exit.
func (g *Guard) Close() error {
	g.mu.Lock()
	var errs []error
	if !g.closed {
		g.closed = true
		if _, err := io.WriteString(g.stdin, "bye\n"); err != nil {
			errs = append(errs, fmt.Errorf("vip guard bye: %w", err))
		}
		if err := g.stdin.Close(); err != nil {
			errs = append(errs, fmt.Errorf("vip guard: close pipe: %w", err))
		}
	}
	g.mu.Unlock()
	<-g.done
	if g.err != nil {
		errs = append(errs, fmt.Errorf("vip guard: %w", g.err))
	}
	return errors.Join(errs...)
}

// abandon closes the pipe without a goodbye.
func (g *Guard) abandon() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if err := g.stdin.Close(); err != nil {
		g.log.Warn("vip guard: close pipe", "err", err)
	}
}

// RunGuard is the guard child's whole life: it reads the protocol from r
// and, if r ends without a goodbye, removes the VIPs still held from the
// current network namespace. It ignores SIGINT, SIGTERM and SIGHUP: only
// the end of r ends it.
func RunGuard(r io.Reader, log *slog.Logger) error {
	return runGuard(r, log, tableRemover{kernelAddrs{}})
}

// vipRemover removes a VIP and tells whether it was there.
type vipRemover interface {
	Remove(VIP) (bool, error)
}

type tableRemover struct{ table AddrTable }

func (t tableRemover) Remove(v VIP) (bool, error) { return removeVIP(t.table, v) }

// Prepare looks the VIP up once when it is held. The guard is a fresh
// process: its first netlink calls open sockets and, on a slow machine,
// run code for the first time. Doing that now, while the parent lives,
// keeps the removal after a crash down to one request.
func (t tableRemover) Prepare(v VIP) {
	_, _, _ = findVIP(t.table, v)
}

// preparer is a vipRemover that can get ready for a VIP in advance.
type preparer interface{ Prepare(VIP) }

func runGuard(r io.Reader, log *slog.Logger, rm vipRemover) error {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return serveGuard(r, log, rm)
}

// serveGuard reads the protocol until a goodbye or the end of r. Bad
// lines are logged and skipped: whatever the parent sends, the guard
// must still be there to clean up after it.
func serveGuard(r io.Reader, log *slog.Logger, rm vipRemover) error {
	held := map[VIP]int{} // when it was held, to remove in that order
	seq := 0
	br := bufio.NewReaderSize(r, maxGuardLine)
	for {
		line, err := readGuardLine(br, log)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Error("vip guard: reading from parent", "err", err)
			}
			return removeHeld(held, log, rm)
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1 && fields[0] == "bye":
			log.Debug("vip guard: parent exiting cleanly", "held", len(held))
			return nil
		case len(fields) == 3 && (fields[0] == "hold" || fields[0] == "drop"):
			p, err := netip.ParsePrefix(fields[1])
			v := VIP{Prefix: p, Interface: fields[2]}
			if err == nil {
				err = v.check()
			}
			if err != nil {
				log.Warn("vip guard: ignoring bad line", "line", line, "err", err)
				continue
			}
			if fields[0] == "hold" {
				if _, ok := held[v]; !ok {
					seq++
					held[v] = seq
					if p, ok := rm.(preparer); ok {
						p.Prepare(v)
					}
				}
			} else {
				delete(held, v)
			}
			log.Debug("vip guard: "+fields[0], "vip", v.Prefix, "interface", v.Interface)
		default:
			log.Warn("vip guard: ignoring bad line", "line", line)
		}
	}
}

// readGuardLine returns the next complete line. Overlong lines are
// skipped whole; a last line without its newline is dropped, since a
// parent that died mid-write had not yet acted on it.
func readGuardLine(br *bufio.Reader, log *slog.Logger) (string, error) {
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			return string(b[:len(b)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			log.Warn("vip guard: ignoring overlong line", "max", maxGuardLine)
			if err != nil {
				return "", err
			}
		default:
			if len(b) > 0 {
				log.Warn("vip guard: ignoring unfinished last line", "line", string(b))
			}
			return "", err
		}
	}
}

// removeHeld removes every VIP still held: the parent is gone.
func removeHeld(held map[VIP]int, log *slog.Logger, rm vipRemover) error {
	vips := make([]VIP, 0, len(held))
	for v := range held {
		vips = append(vips, v)
	}
	slices.SortFunc(vips, func(a, b VIP) int { return held[a] - held[b] })
	if len(vips) > 0 {
		log.Warn("vip guard: parent gone without saying bye; removing the vips it held", "count", len(vips))
	}
	var errs []error
	for _, v := range vips {
		removed, err := rm.Remove(v)
		switch {
		case err != nil:
			log.Error("vip guard: could not remove vip", "vip", v.Prefix, "interface", v.Interface, "err", err)
			errs = append(errs, err)
		case removed:
			log.Warn("vip guard: removed vip", "vip", v.Prefix, "interface", v.Interface)
		default:
			log.Info("vip guard: vip already gone", "vip", v.Prefix, "interface", v.Interface)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vip guard: %w", err)
	}
	return nil
}
