package rootfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned within d: a
// read that blocks (a FIFO) must show as a failure, not a hung test.
func within[T any](t *testing.T, d time.Duration, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(d):
		t.Fatalf("still blocked after %s", d)
		panic("unreachable")
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: files must be owned by uid 0")
	}
}

// secureDir returns a directory owned by root with mode 0755.
func secureDir(t *testing.T) string {
	t.Helper()
	needRoot(t)
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, path string, data string, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // beat the umask
		t.Fatal(err)
	}
}

type reader struct {
	name string
	read func(string, int64) ([]byte, error)
}

var readers = []reader{{"ReadSecret", ReadSecret}, {"ReadPublic", ReadPublic}, {"ReadState", ReadState}}

func TestReadGoodFile(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "f")
	writeFile(t, p, "hello\n", 0o600)
	for _, r := range readers {
		b, err := r.read(p, 64)
		if err != nil || string(b) != "hello\n" {
			t.Errorf("%s: %q, %v; want the content", r.name, b, err)
		}
	}
	writeFile(t, p, "hello\n", 0o644)
	for _, r := range readers[1:] {
		if _, err := r.read(p, 64); err != nil {
			t.Errorf("%s of a 0644 file: %v, want accepted", r.name, err)
		}
	}
}

func TestFIFONeverBlocks(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		_, err := within(t, 5*time.Second, func() ([]byte, error) { return r.read(p, 64) })
		if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s of a FIFO: %v, want ErrInsecure saying not a regular file", r.name, err)
		}
	}
}

func TestSecretWithGroupOrOtherBitsRefused(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "secret")
	for _, perm := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
		writeFile(t, p, "pw", perm)
		_, err := ReadSecret(p, 64)
		if !errors.Is(err, ErrInsecure) {
			t.Errorf("mode %04o: %v, want ErrInsecure", perm, err)
		}
	}
	writeFile(t, p, "pw", 0o644)
	_, err := ReadSecret(p, 64)
	for _, want := range []string{p, "0644", "chown root:root " + p + " && chmod 0600 " + p} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, perm := range []fs.FileMode{0o600, 0o400, 0o700} {
		writeFile(t, p, "pw", perm)
		if _, err := ReadSecret(p, 64); err != nil {
			t.Errorf("mode %04o: %v, want accepted", perm, err)
		}
	}
}

func TestWritableByOthersRefused(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "f")
	for _, r := range readers {
		for _, perm := range []fs.FileMode{0o666, 0o646, 0o664} {
			writeFile(t, p, "x", perm)
			if _, err := r.read(p, 64); !errors.Is(err, ErrInsecure) {
				t.Errorf("%s of mode %04o: %v, want ErrInsecure", r.name, perm, err)
			}
		}
	}
}

func TestOtherOwnerRefused(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "f")
	writeFile(t, p, "x", 0o600)
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		_, err := r.read(p, 64)
		if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("%s of a file owned by 65534: %v, want ErrInsecure naming the uid", r.name, err)
		}
	}
}

func TestStateInInsecureDirectoryRefused(t *testing.T) {
	for _, tt := range []struct {
		perm fs.FileMode
		uid  int
	}{{0o777, 0}, {0o1777, 0}, {0o775, 0}, {0o757, 0}, {0o755, 65534}} {
		d := secureDir(t)
		p := filepath.Join(d, "state.json")
		writeFile(t, p, "{}", 0o644)
		if err := os.Chmod(d, tt.perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, tt.uid, 0); err != nil {
			t.Fatal(err)
		}
		_, err := ReadState(p, 64)
		if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "directory "+d) || !strings.Contains(err.Error(), "chmod 0755 "+d) {
			t.Errorf("directory mode %s uid %d: %v, want ErrInsecure naming the directory", tt.perm, tt.uid, err)
		}
		// An absent file there is refused too, not taken as "start empty".
		_, err = ReadState(filepath.Join(d, "absent"), 64)
		if !errors.Is(err, ErrInsecure) || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("absent file in directory mode %s uid %d: %v, want ErrInsecure", tt.perm, tt.uid, err)
		}
	}
}

func TestStateMissingIsNotExist(t *testing.T) {
	d := secureDir(t)
	_, err := ReadState(filepath.Join(d, "absent"), 64)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing state file: %v, want fs.ErrNotExist", err)
	}
	_, err = ReadState(filepath.Join(d, "nodir", "absent"), 64)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing state directory: %v, want fs.ErrNotExist", err)
	}
}

func TestTooLargeRefusedWithoutReading(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "big")
	writeFile(t, p, "", 0o600)
	// A sparse terabyte: reading it whole would take far longer than
	// the deadline and all the memory there is.
	if err := os.Truncate(p, 1<<40); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		_, err := within(t, 5*time.Second, func() ([]byte, error) { return r.read(p, 4096) })
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s of a 1 TiB file: %v, want ErrTooLarge naming the path", r.name, err)
		}
	}
	writeFile(t, p, strings.Repeat("x", 4097), 0o600)
	if _, err := ReadSecret(p, 4096); !errors.Is(err, ErrTooLarge) {
		t.Errorf("4097 bytes with max 4096: %v, want ErrTooLarge", err)
	}
	writeFile(t, p, strings.Repeat("x", 4096), 0o600)
	if b, err := ReadSecret(p, 4096); err != nil || len(b) != 4096 {
		t.Errorf("4096 bytes with max 4096: %d bytes, %v; want accepted", len(b), err)
	}
}

// TestReadIsBoundedWhenSizeLies reads a file whose stat size is 0 but
// which holds more (procfs): the bound holds on the read itself.
func TestReadIsBoundedWhenSizeLies(t *testing.T) {
	needRoot(t)
	if _, err := ReadPublic("/proc/self/status", 8); !errors.Is(err, ErrTooLarge) {
		t.Errorf("/proc/self/status with max 8: %v, want ErrTooLarge", err)
	}
}

func TestSymlinks(t *testing.T) {
	d := secureDir(t)
	good := filepath.Join(d, "good")
	writeFile(t, good, "pw", 0o600)
	bad := filepath.Join(d, "bad")
	writeFile(t, bad, "pw", 0o644)
	toGood := filepath.Join(d, "to-good")
	toBad := filepath.Join(d, "to-bad")
	for l, target := range map[string]string{toGood: good, toBad: bad} {
		if err := os.Symlink(target, l); err != nil {
			t.Fatal(err)
		}
	}
	// Secrets and public files follow links (as /etc/ssl/certs needs);
	// the file reached is checked.
	if b, err := ReadSecret(toGood, 64); err != nil || string(b) != "pw" {
		t.Errorf("ReadSecret through a link to a good file: %q, %v", b, err)
	}
	if _, err := ReadSecret(toBad, 64); !errors.Is(err, ErrInsecure) {
		t.Errorf("ReadSecret through a link to a 0644 file: %v, want ErrInsecure", err)
	}
	if _, err := ReadPublic(toGood, 64); err != nil {
		t.Errorf("ReadPublic through a link to a good file: %v", err)
	}
	// A link in a root-only directory to a file in a directory others
	// can write is not followed: they could swap the file for a link to
	// a root key.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(open, "pw")
	writeFile(t, planted, "root key", 0o600)
	toPlanted := filepath.Join(d, "to-planted")
	if err := os.Symlink(planted, toPlanted); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{planted, toPlanted} {
		if b, err := ReadSecret(p, 64); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "its directory") {
			t.Errorf("ReadSecret(%s) in a world-writable directory: %q, %v; want ErrInsecure naming the directory", p, b, err)
		}
		if _, err := ReadPublic(p, 64); !errors.Is(err, ErrInsecure) {
			t.Errorf("ReadPublic(%s) in a world-writable directory: %v, want ErrInsecure", p, err)
		}
	}
	// A chain of links through root's directories is resolved.
	twice := filepath.Join(d, "twice")
	if err := os.Symlink(toGood, twice); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadSecret(twice, 64); err != nil || string(b) != "pw" {
		t.Errorf("ReadSecret through two links in root's directory: %q, %v", b, err)
	}
	// State files are never links.
	_, err := ReadState(toGood, 64)
	if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("ReadState of a link: %v, want ErrInsecure saying it is a link", err)
	}
}

func TestWriteFile(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "state.json")
	for _, data := range []string{"first", "second, longer"} {
		if err := WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := ReadState(p, 64)
		if err != nil || !bytes.Equal(b, []byte(data)) {
			t.Errorf("read back %q, %v; want %q", b, err, data)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if err := WriteFile(p, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	ents, err := os.ReadDir(d)
	if err != nil || len(ents) != 1 {
		t.Errorf("directory holds %v, %v; want only the file (no temporary left)", ents, err)
	}
}

func TestWriteFileFailureLeavesNoTemporary(t *testing.T) {
	d := secureDir(t)
	p := filepath.Join(d, "sub")
	if err := os.Mkdir(p, 0o755); err != nil { // a directory: rename over it fails
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("x"), 0o644); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	ents, _ := os.ReadDir(d)
	if len(ents) != 1 {
		t.Errorf("directory holds %v; want only sub (temporary removed)", ents)
	}
}
