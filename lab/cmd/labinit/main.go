// Command labinit is PID 1 of the lab VM: it mounts the kernel's
// filesystems, loads the modules in the order the host resolved, runs the
// spec's commands one after another with their output on the console, and
// powers the VM off. Its status lines are parsed by the host (lab.Marker).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/directorlb/director/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func main() {
	spec, err := readSpec()
	if err != nil {
		fail("", err)
	}
	if err := setup(spec); err != nil {
		fail(spec.Nonce, err)
	}
	say(lab.Marker(spec.Nonce, lab.MarkReady))
	for i, c := range spec.Commands {
		st, d := run(spec, c)
		say(lab.Marker(spec.Nonce, lab.MarkExit, strconv.Itoa(i), strconv.Itoa(st), strconv.FormatInt(d.Milliseconds(), 10)))
	}
	say(lab.Marker(spec.Nonce, lab.MarkDone))
	powerOff()
}

// say prints a status line on a line of its own, whatever came before.
func say(line string) { fmt.Fprintf(os.Stdout, "\n%s\n", line) }

func fail(nonce string, err error) {
	fmt.Fprintf(os.Stdout, "labinit: %v\n", err)
	if nonce != "" {
		say(lab.Marker(nonce, lab.MarkFail, strings.ReplaceAll(err.Error(), "\n", " ")))
	}
	powerOff()
}

func powerOff() {
	// Nothing must outlive the run: a process still writing to a file
	// would make no difference here, but be explicit about it.
	_ = unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Reaching here means power-off failed; PID 1 exiting panics the
	// kernel, which with panic=-1 and -no-reboot also ends qemu.
	os.Exit(1)
}

func readSpec() (*lab.Spec, error) {
	b, err := os.ReadFile(lab.SpecPath)
	if err != nil {
		return nil, err
	}
	var s lab.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", lab.SpecPath, err)
	}
	return &s, nil
}

type mount struct{ source, target, fstype string }

func setup(spec *lab.Spec) error {
	for _, m := range []mount{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"devpts", "/dev/pts", "devpts"},
		{"tmpfs", "/dev/shm", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.source, m.target, m.fstype, 0, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	if err := os.Symlink("/run", "/var/run"); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	_ = unix.Sethostname([]byte("lab"))
	for _, m := range spec.Modules {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	return netlink.LinkSetUp(lo)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

// run executes one command in its own process group, so a timeout kills
// everything it started.
func run(spec *lab.Spec, c lab.Command) (int, time.Duration) {
	ctx := context.Background()
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	if len(c.Argv) == 0 {
		fmt.Fprintf(os.Stdout, "labinit: %s: empty command\n", c.Name)
		return 127, 0
	}
	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			fmt.Fprintf(os.Stdout, "labinit: %s: %v\n", c.Name, err)
			return 127, 0
		}
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(append([]string{"PATH=/bin:/sbin", "HOME=/root", "TMPDIR=/tmp", "LD_LIBRARY_PATH=" + lab.GuestLibraryPath}, spec.Env...), c.Env...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	reapOrphans()
	if ctx.Err() == context.DeadlineExceeded {
		fmt.Fprintf(os.Stdout, "labinit: %s: killed after the %v timeout\n", c.Name, c.Timeout)
		return 124, d
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), d
		}
		fmt.Fprintf(os.Stdout, "labinit: %s: %v\n", c.Name, err)
		return 127, d
	}
	return 0, d
}

// reapOrphans collects zombies re-parented to init by finished commands.
func reapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
