package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestHasLabTag(t *testing.T) {
	tests := []struct {
		name, src string
		want      bool
	}{
		{"lab", "//go:build lab\n\npackage x\n", true},
		{"lab and linux", "//go:build linux && lab\n\npackage x\n", true},
		{"parenthesised", "//go:build (lab||windows) && amd64\n\npackage x\n", true},
		{"built without the tag too", "//go:build (linux||lab) && amd64\n\npackage x\n", false},
		{"after a copyright header", "// Copyright 2025 The Authors.\n\n//go:build lab\n\npackage x\n", true},
		{"indented", "  //go:build lab\npackage x\n", true},
		// A lab file is one the tag brings in, not one that mentions it.
		{"negated", "//go:build !lab\n\npackage x\n", false},
		{"negated within an or", "//go:build !lab || linux\n\npackage x\n", false},
		{"longer tag", "//go:build labs\n\npackage x\n", false},
		{"tag as a prefix", "//go:build lab_extra || lab2\n\npackage x\n", false},
		{"other tags", "//go:build linux && amd64\n\npackage x\n", false},
		{"no build line", "package x\n\nimport \"testing\"\n", false},
		{"build line after the package clause", "package x\n\n//go:build lab\n", false},
		{"old +build syntax", "// +build lab\n\npackage x\n", false},
		{"no space after //", "//go:buildlab\npackage x\n", false},
		{"empty file", "", false},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		p := filepath.Join(dir, "f"+string(rune('a'+i))+"_test.go")
		if err := os.WriteFile(p, []byte(tt.src), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := hasLabTag(p); got != tt.want {
			t.Errorf("%s: hasLabTag(%q) = %v, want %v", tt.name, tt.src, got, tt.want)
		}
	}
	if hasLabTag(filepath.Join(dir, "missing_test.go")) {
		t.Errorf("hasLabTag of a missing file = true")
	}
}

// TestLabPackages runs `go list` on a throwaway module with no
// dependencies.
func TestLabPackages(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not in PATH")
	}
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                "module example.com/labtest\n\ngo 1.22\n",
		"withlab/a.go":          "package withlab\n",
		"withlab/a_test.go":     "package withlab\n",
		"withlab/lab_test.go":   "//go:build lab\n\npackage withlab\n",
		"xtest/b.go":            "package xtest\n",
		"xtest/lab_test.go":     "//go:build linux && lab\n\npackage xtest_test\n",
		"plain/c.go":            "package plain\n",
		"plain/c_test.go":       "package plain\n",
		"notlab/d.go":           "package notlab\n",
		"notlab/d_test.go":      "//go:build !lab\n\npackage notlab\n",
		"notests/e.go":          "package notests\n",
		"labonlycode/f.go":      "//go:build lab\n\npackage labonlycode\n",
		"labonlycode/f_test.go": "package labonlycode\n",
	}
	for rel, src := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOTOOLCHAIN", "local")
	b := &Builder{Dir: root, Out: t.TempDir()}
	pkgs, err := b.LabPackages(context.Background(), "./...")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.ImportPath)
		if rel, err := filepath.Rel(root, p.Dir); err != nil || filepath.Join("example.com/labtest", rel) != p.ImportPath {
			t.Errorf("%s: directory %s", p.ImportPath, p.Dir)
		}
	}
	slices.Sort(got)
	want := []string{"example.com/labtest/withlab", "example.com/labtest/xtest"}
	if !slices.Equal(got, want) {
		t.Errorf("LabPackages = %q, want %q", got, want)
	}
}
