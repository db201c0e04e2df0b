package checks

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/childenv"
)

// helperArg, as the first argument of the test binary, turns it into the
// exec-check helper instead of running tests (see TestMain).
const helperArg = "__checks_helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		os.Exit(helper(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// helperArgv is the command line of this binary as the helper. An exec
// check gets none of this process's environment, so GORACE is set on the
// command line: helpers built with -race otherwise linger a second at
// exit 0 (the race runtime's atexit_sleep_ms), which would look like a
// slow check.
func helperArgv(t *testing.T, args ...string) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"/usr/bin/env", "GORACE=atexit_sleep_ms=0", self, helperArg}, args...)
}

// helper is what exec checks run in tests:
//
//	print TEXT            print TEXT, exit 0
//	equal A B             exit 0 if A == B, else 1 with a message on stderr
//	grandchild PIDFILE    start "sleep" in the same process group, write its pid, sleep
//	orphan PIDFILE        start "sleep" holding our stdout, write its pid, exit 0 at once
//	sleep                 sleep 30s
func helper(args []string) int {
	switch args[0] {
	case "print":
		fmt.Println(args[1])
		return 0
	case "equal":
		if args[1] != args[2] {
			fmt.Fprintf(os.Stderr, "%q != %q\n", args[1], args[2])
			return 1
		}
		return 0
	case "grandchild", "orphan":
		c := exec.Command(os.Args[0], helperArg, "sleep")
		if args[0] == "orphan" {
			c.Stdout = os.Stdout
		}
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if err := os.WriteFile(args[1], []byte(strconv.Itoa(c.Process.Pid)), 0o600); err != nil {
			return 2
		}
		if args[0] == "orphan" {
			return 0
		}
		time.Sleep(30 * time.Second)
		return 0
	case "sleep":
		time.Sleep(30 * time.Second)
		return 0
	}
	return 3
}

// gone waits (bounded) until pid no longer runs: no such process, or a
// zombie nobody has reaped yet (it was killed; its parent is gone).
func gone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// The state is the field after the parenthesised command name.
		zombie := false
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && len(stat) > i+2 {
			zombie = stat[i+2] == 'Z'
		}
		if err != nil || zombie {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still alive 3s after the probe ended", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("helper wrote no pid file: %v", err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestExec(t *testing.T) {
	target := netip.MustParseAddrPort("192.0.2.7:8080")
	tests := []struct {
		name    string
		e       Exec
		ok      bool
		weight  int
		errLike string
	}{
		{"true", Exec{Argv: []string{"/bin/true"}}, true, NoWeight, ""},
		{"false", Exec{Argv: []string{"/bin/false"}}, false, NoWeight, "exit status 1"},
		{"missing program", Exec{Argv: []string{"/nonexistent/check"}}, false, NoWeight, "no such file"},
		{"no command", Exec{}, false, NoWeight, "no command"},
		{"placeholders", Exec{Argv: helperArgv(t, "equal", "{address}:{port}", "192.0.2.7:8080")}, true, NoWeight, ""},
		{"placeholders fail with stderr", Exec{Argv: helperArgv(t, "equal", "{address}", "x")}, false, NoWeight, `"192.0.2.7" != "x"`},
		{"no shell", Exec{Argv: helperArgv(t, "equal", "$HOME;{port}", "$HOME;8080")}, true, NoWeight, ""},
		{"weight", Exec{Argv: helperArgv(t, "print", "42"), DynamicWeight: true}, true, 42, ""},
		{"weight from placeholder clamped", Exec{Argv: helperArgv(t, "print", "{port}"), DynamicWeight: true}, true, 100, ""},
		{"negative weight clamped", Exec{Argv: helperArgv(t, "print", "-5"), DynamicWeight: true}, true, 0, ""},
		{"not a number", Exec{Argv: helperArgv(t, "print", "fine"), DynamicWeight: true}, true, NoWeight, ""},
		{"weight ignored unless asked", Exec{Argv: helperArgv(t, "print", "42")}, true, NoWeight, ""},
		{"timeout", Exec{Argv: []string{"/bin/sleep", "30"}}, false, NoWeight, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeWithin(t, tt.e, target, time.Second)
			if r.OK != tt.ok || r.Weight != tt.weight {
				t.Fatalf("OK, Weight = %v, %d (err %v), want %v, %d", r.OK, r.Weight, r.Err, tt.ok, tt.weight)
			}
			if tt.errLike != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.errLike)) {
				t.Fatalf("err = %v, want it to mention %q", r.Err, tt.errLike)
			}
		})
	}
}

func TestExecKillsProcessGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	e := Exec{Argv: helperArgv(t, "grandchild", pidfile)}
	r := probeWithin(t, e, netip.MustParseAddrPort("127.0.0.1:1"), 500*time.Millisecond)
	if r.OK || r.Err == nil || !strings.Contains(r.Err.Error(), "deadline exceeded") {
		t.Fatalf("probe = %+v, want a timeout failure", r)
	}
	gone(t, readPid(t, pidfile))
}

func TestExecOrphanHoldingStdout(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	e := Exec{Argv: helperArgv(t, "orphan", pidfile)}
	r := probeWithin(t, e, netip.MustParseAddrPort("127.0.0.1:1"), 5*time.Second)
	if r.OK || r.Err == nil || !strings.Contains(r.Err.Error(), "kept its output open") {
		t.Fatalf("probe = %+v, want a failure naming the leftover process", r)
	}
	if r.Latency > 2*time.Second {
		t.Errorf("latency %v: the leftover process should cost at most WaitDelay", r.Latency)
	}
	gone(t, readPid(t, pidfile))
}

// An exec check sees the stated environment only, none of directord's
// own, which holds the secrets password_env names.
func TestExecEnvironment(t *testing.T) {
	t.Setenv("DIRECTOR_TEST_SECRET", "hunter2")
	out := filepath.Join(t.TempDir(), "env")
	e := Exec{Argv: []string{"/bin/sh", "-c", `exec /usr/bin/env > "$0"`, out}}
	if r := probeWithin(t, e, netip.MustParseAddrPort("127.0.0.1:1"), 5*time.Second); !r.OK {
		t.Fatalf("probe: %v", r.Err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got, names []string
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// The shell sets PWD itself.
		if !strings.HasPrefix(kv, "PWD=") {
			got = append(got, kv)
			name, _, _ := strings.Cut(kv, "=")
			names = append(names, name)
		}
	}
	want := childenv.Environ()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		// Names only: the test's own environment may hold secrets.
		t.Errorf("the check's environment has %s; want %q", strings.Join(names, " "), want)
	}
}
