package control

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// control.socket is a path in the config: pointing it at a file that is
// not a socket (a typo, /etc/director/director.yaml) must not make
// directord delete that file. Only a stale socket is replaced.
func TestListenKeepsWhatIsNotASocket(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name   string
		create func(path string) error
	}{
		{"regular file", func(p string) error { return os.WriteFile(p, []byte("keep me\n"), 0o600) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"symlink to a file", func(p string) error {
			target := p + ".target"
			if err := os.WriteFile(target, []byte("keep me\n"), 0o600); err != nil {
				return err
			}
			return os.Symlink(target, p)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := tt.create(path); err != nil {
				t.Fatal(err)
			}
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			l, err := Listen(path)
			if err == nil {
				l.Close()
				t.Fatalf("Listen over a %s succeeded", tt.name)
			}
			if !strings.Contains(err.Error(), "not a socket") {
				t.Errorf("Listen: %v, want a refusal naming it not a socket", err)
			}
			after, err := os.Lstat(path)
			if err != nil {
				t.Fatalf("the %s was removed: %v", tt.name, err)
			}
			if !os.SameFile(before, after) {
				t.Errorf("the %s was replaced", tt.name)
			}
		})
	}
}
