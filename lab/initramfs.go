package lab

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// Initramfs writes an uncompressed newc cpio archive, the format the kernel
// unpacks into its initial rootfs. Uncompressed, because under software
// emulation the guest's gunzip costs more than reading the extra bytes.
//
// Parent directories are created on demand; each path is written once.
type Initramfs struct {
	w    *bufio.Writer
	ino  uint32
	kind map[string]uint32 // path -> S_IFDIR, S_IFREG, ...
	err  error
}

// NewInitramfs starts an archive on w. Close must be called to finish it.
func NewInitramfs(w io.Writer) *Initramfs {
	return &Initramfs{w: bufio.NewWriterSize(w, 1<<20), kind: map[string]uint32{}}
}

const newcMagic = "070701"

// header writes one newc entry header and its padded name.
func (a *Initramfs) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) {
	if a.err != nil {
		return
	}
	if size > 0xffffffff {
		a.err = fmt.Errorf("initramfs: %s: %d bytes is too large for newc", name, size)
		return
	}
	a.ino++
	nlink := uint32(1)
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	fields := []uint32{a.ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rdevMajor, rdevMinor, uint32(len(name) + 1), 0}
	var b strings.Builder
	b.WriteString(newcMagic)
	for _, f := range fields {
		fmt.Fprintf(&b, "%08X", f)
	}
	b.WriteString(name)
	b.WriteByte(0)
	// The header (110 bytes) plus name is padded to a multiple of four.
	for (b.Len())%4 != 0 {
		b.WriteByte(0)
	}
	_, a.err = a.w.WriteString(b.String())
}

func (a *Initramfs) pad(size int64) {
	if a.err != nil {
		return
	}
	if r := size % 4; r != 0 {
		_, a.err = a.w.Write(make([]byte, 4-r))
	}
}

// clean normalises an archive path: no leading slash, no dot segments.
func clean(name string) (string, error) {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if n == "" {
		return "", fmt.Errorf("initramfs: empty path %q", name)
	}
	return n, nil
}

// claim reserves name for an entry of the given kind and creates its
// parents. It reports false if the name was already written, which is an
// error for everything but a directory added again.
func (a *Initramfs) claim(name string, kind uint32) bool {
	if _, ok := a.kind[name]; ok {
		return false
	}
	if dir := path.Dir(name); dir != "." {
		a.Dir(dir, 0o755)
	}
	a.kind[name] = kind
	return true
}

// Dir adds a directory (and its parents). Adding it twice is harmless.
func (a *Initramfs) Dir(name string, perm fs.FileMode) error {
	n, err := clean(name)
	if err != nil {
		return a.fail(err)
	}
	if a.claim(n, syscall.S_IFDIR) {
		a.header(n, syscall.S_IFDIR|modeBits(perm), 0, 0, 0)
	} else if a.kind[n] != syscall.S_IFDIR {
		return a.fail(fmt.Errorf("initramfs: %s is already a file", n))
	}
	return a.err
}

// modeBits converts permissions, and the sticky, setuid and setgid bits
// that fs.FileMode keeps apart, to the archive's mode.
func modeBits(perm fs.FileMode) uint32 {
	m := uint32(perm.Perm())
	if perm&fs.ModeSticky != 0 {
		m |= syscall.S_ISVTX
	}
	if perm&fs.ModeSetuid != 0 {
		m |= syscall.S_ISUID
	}
	if perm&fs.ModeSetgid != 0 {
		m |= syscall.S_ISGID
	}
	return m
}

func (a *Initramfs) fail(err error) error {
	if a.err == nil {
		a.err = err
	}
	return a.err
}

func (a *Initramfs) claimFile(name string, kind uint32) (string, error) {
	n, err := clean(name)
	if err != nil {
		return "", a.fail(err)
	}
	if !a.claim(n, kind) {
		return "", a.fail(fmt.Errorf("initramfs: %s added twice", n))
	}
	if a.err == nil && a.kind[path.Dir(n)] != syscall.S_IFDIR && path.Dir(n) != "." {
		a.err = fmt.Errorf("initramfs: %s: parent is not a directory", n)
	}
	return n, a.err
}

// File adds a regular file with the given contents.
func (a *Initramfs) File(name string, perm fs.FileMode, data []byte) error {
	n, err := a.claimFile(name, syscall.S_IFREG)
	if err != nil {
		return err
	}
	a.header(n, syscall.S_IFREG|modeBits(perm), int64(len(data)), 0, 0)
	if a.err == nil {
		_, a.err = a.w.Write(data)
	}
	a.pad(int64(len(data)))
	return a.err
}

// CopyFile adds the file at src, streamed rather than read into memory.
func (a *Initramfs) CopyFile(name string, perm fs.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return a.fail(fmt.Errorf("initramfs: %w", err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return a.fail(fmt.Errorf("initramfs: %w", err))
	}
	n, err := a.claimFile(name, syscall.S_IFREG)
	if err != nil {
		return err
	}
	a.header(n, syscall.S_IFREG|modeBits(perm), st.Size(), 0, 0)
	if a.err == nil {
		var copied int64
		copied, a.err = io.Copy(a.w, f)
		if a.err == nil && copied != st.Size() {
			a.err = fmt.Errorf("initramfs: %s changed size while being copied", src)
		}
	}
	a.pad(st.Size())
	return a.err
}

// Symlink adds a symbolic link name -> target.
func (a *Initramfs) Symlink(name, target string) error {
	n, err := a.claimFile(name, syscall.S_IFLNK)
	if err != nil {
		return err
	}
	a.header(n, syscall.S_IFLNK|0o777, int64(len(target)), 0, 0)
	if a.err == nil {
		_, a.err = a.w.WriteString(target)
	}
	a.pad(int64(len(target)))
	return a.err
}

// CharDev adds a character device node, such as /dev/console, which the
// kernel opens for init before any devtmpfs is mounted.
func (a *Initramfs) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	n, err := a.claimFile(name, syscall.S_IFCHR)
	if err != nil {
		return err
	}
	a.header(n, syscall.S_IFCHR|modeBits(perm), 0, major, minor)
	return a.err
}

// Close writes the trailer and flushes. The archive is unusable after an
// error, and Close reports the first one.
func (a *Initramfs) Close() error {
	a.header("TRAILER!!!", 0, 0, 0, 0)
	if a.err == nil {
		a.err = a.w.Flush()
	}
	return a.err
}
