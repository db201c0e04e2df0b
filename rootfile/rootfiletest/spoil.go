// Package rootfiletest spoils a state file in each way package rootfile
// refuses, for the tests of the packages that keep state files: each
// proves its own reaction (nothing trusted, nothing changed) to every
// one of them.
package rootfiletest

import (
	"os"
	"syscall"
	"testing"
)

// Spoiler makes file, in dir, one that root alone could not have written.
type Spoiler struct {
	Name  string
	Spoil func(t testing.TB, dir, file string)
}

// Spoilers are the ways, each with a name a test can key its expected
// message on. The callers run as root (the files must be root's to
// begin with).
func Spoilers() []Spoiler {
	return []Spoiler{
		{"world-writable directory", func(t testing.TB, dir, _ string) { chmod(t, dir, 0o777) }},
		{"sticky world-writable directory", func(t testing.TB, dir, _ string) { chmod(t, dir, 0o1777) }},
		{"owned by another user", func(t testing.TB, _, file string) {
			if err := os.Chown(file, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"writable by others", func(t testing.TB, _, file string) { chmod(t, file, 0o666) }},
		{"writable by its group", func(t testing.TB, _, file string) { chmod(t, file, 0o620) }},
		{"a FIFO", func(t testing.TB, _, file string) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(file, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

func chmod(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
