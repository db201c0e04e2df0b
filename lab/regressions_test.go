package lab

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// Real modules name dependencies as built: depends=snd-pcm, while the
// file is snd-pcm.ko and the kernel's name snd_pcm.
func TestLoadOrderDashedDepends(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "modules.builtin.modinfo"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeKO(t, filepath.Join(root, "kernel/snd-pcm.ko"), "name=snd_pcm", "depends=")
	writeKO(t, filepath.Join(root, "kernel/snd-isight.ko"), "name=snd_isight", "depends=snd-pcm")
	mt, err := NewModuleTree(root, []string{"kernel/snd-pcm.ko", "kernel/snd-isight.ko"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := mt.LoadOrder([]string{"snd-isight"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"snd_pcm", "snd_isight"}) {
		t.Fatalf("load order %v", got)
	}
}

func TestDedupeLeavesCallerAlone(t *testing.T) {
	in := []File{{Src: "A", Dst: "/x"}, {Src: "B", Dst: "/y"}, {Src: "A2", Dst: "/x"}, {Src: "C", Dst: "/z"}}
	orig := slices.Clone(in)
	out := dedupe(in)
	if !slices.Equal(in, orig) {
		t.Fatalf("dedupe changed its input: %v", in)
	}
	if want := []File{orig[0], orig[1], orig[3]}; !slices.Equal(out, want) {
		t.Fatalf("dedupe = %v, want %v", out, want)
	}
}

func TestInitramfsKindConflicts(t *testing.T) {
	for name, steps := range map[string]func(a *Initramfs) error{
		"dir over file": func(a *Initramfs) error {
			_ = a.File("x", 0o644, nil)
			return a.Dir("x", 0o755)
		},
		"file under a file": func(a *Initramfs) error {
			_ = a.File("x", 0o644, nil)
			return a.File("x/y", 0o644, nil)
		},
	} {
		if err := steps(NewInitramfs(&bytes.Buffer{})); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestInitramfsStickyTmp(t *testing.T) {
	var buf bytes.Buffer
	a := NewInitramfs(&buf)
	if err := a.Dir("tmp", 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, e := range readNewc(t, buf.Bytes()) {
		if e.name == "tmp" {
			if e.mode != syscall.S_IFDIR|syscall.S_ISVTX|0o777 {
				t.Fatalf("tmp mode %o, want sticky 1777", e.mode)
			}
			return
		}
	}
	t.Fatal("tmp not in the archive")
}

func TestParseLDD(t *testing.T) {
	out := []byte(`	linux-vdso.so.1 (0x00007ffc3b5f2000)
	libnl-genl-3.so.200 => /lib/x86_64-linux-gnu/libnl-genl-3.so.200 (0x00007f0f)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e)
	/lib64/ld-linux-x86-64.so.2 (0x00007f10)
`)
	got, err := parseLDD(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libnl-genl-3.so.200", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("parseLDD = %v", got)
	}
	if _, err := parseLDD([]byte("\tlibfoo.so.1 => not found\n")); err == nil {
		t.Fatal("a missing library was not reported")
	}
}
