package director

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/rootfile/rootfiletest"
)

// TestUntrustedOwnedFileDeletesNothing: owned.json that root alone could
// not have written (a world-writable directory, another owner, a FIFO)
// is refused with an error in the log, and its word deletes nothing: a
// service the config no longer names stays in the kernel.
func TestUntrustedOwnedFileDeletesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the state file must be owned by uid 0")
	}
	says := map[string]string{
		"world-writable directory":        "directory ",
		"sticky world-writable directory": "directory ",
		"owned by another user":           "uid 65534",
		"writable by others":              "0666",
		"writable by its group":           "0620",
		"a FIFO":                          "not a regular file",
	}
	for _, tt := range rootfiletest.Spoilers() {
		t.Run(tt.Name, func(t *testing.T) {
			if says[tt.Name] == "" {
				t.Fatalf("no expected message for %q", tt.Name)
			}
			k := newFakeKernel()
			dir := t.TempDir()
			state := filepath.Join(dir, "owned.json")
			cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1)), svc("gone", "192.0.2.11", 80))
			converge(t, NewReconciler(k, quietLog(), state), cfg, nil2w())
			tt.Spoil(t, dir, state)

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
			if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), says[tt.Name]) ||
				!strings.Contains(logged.String(), state) {
				t.Errorf("log does not say the file was refused (want an error naming %s and %q):\n%s", state, says[tt.Name], logged.String())
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
