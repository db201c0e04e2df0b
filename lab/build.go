package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/build/constraint"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LabTag is the build tag of end-to-end tests that run inside the guest.
const LabTag = "lab"

// Builder compiles static binaries for the guest.
type Builder struct {
	Dir string // the module root
	Out string // where binaries go
}

func (b *Builder) goCmd(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.Dir
	// The guest has no C library: everything must be static.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Binary builds a main package and returns the binary's path.
func (b *Builder) Binary(ctx context.Context, pkg string) (string, error) {
	out := filepath.Join(b.Out, filepath.Base(pkg))
	args := []string{"build", "-trimpath"}
	// The version the binaries print, as `make build` and the package set
	// it (packaging/version.sh, which says 0.0~devel without git).
	version := exec.CommandContext(ctx, "sh", filepath.Join(b.Dir, "packaging", "version.sh"))
	version.Dir = b.Dir
	if v, err := version.Output(); err == nil {
		args = append(args, "-ldflags", "-X github.com/directorlb/director/version.describe="+strings.TrimSpace(string(v)))
	}
	_, err := b.goCmd(ctx, append(args, "-o", out, pkg)...)
	return out, err
}

// LabPackage is a package with tests behind the lab build tag.
type LabPackage struct {
	ImportPath string
	Dir        string
}

// TestBinary builds a package's tests with the lab tag.
func (b *Builder) TestBinary(ctx context.Context, p LabPackage) (string, error) {
	out := filepath.Join(b.Out, strings.ReplaceAll(strings.TrimPrefix(p.ImportPath, "/"), "/", "_")+".test")
	_, err := b.goCmd(ctx, "test", "-c", "-trimpath", "-tags", LabTag, "-o", out, p.ImportPath)
	return out, err
}

// LabPackages lists the packages matching patterns that have at least one
// test file constrained to the lab tag.
func (b *Builder) LabPackages(ctx context.Context, patterns ...string) ([]LabPackage, error) {
	args := append([]string{"list", "-tags", LabTag, "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .TestGoFiles \" \"}} {{join .XTestGoFiles \" \"}}"}, patterns...)
	out, err := b.goCmd(ctx, args...)
	if err != nil {
		return nil, err
	}
	var pkgs []LabPackage
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) != 3 {
			continue
		}
		for _, tf := range strings.Fields(f[2]) {
			if hasLabTag(filepath.Join(f[1], tf)) {
				pkgs = append(pkgs, LabPackage{ImportPath: f[0], Dir: f[1]})
				break
			}
		}
	}
	return pkgs, sc.Err()
}

func hasLabTag(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "package ") {
			return false
		}
		if constraint.IsGoBuild(line) {
			expr, err := constraint.Parse(line)
			if err != nil {
				return false
			}
			// A lab file is one the lab tag brings in: built with it,
			// not without it.
			with := expr.Eval(func(tag string) bool { return tag == LabTag || tag == "linux" || tag == "amd64" })
			without := expr.Eval(func(tag string) bool { return tag == "linux" || tag == "amd64" })
			return with && !without
		}
	}
	return false
}
