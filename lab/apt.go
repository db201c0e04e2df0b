package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Apt is the PackageSource backed by the host's apt and dpkg-deb.
type Apt struct {
	Logf func(format string, args ...any)

	updateOnce sync.Once
	updateErr  error
}

func (a *Apt) run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%s not found: the lab needs a Debian host with apt and dpkg", name)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// update runs apt-get update once, for a fresh machine whose package lists
// are empty.
func (a *Apt) update(ctx context.Context) error {
	a.updateOnce.Do(func() {
		if a.Logf != nil {
			a.Logf("lab: package lists have no %s; running apt-get update", MetaPackage)
		}
		_, a.updateErr = a.run(ctx, "", "apt-get", "update", "-q")
	})
	return a.updateErr
}

// Resolve reads the meta package's Depends line.
func (a *Apt) Resolve(ctx context.Context, meta string) (string, error) {
	for attempt := 0; ; attempt++ {
		out, err := a.run(ctx, "", "apt-cache", "depends", meta)
		if err == nil {
			if dep := parseDepends(out); dep != "" {
				return dep, nil
			}
		}
		if attempt > 0 {
			if err == nil {
				err = fmt.Errorf("apt-cache depends %s names no package", meta)
			}
			return "", err
		}
		if err := a.update(ctx); err != nil {
			return "", err
		}
	}
}

func parseDepends(out []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: "); ok {
			return strings.TrimSpace(dep)
		}
	}
	return ""
}

// Info reads the index entry of the candidate version.
func (a *Apt) Info(ctx context.Context, pkg string) (DebInfo, error) {
	out, err := a.run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return DebInfo{}, err
	}
	return parseShow(pkg, out)
}

func parseShow(pkg string, out []byte) (DebInfo, error) {
	info := DebInfo{Package: pkg}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch k {
		case "Version":
			info.Version = strings.TrimSpace(v)
		case "SHA256":
			info.SHA256 = strings.TrimSpace(v)
		}
	}
	if info.Version == "" || len(info.SHA256) != 64 {
		return info, fmt.Errorf("apt-cache show %s: no Version or SHA256", pkg)
	}
	return info, nil
}

// Download runs apt-get download in dir. The sandbox user is set to root
// because the cache directory is root's, and _apt cannot write there.
func (a *Apt) Download(ctx context.Context, info DebInfo, dir string) (string, error) {
	if _, err := a.run(ctx, dir, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", info.Package+"="+info.Version); err != nil {
		return "", err
	}
	matches, _ := filepath.Glob(filepath.Join(dir, info.Package+"_*.deb"))
	if len(matches) != 1 {
		return "", errors.New("apt-get download left no .deb")
	}
	return matches[0], nil
}

// Unpack extracts the .deb's data with dpkg-deb.
func (a *Apt) Unpack(ctx context.Context, deb, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, err := a.run(ctx, "", "dpkg-deb", "-x", deb, dir)
	return err
}

// Stamp summarises the package lists by the names, sizes and times of the
// files apt-get update writes.
func (a *Apt) Stamp() string {
	entries, err := os.ReadDir("/var/lib/apt/lists")
	if err != nil {
		return ""
	}
	h := sha256.New()
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(h, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))
}
