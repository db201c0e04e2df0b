package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// LdirectordTrees are the host paths that run Debian's ldirectord (a Perl
// program) in the guest, for e2e/import_ldirectord_test.go: the
// interpreter, the script, Perl's module trees as perl -V lists them on
// Debian 12 (@INC), the shell ldirectord runs ipvsadm through (system()
// and open() with redirections need /bin/sh), ipvsadm where ldirectord
// looks for it (/sbin or /usr/sbin), the service and protocol names it
// resolves ports with, and the shared libraries of the compiled modules
// its checks load (Net::SSLeay for https, DBD::mysql for mysql,
// Compress::Raw::Zlib for LWP).
var LdirectordTrees = []string{
	"/usr/bin/perl", "/usr/sbin/ldirectord", "/bin/sh", "/usr/sbin/ipvsadm",
	"/etc/perl", "/etc/services", "/etc/protocols",
	"/usr/lib/x86_64-linux-gnu/perl5/5.36", "/usr/share/perl5", "/usr/lib/x86_64-linux-gnu/perl-base",
	"/usr/lib/x86_64-linux-gnu/perl/5.36", "/usr/share/perl/5.36",
	"/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libcrypto.so.3",
	"/lib/x86_64-linux-gnu/libmariadb.so.3", "/lib/x86_64-linux-gnu/libz.so.1",
}

// HostTree returns the files that put the host path root, a file or a
// whole directory, at the same path in the guest. A symbolic link on the
// way to root is followed (the guest gets the path as named, e.g. Perl's
// .../perl/5.36, a link to 5.36.0); inside a directory, links to files
// are copied as files and links to directories are left out (no cycles).
// Documentation (*.pod) and C headers (*.h) are left out: nothing in the
// guest reads them, and they are a fifth of Perl's trees.
//
// root itself, when it is an ELF file, comes with the shared libraries ldd
// names, as HostBinary's do. ELF files inside a directory do not: a tree
// such as /usr/share/perl5 holds modules of every package installed on
// the host, whose libraries (ICU for XML::LibXML: 30 MB) the guest's
// programs never load; name the libraries a program needs as roots.
func HostTree(ctx context.Context, root string) ([]File, error) {
	if !path.IsAbs(root) || path.Clean(root) != root {
		return nil, fmt.Errorf("host tree %q: must be an absolute, clean path", root)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("host tree %s is not on this host (make deps installs it): %w", root, err)
	}
	if st.Mode().IsRegular() {
		files := []File{{Src: root, Dst: root, Mode: st.Mode().Perm()}}
		elf, err := isELF(root)
		if err != nil || !elf {
			return files, err
		}
		libs, err := lddLibraries(ctx, root)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			files = append(files, File{Src: l, Dst: l, Mode: 0o755})
		}
		return files, nil
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("host tree %s: neither a file nor a directory", root)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("host tree %s: %w", root, err)
	}
	var files []File
	err = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || skipInTree(p) {
			return nil
		}
		info, err := os.Stat(p) // through a link to a file
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a dangling link
			}
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(real, p)
		if err != nil {
			return err
		}
		files = append(files, File{Src: p, Dst: path.Join(root, filepath.ToSlash(rel)), Mode: info.Mode().Perm()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("host tree %s: %w", root, err)
	}
	return files, nil
}

func skipInTree(p string) bool {
	return strings.HasSuffix(p, ".pod") || strings.HasSuffix(p, ".h")
}

func isELF(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return false, nil // shorter than a header: not ELF
	}
	return bytes.Equal(magic, []byte("\x7fELF")), nil
}

// lddLibraries are the libraries ldd names for an ELF file; none for a
// static one.
func lddLibraries(ctx context.Context, p string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", p).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && bytes.Contains(ee.Stderr, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w", p, err)
	}
	libs, err := parseLDD(out)
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", p, err)
	}
	return libs, nil
}
