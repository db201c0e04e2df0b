package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Errors from booting the guest. Each message says what to do about it.
var (
	ErrQEMUMissing  = errors.New("qemu-system-x86_64 not found: install it with 'apt-get install qemu-system-x86' (make test does this itself)")
	ErrGuestHung    = errors.New("guest hung")
	ErrGuestPanic   = errors.New("guest kernel panicked")
	ErrGuestCrashed = errors.New("guest stopped before its init finished")
	ErrGuestInit    = errors.New("guest init failed")
)

// QEMUBinary is the emulator the lab boots.
const QEMUBinary = "qemu-system-x86_64"

// VM is one boot of the guest.
type VM struct {
	Kernel string
	Initrd string
	Nonce  string // must match the spec inside Initrd
	Accel  string // "tcg" (default) or "kvm"
	Memory int    // MiB
	CPUs   int
	// BootTimeout bounds the time from start to init's ready line;
	// Timeout bounds the whole run.
	BootTimeout time.Duration
	Timeout     time.Duration
	// Output receives the guest's console, status lines removed.
	Output io.Writer
	// OnExit, if set, is called as each command's exit line arrives.
	OnExit func(ExitStatus)
	// HostForward, if set, gives the guest a NIC on qemu's user-mode
	// network (the guest sees eth0, 10.0.2.15/24 once it sets it up, and
	// needs NICModules) and forwards host ports to it, each in
	// qemu's hostfwd form: "tcp:127.0.0.1:8080-:80". Without it the guest
	// has no NIC at all.
	HostForward []string
}

// Result is what a boot produced.
type Result struct {
	Boot     time.Duration // from starting qemu to init being ready
	Total    time.Duration
	Commands []ExitStatus
}

func (vm *VM) args() []string {
	accel := vm.Accel
	if accel == "" {
		accel = "tcg"
	}
	args := []string{
		"-machine", "q35", "-accel", accel,
		"-m", fmt.Sprint(vm.Memory),
		"-smp", fmt.Sprint(vm.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", vm.Kernel, "-initrd", vm.Initrd,
		// quiet keeps the console for the tests; panic=-1 turns a panic
		// into a reboot, which -no-reboot turns into qemu exiting.
		"-append", "console=ttyS0 quiet loglevel=3 panic=-1 random.trust_cpu=on",
	}
	if len(vm.HostForward) > 0 {
		netdev := "user,id=net0"
		for _, f := range vm.HostForward {
			netdev += ",hostfwd=" + f
		}
		// romfile= : the guest boots from -kernel, so the NIC needs no
		// boot ROM, and qemu then needs no ipxe package on the host.
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	if accel == "tcg" {
		// "max" gives the emulated CPU RDRAND, so the guest's random pool
		// is ready at once instead of stalling crypto/rand.
		args = append(args, "-cpu", "max")
	}
	return args
}

// Run boots the guest, streams its console and waits for init's done line.
func (vm *VM) Run(ctx context.Context) (*Result, error) {
	qemu, err := exec.LookPath(QEMUBinary)
	if err != nil {
		return nil, ErrQEMUMissing
	}
	if vm.Memory == 0 {
		vm.Memory = 2048
	}
	if vm.CPUs == 0 {
		vm.CPUs = 2
	}
	if vm.Timeout == 0 {
		vm.Timeout = 20 * time.Minute
	}
	if vm.BootTimeout == 0 {
		vm.BootTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, vm.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, vm.args()...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", qemu, err)
	}
	bootTimer := time.AfterFunc(vm.BootTimeout, cancel)
	res := &Result{}
	st := vm.scan(out, res, start, bootTimer)
	waitErr := cmd.Wait()
	res.Total = time.Since(start)
	return res, vm.verdict(ctx, st, res, waitErr)
}

// scanState is what the console told us.
type scanState struct {
	ready, done bool
	panicLine   string
	initFail    string
	scanErr     error
	tail        []string // last lines, for error messages
}

func (vm *VM) scan(r io.Reader, res *Result, start time.Time, bootTimer *time.Timer) *scanState {
	st := &scanState{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if kind, fields, ok := ParseMarker(line, vm.Nonce); ok {
			switch kind {
			case MarkReady:
				st.ready = true
				bootTimer.Stop()
				res.Boot = time.Since(start)
			case MarkExit:
				if es, err := ParseExit(fields); err == nil {
					res.Commands = append(res.Commands, es)
					if vm.OnExit != nil {
						vm.OnExit(es)
					}
				}
			case MarkDone:
				st.done = true
			case MarkFail:
				st.initFail = strings.Join(fields, " ")
			}
			continue
		}
		if strings.Contains(line, "Kernel panic") && st.panicLine == "" {
			st.panicLine = strings.TrimSpace(line)
		}
		if st.tail = append(st.tail, line); len(st.tail) > 15 {
			st.tail = st.tail[1:]
		}
		if vm.Output != nil {
			fmt.Fprintln(vm.Output, line)
		}
	}
	if err := sc.Err(); err != nil {
		// Keep draining, or qemu blocks on a full pipe and the run looks
		// hung when the console only printed an overlong line.
		st.scanErr = err
		_, _ = io.Copy(io.Discard, r)
	}
	return st
}

func (vm *VM) verdict(ctx context.Context, st *scanState, res *Result, waitErr error) error {
	tail := strings.Join(st.tail, "\n  ")
	switch {
	case st.done:
		return nil
	case st.initFail != "":
		return fmt.Errorf("%w: %s", ErrGuestInit, st.initFail)
	case st.scanErr != nil:
		return fmt.Errorf("%w: reading the console: %w", ErrGuestCrashed, st.scanErr)
	case st.panicLine != "":
		return fmt.Errorf("%w: %s\n  last console lines:\n  %s\n(check the module list and the memory size; a panic before init usually means a bad initramfs)", ErrGuestPanic, st.panicLine, tail)
	case ctx.Err() != nil && !st.ready:
		return fmt.Errorf("%w: init not ready after %v (boot timeout); last console lines:\n  %s\n(is another qemu loading the machine? try again, or raise -boot-timeout)", ErrGuestHung, vm.BootTimeout, tail)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: not finished after %v, %d command(s) done; last console lines:\n  %s\n(a test is stuck: run it alone with -run, or raise -timeout)", ErrGuestHung, vm.Timeout, len(res.Commands), tail)
	default:
		return fmt.Errorf("%w (qemu: %v); last console lines:\n  %s", ErrGuestCrashed, waitErr, tail)
	}
}
