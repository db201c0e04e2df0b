package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/directorlb/director/manual"
)

// TestWrite: every page is written, flat (build/man) or as a man tree
// (for MANPATH), and is the page's roff.
func TestWrite(t *testing.T) {
	o := manual.RoffOptions{Version: "1.2.3", Date: "2026-12-04"}
	for _, tree := range []bool{false, true} {
		dir := t.TempDir()
		if err := write(dir, tree, o); err != nil {
			t.Fatal(err)
		}
		for _, p := range manual.Pages() {
			path := filepath.Join(dir, p.FileName())
			if tree {
				path = filepath.Join(dir, "man"+string(rune('0'+p.Section)), p.FileName())
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != p.Roff(o) {
				t.Errorf("tree=%v: %s: %v, or not the page's roff", tree, path, err)
			}
		}
	}
	if names := manual.Pages(); len(names) != 4 {
		t.Errorf("%d pages, want directord(8), directorctl(8), realserver(8), director.yaml(5)", len(names))
	}
}
