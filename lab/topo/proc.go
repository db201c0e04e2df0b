package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a process running inside a host.
type Proc struct {
	Host *Host
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs argv inside the host. Its output goes to the lab's stdout
// with each line prefixed by the host's name. It is killed at cleanup if
// still running.
func (h *Host) Start(argv ...string) *Proc {
	h.net.tb.Helper()
	p, err := h.StartCmd(exec.Command(argv[0], argv[1:]...))
	h.must(err, "start %s", argv[0])
	return p
}

// StartCmd starts a prepared command inside the host. Unset Stdout and
// Stderr go to the lab's stdout, prefixed with the host's name.
func (h *Host) StartCmd(cmd *exec.Cmd) (*Proc, error) { return h.StartCmdNice(cmd, 0) }

// StartCmdNice is StartCmd with the process's nice value set before it
// runs, as systemd's Nice= does: every thread it makes inherits it.
func (h *Host) StartCmdNice(cmd *exec.Cmd, nice int) (*Proc, error) {
	prefix := fmt.Sprintf("[%s %s] ", h.Name, cmd.Path)
	if cmd.Stdout == nil {
		cmd.Stdout = &linePrefixer{w: os.Stdout, prefix: prefix}
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &linePrefixer{w: os.Stdout, prefix: prefix}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own process group, so Kill reaches whatever it started.
	cmd.SysProcAttr.Setpgid = true
	// The child is forked from the calling thread, which Do has moved
	// into the host's namespace: that is how it inherits the namespace,
	// and the thread's nice value. Do's thread is never reused.
	err := h.Do(func() error {
		if nice != 0 {
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice); err != nil {
				return fmt.Errorf("nice %d: %w", nice, err)
			}
		}
		return cmd.Start()
	})
	if err != nil {
		return nil, err
	}
	p := &Proc{Host: h, Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	return p.Cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills the
// process group. It returns the process's exit error.
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s on %s did not stop within %v after SIGTERM; killed", p.Cmd.Path, p.Host.Name, grace)
	}
}

// Kill sends SIGKILL to the process group, as a crash or power loss
// would end it, and waits for the exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Task is Go code running inside a host.
type Task struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Go runs fn inside the host on a goroutine of its own (locked to a
// thread in the host's namespace) until fn returns or the task is
// stopped. Stopping cancels fn's context.
func (h *Host) Go(fn func(ctx context.Context) error) *Task {
	ctx, cancel := context.WithCancel(context.Background())
	t := &Task{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = h.Do(func() error { return fn(ctx) })
	}()
	h.mu.Lock()
	h.tasks = append(h.tasks, t)
	h.mu.Unlock()
	return t
}

// Stop cancels the task and waits for it.
func (t *Task) Stop() error {
	t.cancel()
	<-t.done
	return t.err
}

// linePrefixer writes whole lines with a prefix, so interleaved output of
// several processes stays readable.
type linePrefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i]); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}
