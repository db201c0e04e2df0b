//go:build lab

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// keepalivedBin is Debian's keepalived 2.2.7, copied into the guest by
// the lab's -host-tools.
const keepalivedBin = "/bin/keepalived"

// keepalivedProc is Debian's keepalived running in a lab host: the parent
// and the children it forks, the checker (health checks and the IPVS
// table) and the VRRP one. Each instance has its own directory, config
// file and pid files, so several run in one guest.
type keepalivedProc struct {
	t    testing.TB
	h    *topo.Host
	proc *topo.Proc
	// log is its output (-l -D: console, detailed), to wait for lines on.
	log *topo.LogWatch
	// dir holds conf and the pid files.
	dir, conf                  string
	pidFile, checkers, vrrpPid string
	// children is how many children it forks: 2, or 1 with -C or -P.
	children int
}

// startKeepalived writes conf (keepalived.conf's text) to a file of its
// own and starts keepalived on it in h, in the foreground, logging to its
// output, with args added (-C for checkers only, -P for VRRP only). It
// returns once keepalived has forked its children. It is killed when the
// test ends.
func startKeepalived(t testing.TB, h *topo.Host, conf string, args ...string) *keepalivedProc {
	t.Helper()
	return startKeepalivedNice(t, h, conf, 0, args...)
}

// startKeepalivedNice is startKeepalived at a nice value, which its
// children inherit.
func startKeepalivedNice(t testing.TB, h *topo.Host, conf string, nice int, args ...string) *keepalivedProc {
	t.Helper()
	if _, err := os.Stat(keepalivedBin); err != nil {
		t.Fatalf("keepalived is not in the guest (lab -host-tools): %v", err)
	}
	dir := t.TempDir()
	k := &keepalivedProc{t: t, h: h, dir: dir, conf: filepath.Join(dir, "keepalived.conf"),
		pidFile: filepath.Join(dir, "keepalived.pid"), checkers: filepath.Join(dir, "checkers.pid"), vrrpPid: filepath.Join(dir, "vrrp.pid"), children: 2}
	for _, a := range args {
		if a == "-C" || a == "--check" || a == "-P" || a == "--vrrp" {
			k.children = 1
		}
	}
	k.write(conf)
	k.start(nice, args)
	t.Cleanup(k.kill)
	return k
}

// write replaces the config file (read again by reload or a restart).
func (k *keepalivedProc) write(conf string) {
	k.t.Helper()
	if err := os.WriteFile(k.conf, []byte(conf), 0o644); err != nil {
		k.t.Fatal(err)
	}
}

func (k *keepalivedProc) start(nice int, args []string) {
	k.t.Helper()
	// The pid files of a killed instance would be taken for a running one.
	for _, f := range []string{k.pidFile, k.checkers, k.vrrpPid} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			k.t.Fatal(err)
		}
	}
	k.log = topo.NewLogWatch(os.Stdout, fmt.Sprintf("[%s keepalived] ", k.h.Name))
	argv := append([]string{"-n", "-l", "-D", "-G", "-f", k.conf, "-p", k.pidFile, "-c", k.checkers, "-r", k.vrrpPid}, args...)
	cmd := exec.Command(keepalivedBin, argv...)
	cmd.Stdout, cmd.Stderr = k.log, k.log
	proc, err := k.h.StartCmdNice(cmd, nice)
	if err != nil {
		k.t.Fatalf("%s: start keepalived: %v", k.h.Name, err)
	}
	k.proc = proc
	deadline := time.Now().Add(15 * time.Second)
	for len(k.childPids()) < k.children {
		select {
		case <-proc.Done():
			k.t.Fatalf("%s: keepalived exited at start: %v", k.h.Name, proc.Wait())
		default:
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("%s: keepalived forked %d children within 15s, want %d", k.h.Name, len(k.childPids()), k.children)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restart starts keepalived again on the same files, after a stop or a
// kill, at nice.
func (k *keepalivedProc) restart(nice int, args ...string) {
	k.t.Helper()
	k.kill()
	k.start(nice, args)
}

// childPids lists the parent's living children (the checker and VRRP
// processes), from /proc.
func (k *keepalivedProc) childPids() []int {
	return childrenOf(k.proc.Pid())
}

// pids lists the parent and its living children.
func (k *keepalivedProc) pids() []int {
	select {
	case <-k.proc.Done():
		return k.childPids()
	default:
	}
	return append([]int{k.proc.Pid()}, k.childPids()...)
}

// checkerPid and vrrpPid are the children's pids from the files
// keepalived writes (0 if it has none).
func (k *keepalivedProc) checkerPid() int { return readPidFile(k.checkers) }
func (k *keepalivedProc) vrrpPID() int    { return readPidFile(k.vrrpPid) }

// reload is keepalived's reload: SIGHUP to the parent, which re-reads the
// config file (write) and passes the signal to its children.
func (k *keepalivedProc) reload() {
	k.t.Helper()
	if err := k.proc.Signal(syscall.SIGHUP); err != nil {
		k.t.Fatalf("%s: reload keepalived: %v", k.h.Name, err)
	}
}

// stop is a graceful stop: SIGTERM to the parent, which stops its
// children (they remove the VIPs and, unless told to keep them, the IPVS
// services they made). It fails the test if any process outlives grace.
func (k *keepalivedProc) stop(grace time.Duration) {
	k.t.Helper()
	children := k.childPids()
	if err := k.proc.Stop(grace); err != nil && !strings.Contains(err.Error(), "exit") {
		k.t.Errorf("%s: stop keepalived: %v", k.h.Name, err)
	}
	k.waitGone(children, grace)
}

// kill is kill -9 of the daemon: SIGKILL to the parent and its children
// at once (its process group), as a crash of the service or systemd's
// final SIGKILL leaves it. Nothing of keepalived runs afterwards; what it
// had put in the kernel (VIPs, IPVS services, sync daemons) stays.
func (k *keepalivedProc) kill() {
	if k.proc == nil {
		return
	}
	children := k.childPids()
	k.proc.Kill()
	// A child that left the group is killed by pid.
	for _, pid := range children {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	k.waitGone(children, 5*time.Second)
}

// waitGone waits for pids, children of the test's own child, to be gone:
// init reaps them once their parent has died.
func (k *keepalivedProc) waitGone(pids []int, within time.Duration) {
	k.t.Helper()
	deadline := time.Now().Add(within)
	for {
		alive := slices.DeleteFunc(slices.Clone(pids), func(pid int) bool { return !processAlive(pid) })
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			k.t.Errorf("%s: keepalived processes %v still alive after %v", k.h.Name, alive, within)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// childrenOf lists the living processes whose parent is ppid, from
// /proc (the guest has no pgrep).
func childrenOf(ppid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" || f[1] != strconv.Itoa(ppid) {
			continue
		}
		pid, err := strconv.Atoi(strings.Fields(string(b))[0])
		if err == nil {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
