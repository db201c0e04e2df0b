package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// GuestLibraryPath is where the guest's dynamic loader looks for the host
// libraries that HostBinary copies: the guest has no ld.so.cache.
const GuestLibraryPath = "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64"

// HostBinary returns the files that run a dynamically linked host program
// in the guest: the program, found on PATH, at /bin/NAME, and every shared
// library ldd names (the loader included), at the paths ldd gives. This is
// how real peers such as ipvsadm are compared with ours inside the VM.
func HostBinary(ctx context.Context, name string) ([]File, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not installed on this host (make deps installs it): %w", name, err)
	}
	files := []File{{Src: path, Dst: "/bin/" + filepath.Base(path), Mode: 0o755}}
	out, err := exec.CommandContext(ctx, "ldd", path).Output()
	if err != nil {
		// Static programs make ldd fail; they need nothing more.
		if ee, ok := err.(*exec.ExitError); ok && bytes.Contains(ee.Stderr, []byte("not a dynamic executable")) {
			return files, nil
		}
		if bytes.Contains(out, []byte("statically linked")) {
			return files, nil
		}
		return nil, fmt.Errorf("ldd %s: %w", path, err)
	}
	libs, err := parseLDD(out)
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", path, err)
	}
	for _, l := range libs {
		files = append(files, File{Src: l, Dst: l, Mode: 0o755})
	}
	return files, nil
}

// parseLDD extracts library paths from ldd's output:
//
//	linux-vdso.so.1 (0x00007ffd...)
//	libnl-3.so.200 => /lib/x86_64-linux-gnu/libnl-3.so.200 (0x...)
//	/lib64/ld-linux-x86-64.so.2 (0x...)
func parseLDD(out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("missing library: %s", line)
		}
		if _, rhs, ok := strings.Cut(line, "=> "); ok {
			line = rhs
		}
		p, _, _ := strings.Cut(line, " (")
		if strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, sc.Err()
}

// dedupe keeps the first file for each guest path: two host programs
// often share libraries.
func dedupe(files []File) []File {
	seen := map[string]bool{}
	out := make([]File, 0, len(files))
	for _, f := range files {
		if !seen[f.Dst] {
			seen[f.Dst] = true
			out = append(out, f)
		}
	}
	return out
}
