package failover

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/childenv"
)

// hookResult runs runHook in the background and waits for it, at most
// within: a hook that does not return by then fails the test.
func hookResult(t *testing.T, within, timeout time.Duration, argv []string, args ...string) (time.Duration, error) {
	t.Helper()
	type result struct {
		err error
		d   time.Duration
	}
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		err := runHook(context.Background(), timeout, argv, args...)
		ch <- result{err, time.Since(start)}
	}()
	select {
	case r := <-ch:
		return r.d, r.err
	case <-time.After(within):
		t.Fatalf("%q has not returned after %v", argv, within)
		return 0, nil
	}
}

// killLeftover kills the process whose pid the hook wrote to file.
func killLeftover(t *testing.T, file string) {
	t.Cleanup(func() {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// A fence that starts something in the background and exits 0 has
// succeeded: the process it left behind holds its stderr open, which
// must not turn the success into a failure (a dead peer would then never
// be taken over), nor hold the hook until its timeout.
func TestHookLeftoverChildExitStatusDecides(t *testing.T) {
	for _, exit := range []int{0, 3} {
		t.Run(strconv.Itoa(exit), func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "pid")
			killLeftover(t, pidfile)
			script := `sleep 60 & echo $! > "$1"; exit ` + strconv.Itoa(exit)
			took, err := hookResult(t, 5*time.Second, 30*time.Second, []string{"/bin/sh", "-c", script, "fence"}, pidfile)
			if exit == 0 && err != nil {
				t.Fatalf("a fence that exited 0 failed: %v", err)
			}
			if exit != 0 && (err == nil || !strings.Contains(err.Error(), "exit status 3")) {
				t.Fatalf("a fence that exited 3: %v, want exit status 3", err)
			}
			if took > 2*time.Second {
				t.Errorf("the hook took %v: a leftover process held it", took)
			}
		})
	}
}

// A hook's output is read through a bounded buffer: 50 MB on stderr
// costs neither memory nor an error line of that size, and the exit
// status alone decides.
func TestHookOutputCapped(t *testing.T) {
	const size = 50 << 20
	script := `head -c ` + strconv.Itoa(size) + ` /dev/zero | tr '\0' x >&2; exit $1`
	for _, exit := range []string{"0", "1"} {
		t.Run(exit, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := hookResult(t, 20*time.Second, 20*time.Second, []string{"/bin/sh", "-c", script, "notify"}, exit)
			runtime.ReadMemStats(&after)
			if exit == "0" && err != nil {
				t.Fatalf("exit 0: %v", err)
			}
			if exit == "1" {
				if err == nil || !strings.Contains(err.Error(), "exit status 1: xxxx") {
					t.Fatalf("exit 1: %.200v, want the exit status and the start of stderr", err)
				}
				if n := len(err.Error()); n > hookOutputMax+512 {
					t.Errorf("the error is %d bytes long; the output kept is capped at %d", n, hookOutputMax)
				}
			}
			// TotalAlloc only grows, so a collection in between hides
			// nothing; what else runs in this test allocates little.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("%d MB allocated reading %d MB of output", alloc>>20, size>>20)
			}
		})
	}
}

// A hook sees the stated environment only, none of directord's own,
// which may hold the secrets password_env names.
func TestHookEnvironment(t *testing.T) {
	t.Setenv("DIRECTOR_TEST_SECRET", "hunter2")
	out := filepath.Join(t.TempDir(), "env")
	if _, err := hookResult(t, 5*time.Second, 5*time.Second, []string{"/bin/sh", "-c", `exec /usr/bin/env > "$0"`}, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// The shell sets PWD itself.
		if !strings.HasPrefix(kv, "PWD=") {
			got = append(got, kv)
		}
	}
	want := childenv.Environ()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		// Names only: the test's own environment may hold secrets.
		t.Errorf("the hook's environment has %s; want %q", envNames(got), want)
	}
}

// envNames lists the names in env, not the values.
func envNames(env []string) string {
	var names []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	return strings.Join(names, " ")
}
