package director

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUntrustedOwnedFileDeletesNothing: owned.json that root alone could
// not have written (a world-writable directory, another owner, a FIFO)
// is refused with an error in the log, and its word deletes nothing: a
// service the config no longer names stays in the kernel.
func TestUntrustedOwnedFileDeletesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the state file must be owned by uid 0")
	}
	for _, tt := range []struct {
		name    string
		spoil   func(t *testing.T, dir, state string)
		message string
	}{
		{"world-writable directory", func(t *testing.T, dir, _ string) { chmod(t, dir, 0o777) }, "directory "},
		{"sticky world-writable directory", func(t *testing.T, dir, _ string) { chmod(t, dir, 0o1777) }, "directory "},
		{"owned by another user", func(t *testing.T, _, state string) {
			if err := os.Chown(state, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "uid 65534"},
		{"writable by others", func(t *testing.T, _, state string) { chmod(t, state, 0o666) }, "0666"},
		{"a FIFO", func(t *testing.T, _, state string) {
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(state, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			dir := t.TempDir()
			state := filepath.Join(dir, "owned.json")
			cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1)), svc("gone", "192.0.2.11", 80))
			converge(t, NewReconciler(k, quietLog(), state), cfg, nil2w())
			tt.spoil(t, dir, state)

			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			done := make(chan *Reconciler, 1)
			go func() { done <- NewReconciler(k, log, state) }()
			var r2 *Reconciler
			select {
			case r2 = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("NewReconciler still blocked after 5s")
			}
			k.resetCalls()
			res := converge(t, r2, cfgOf(cfg.Services[0]), nil2w())
			if res.Failed != 0 || k.calls["RemoveService"] != 0 {
				t.Errorf("an untrusted owned.json made directord remove a service: %+v %v", res, k.calls)
			}
			if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), tt.message) ||
				!strings.Contains(logged.String(), state) {
				t.Errorf("log does not say the file was refused (want an error naming %s and %q):\n%s", state, tt.message, logged.String())
			}
		})
	}
}

// TestOwnedFileWrittenSafely: the record is root's, 0600, replaced
// whole, and read back by the next process.
func TestOwnedFileWrittenSafely(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	k := newFakeKernel()
	dir := t.TempDir()
	state := filepath.Join(dir, "owned.json")
	converge(t, NewReconciler(k, quietLog(), state), cfgOf(svc("web", "192.0.2.10", 80)), nil2w())
	fi, err := os.Stat(state)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("owned.json: %v %v, want mode 0600", fi, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("state directory holds %v, want owned.json alone", ents)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
