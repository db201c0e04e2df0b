package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/lab"
)

// TestDebBinaries: the demo's programs come from the package's
// /usr/sbin, and a package without one of them is refused.
func TestDebBinaries(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatal("dpkg-deb is not on PATH (Debian's dpkg)")
	}
	build := func(progs ...string) string {
		tree := t.TempDir()
		if err := os.MkdirAll(filepath.Join(tree, "DEBIAN"), 0o755); err != nil {
			t.Fatal(err)
		}
		control := "Package: director\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: t\n"
		if err := os.WriteFile(filepath.Join(tree, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(tree, "usr", "sbin"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range progs {
			if err := os.WriteFile(filepath.Join(tree, "usr", "sbin", p), []byte("#!/bin/sh\necho "+p+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		deb := filepath.Join(t.TempDir(), "director.deb")
		if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-b", tree, deb).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -b: %v\n%s", err, out)
		}
		return deb
	}
	s := &session{build: &lab.Builder{Out: t.TempDir()}}
	files, err := s.debBinaries(context.Background(), build(debPrograms...))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(debPrograms) {
		t.Fatalf("files %+v", files)
	}
	for i, f := range files {
		data, err := os.ReadFile(f.Src)
		if err != nil || f.Dst != "/bin/"+debPrograms[i] || !strings.Contains(string(data), "echo "+debPrograms[i]) {
			t.Errorf("%+v: %q, %v", f, data, err)
		}
	}
	if _, err := s.debBinaries(context.Background(), build("directord", "directorctl")); err == nil || !strings.Contains(err.Error(), "realserver") {
		t.Errorf("a package without realserver: %v", err)
	}
}
