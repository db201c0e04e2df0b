package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHostTreeDirectory(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "5.36.0")
	write := func(rel, content string) {
		p := filepath.Join(real, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Socket.pm", "package Socket;")
	write("auto/Socket/Socket.so", "not really ELF")
	write("Socket.pod", "=head1 docs")
	write("CORE/perl.h", "#define X")
	if err := os.Symlink("Socket.pm", filepath.Join(real, "Alias.pm")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("auto", filepath.Join(real, "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(real, "Dangling.pm")); err != nil {
		t.Fatal(err)
	}
	// The root is named through a link, as @INC names .../perl/5.36.
	named := filepath.Join(dir, "5.36")
	if err := os.Symlink("5.36.0", named); err != nil {
		t.Fatal(err)
	}
	files, err := HostTree(context.Background(), named)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimPrefix(f.Dst, named+"/")+" <- "+strings.TrimPrefix(f.Src, dir+"/"))
	}
	slices.Sort(got)
	want := []string{
		"Alias.pm <- 5.36.0/Alias.pm",
		"Socket.pm <- 5.36.0/Socket.pm",
		"auto/Socket/Socket.so <- 5.36.0/auto/Socket/Socket.so",
	}
	if !slices.Equal(got, want) {
		t.Errorf("HostTree files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHostTreeFile(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this host")
	}
	// Named as the guest should have it, through the host's links
	// (/bin/sh -> dash on Debian): the guest path is the name given.
	files, err := HostTree(context.Background(), sh)
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Dst != sh || files[0].Src != sh {
		t.Errorf("first file %+v; want %s at %s", files[0], sh, sh)
	}
	libc := slices.ContainsFunc(files[1:], func(f File) bool { return strings.Contains(f.Dst, "libc.so") })
	if !libc {
		t.Errorf("a dynamic shell came without libc: %+v", files)
	}
	text := filepath.Join(t.TempDir(), "services")
	if err := os.WriteFile(text, []byte("www 80/tcp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if files, err := HostTree(context.Background(), text); err != nil || len(files) != 1 {
		t.Errorf("a text file: %+v, %v; want itself alone", files, err)
	}
	for _, bad := range []string{"relative/path", "/a/../b", filepath.Join(t.TempDir(), "absent")} {
		if _, err := HostTree(context.Background(), bad); err == nil {
			t.Errorf("HostTree(%q) succeeded", bad)
		}
	}
}
