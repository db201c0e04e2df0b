package heartbeat

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestAuthKeyFileProblem(t *testing.T) {
	tests := []struct {
		mode fs.FileMode
		uid  uint32
		ok   bool
	}{
		{0o600, 0, true},
		{0o400, 0, true},
		{0o700, 0, true},
		{0o640, 0, false},
		{0o604, 0, false},
		{0o644, 0, false},
		{0o660, 0, false},
		{0o601, 0, false},
		{0o610, 0, false},
		{0o600, 1000, false},
		{0o400, 1, false},
		{fs.ModeDir | 0o700, 0, false},
		{fs.ModeNamedPipe | 0o600, 0, false},
		{fs.ModeSymlink | 0o600, 0, false},
		{fs.ModeDevice | fs.ModeCharDevice | 0o600, 0, false},
	}
	for _, tt := range tests {
		err := authKeyFileProblem("/etc/director/authkey", tt.mode, tt.uid)
		if tt.ok && err != nil {
			t.Errorf("mode %s uid %d: %v, want accepted", tt.mode, tt.uid, err)
		}
		if !tt.ok && !errors.Is(err, ErrKeyFileInsecure) {
			t.Errorf("mode %s uid %d: %v, want ErrKeyFileInsecure", tt.mode, tt.uid, err)
		}
	}
}

func TestAuthKeyFileProblemSaysWhatToDo(t *testing.T) {
	err := authKeyFileProblem("/etc/director/authkey", 0o644, 1000)
	for _, want := range []string{"/etc/director/authkey", "uid 1000", "0644", "chown root:root /etc/director/authkey && chmod 0600 /etc/director/authkey"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestAuthKeyFromContent(t *testing.T) {
	key16 := "0123456789abcdef"
	tests := []struct {
		content string
		want    string // "" for an error
	}{
		{key16, key16},
		{key16 + "\n", key16},
		{key16 + "\r\n", key16},
		{key16 + "\n\n", key16 + "\n"},
		{key16 + " ", key16 + " "},
		{key16[:15] + "\n", ""},
		{key16[:15] + "\r\n", ""},
		{"\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := authKeyFromContent("k", []byte(tt.content))
		if tt.want == "" {
			if err == nil {
				t.Errorf("content %q: key %q, want an error", tt.content, got)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("content %q: %q, %v; want %q", tt.content, got, err, tt.want)
		}
	}
}

// authKeyTestFile writes a key file owned by uid with mode. Changing
// the owner needs root.
func authKeyTestFile(t *testing.T, content string, mode fs.FileMode, uid int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	p := filepath.Join(t.TempDir(), "authkey")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadAuthKey(t *testing.T) {
	const key = "s3cret-key-of-24-bytes!!"
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		uid     int
		want    string
		wantErr error // nil with want "": any error
	}{
		{"0600 root", key + "\n", 0o600, 0, key, nil},
		{"0400 root", key + "\r\n", 0o400, 0, key, nil},
		{"group readable", key, 0o640, 0, "", ErrKeyFileInsecure},
		{"world readable", key, 0o644, 0, "", ErrKeyFileInsecure},
		{"owned by a user", key, 0o600, 1000, "", ErrKeyFileInsecure},
		{"too short", "short\n", 0o600, 0, "", nil},
		{"too long", strings.Repeat("k", authKeyMaxLen+1), 0o600, 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := authKeyTestFile(t, tt.content, tt.mode, tt.uid)
			got, err := ReadAuthKey(p)
			if tt.want != "" {
				if err != nil || string(got) != tt.want {
					t.Fatalf("ReadAuthKey = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadAuthKey = %q, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAuthKey: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && errors.Is(err, ErrKeyFileInsecure) {
				t.Fatalf("ReadAuthKey: %v, blames the file's permissions", err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestReadAuthKeyFollowsSymlinkToTheFileItChecks(t *testing.T) {
	good := authKeyTestFile(t, "0123456789abcdef\n", 0o600, 0)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadAuthKey(link); err != nil || !bytes.Equal(got, []byte("0123456789abcdef")) {
		t.Fatalf("through a symlink to a good file: %q, %v", got, err)
	}
	bad := authKeyTestFile(t, "0123456789abcdef\n", 0o644, 0)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bad, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAuthKey(link); !errors.Is(err, ErrKeyFileInsecure) {
		t.Fatalf("through a symlink to a world-readable file: %v, want ErrKeyFileInsecure", err)
	}
}

func TestReadAuthKeyRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAuthKey(dir); !errors.Is(err, ErrKeyFileInsecure) {
		t.Errorf("directory: %v, want ErrKeyFileInsecure", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Nobody writes to the FIFO: a blocking open or read would hang here.
	if _, err := ReadAuthKey(fifo); !errors.Is(err, ErrKeyFileInsecure) {
		t.Errorf("FIFO: %v, want ErrKeyFileInsecure", err)
	}
}

func TestReadAuthKeyMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none")
	if _, err := ReadAuthKey(p); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist naming %s", err, p)
	}
}
