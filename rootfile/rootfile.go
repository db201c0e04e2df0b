// Package rootfile reads the files directord and realserver trust: secrets
// (keys, passwords), public material that must not be forged (CA bundles)
// and the state files they write themselves. Each is refused unless root
// wrote it and nobody else could have, and no read can hang (a FIFO or a
// device planted at the path) or grow without bound (a huge file).
//
// Every check is made on the opened descriptor, so the file checked is the
// file read even if the path is replaced meanwhile. Files are opened with
// O_NONBLOCK: opening a FIFO then returns at once (and is refused as not a
// regular file); reading a regular file ignores the flag.
//
// Every file is opened relative to its directory, which must be root's
// alone: in a directory another user can write, the file could be swapped
// for a link to any root-owned file. Symbolic links are followed for
// secrets and public files (/etc holds many root-owned links, Debian's
// /etc/ssl/certs), when the link's directory and the directory of the
// file it leads to are both root's alone. State files are never links:
// they are written by rename, so a link there was planted.
package rootfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrInsecure is wrapped by every refusal for owner, mode, type or directory.
var ErrInsecure = errors.New("unsafe owner, mode or file type")

// ErrTooLarge is wrapped when a file is larger than the caller's bound.
var ErrTooLarge = errors.New("file too large")

// openFlags: O_NONBLOCK so a FIFO (or a tty) never blocks the open or the
// read; O_NOCTTY so a terminal planted there is not made ours.
const openFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// ReadSecret reads a secret (key, password): a regular file owned by
// root with no group or other permission bits (0600, 0400), in a
// directory only root can write, at most max bytes. A larger file is an
// error and is never read whole. A symbolic link is followed, and the
// directory of the file it leads to must be root's alone too.
func ReadSecret(path string, max int64) ([]byte, error) {
	return readRooted(path, max, 0o077, "0600", openInRootDir)
}

// ReadPublic reads a file others may read but must not be able to write
// (a CA bundle): a regular file owned by root, not writable by group or
// others, in a directory only root can write, at most max bytes. A
// symbolic link is followed as for ReadSecret.
func ReadPublic(path string, max int64) ([]byte, error) {
	return readRooted(path, max, 0o022, "0644", openInRootDir)
}

// readRooted opens path with open, checks the file is root's with none of
// the permission bits in forbidden (want is the mode the fix suggests),
// and reads at most max bytes.
func readRooted(path string, max int64, forbidden fs.FileMode, want string, open func(string) (*os.File, error)) ([]byte, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := check(path, f, forbidden, want); err != nil {
		return nil, err
	}
	return readBounded(path, f, max)
}

// ReadState reads a state file directord or realserver wrote: a regular
// file owned by root and not writable by group or others, in a directory
// owned by root and not writable by group or others (a writable directory
// lets anyone replace the file by rename). The file itself must not be a
// symbolic link. At most max bytes. A missing file is returned as an error
// wrapping fs.ErrNotExist so callers can start empty, but only once the
// directory has passed its checks: an absent file in an insecure
// directory is still refused.
func ReadState(path string, max int64) ([]byte, error) {
	return readRooted(path, max, 0o022, "0644", func(path string) (*os.File, error) {
		return openInCheckedDir(path, path,
			"a symbolic link; state files are written by directord and realserver, never as links: remove it")
	})
}

// openInRootDir opens the file at path for reading, in a directory only
// root can write: otherwise another user could swap the file for a link
// to any root-owned file (a private key would pass every check on the
// file itself, and be sent to a real server as a password). A symbolic
// link at path, which root alone could have put there, is resolved to a
// file in a directory that must be root's alone too; the file is then
// opened in that directory without following another link.
func openInRootDir(path string) (*os.File, error) {
	target := path
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if err := dirIsRoots(path, filepath.Dir(path)); err != nil {
			return nil, err
		}
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return nil, err
		}
	}
	return openInCheckedDir(path, target, "became a symbolic link while it was opened")
}

// openInCheckedDir opens target in its directory, which must be root's
// alone, without following a link there (link says what one means); path
// is the name the caller gave, for the errors.
func openInCheckedDir(path, target, link string) (*os.File, error) {
	dir, name := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	d, err := open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := checkDir(path, filepath.Clean(dir), d); err != nil {
		return nil, err
	}
	fd, err := openat(int(d.Fd()), name, openFlags|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%s: %s: %w", path, link, ErrInsecure)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// dirIsRoots checks the directory dir of path, by name.
func dirIsRoots(path, dir string) error {
	d, err := open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	defer d.Close()
	return checkDir(path, dir, d)
}

// WriteFile writes data to path atomically with mode perm: a temporary
// file in the same directory, fsync, rename over path, fsync the
// directory. A reader sees the old content or the new, never a part, and
// after a crash the rename is durable once WriteFile has returned.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Chmod on the descriptor: CreateTemp's 0600 and the umask would
	// otherwise decide the mode.
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("%s: sync directory: %w", dir, err)
	}
	return nil
}

func open(path string, flags int) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, flags, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// check says what is wrong with the opened file f, or nil: it must be
// a regular file owned by root with none of the permission bits in
// forbidden. want is the mode the fix suggests.
func check(path string, f *os.File, forbidden fs.FileMode, want string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot tell its owner: %w", path, ErrInsecure)
	}
	return problem(path, fi.Mode(), st.Uid, forbidden, want)
}

// problem is check's rule on a mode and an owner, apart for tests.
func problem(path string, mode fs.FileMode, uid uint32, forbidden fs.FileMode, want string) error {
	if !mode.IsRegular() {
		return fmt.Errorf("%s: not a regular file (mode %s): %w", path, mode, ErrInsecure)
	}
	if uid != 0 || mode.Perm()&forbidden != 0 {
		return fmt.Errorf("%s: owned by uid %d with mode %04o; run `chown root:root %s && chmod %s %s`: %w",
			path, uid, mode.Perm(), path, want, path, ErrInsecure)
	}
	return nil
}

// checkDir says what is wrong with the opened directory d, or nil: it
// must be owned by root and writable by no one else. The sticky bit does
// not make a group- or world-writable directory acceptable: a state
// directory is root's alone.
func checkDir(path, dir string, d *os.File) error {
	fi, err := d.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot tell the owner of its directory %s: %w", path, dir, ErrInsecure)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %s is not a directory: %w", path, dir, ErrInsecure)
	}
	if st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: its directory %s is owned by uid %d with mode %04o, so others could replace the file; run `chown root:root %s && chmod 0755 %s`: %w",
			path, dir, st.Uid, fi.Mode().Perm(), dir, dir, ErrInsecure)
	}
	return nil
}

// readBounded reads f whole if it holds at most max bytes. The size is
// checked first, so a huge file is refused without being read; the read
// is bounded too, in case the file grows between the check and the read.
func readBounded(path string, f *os.File, max int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed: %w", path, fi.Size(), max, ErrTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than the %d bytes allowed: %w", path, max, ErrTooLarge)
	}
	return b, nil
}
