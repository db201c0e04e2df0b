package realserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/rootfile/rootfiletest"
)

// TestUntrustedStateRefused: a state file root alone could not have
// written (in a world-writable directory, owned by another user, writable
// by others, a FIFO) is refused by down, status and up: each exits
// non-zero saying why and what to do, and the kernel is left as it was.
// Otherwise another user could plant a state file that makes down delete
// an interface, or hang realserver on a FIFO.
func TestUntrustedStateRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the state file must be owned by uid 0")
	}
	says := map[string]string{
		"world-writable directory":        "chmod 0755",
		"sticky world-writable directory": "chmod 0755",
		"owned by another user":           "uid 65534",
		"writable by others":              "chmod 0644",
		"writable by its group":           "chmod 0644",
		"a FIFO":                          "not a regular file",
	}
	for _, tt := range rootfiletest.Spoilers() {
		t.Run(tt.Name, func(t *testing.T) {
			if says[tt.Name] == "" {
				t.Fatalf("no expected message for %q", tt.Name)
			}
			dir := filepath.Join(t.TempDir(), "run")
			state := filepath.Join(dir, "state.json")
			k := server()
			if code, out, errs := cli(k, "up", "--mode", "tun", "--vip", "192.0.2.10", "--state", state); code != 0 {
				t.Fatalf("up: exit %d\n%s%s", code, out, errs)
			}
			tt.Spoil(t, dir, state)
			before := k.snapshot()
			for _, args := range [][]string{
				{"down", "--state", state},
				{"status", "--state", state},
				{"up", "--mode", "dr", "--vip", "192.0.2.20", "--state", state},
			} {
				type res struct {
					code      int
					out, errs string
				}
				ch := make(chan res, 1)
				go func() { c, o, e := cli(k, args...); ch <- res{c, o, e} }()
				var r res
				select {
				case r = <-ch:
				case <-time.After(5 * time.Second):
					t.Fatalf("realserver %s still blocked after 5s", strings.Join(args, " "))
				}
				if r.code == 0 || !strings.Contains(r.errs, state) || !strings.Contains(r.errs, says[tt.Name]) {
					t.Errorf("realserver %s: exit %d, stderr %q; want non-zero and an error naming %s and saying %q",
						strings.Join(args, " "), r.code, r.errs, state, says[tt.Name])
				}
				if after := k.snapshot(); after != before {
					t.Errorf("realserver %s changed the kernel:\nbefore\n%s\nafter\n%s", strings.Join(args, " "), before, after)
				}
			}
			if _, err := os.Lstat(state); err != nil {
				t.Errorf("the refused state file is gone: %v", err)
			}
		})
	}
}
