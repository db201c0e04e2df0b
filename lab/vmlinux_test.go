package lab

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var xzMagic = []byte("\xfd7zXZ\x00")

// makeBzImage builds a bzImage-shaped file: a boot sector and setup code
// with the setup header fields bzPayload reads, then payload followed by
// the 4-byte decompressed size, then some trailing bytes.
func makeBzImage(t *testing.T, setupSects byte, version uint16, payload []byte) []byte {
	t.Helper()
	sects := int(setupSects)
	if sects == 0 {
		sects = 4
	}
	const payloadOffset = 0x1c0 // into the protected-mode code
	start := (sects+1)*512 + payloadOffset
	img := make([]byte, start+len(payload)+4+64)
	for i := range img {
		img[i] = 0xcc // anything but zeroes, so stray reads show
	}
	img[0x1f1] = setupSects
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], version)
	binary.LittleEndian.PutUint32(img[0x248:], payloadOffset)
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)+4))
	copy(img[start:], payload)
	binary.LittleEndian.PutUint32(img[start+len(payload):], 0x01234567) // decompressed size
	return img
}

// elfNote encodes one ELF note with its name and descriptor padded to 4.
func elfNote(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	n := append([]byte(name), 0)
	_ = binary.Write(&b, binary.LittleEndian, [3]uint32{uint32(len(n)), uint32(len(desc)), typ})
	b.Write(n)
	b.Write(make([]byte, align4(len(n))-len(n)))
	b.Write(desc)
	b.Write(make([]byte, align4(len(desc))-len(desc)))
	return b.Bytes()
}

// pvhKernel is a small ELF executable whose notes look like a kernel's,
// with the Xen PVH entry note when pvh is set.
func pvhKernel(pvh bool) []byte {
	notes := elfNote("GNU", 3, bytes.Repeat([]byte{0xab}, 20))    // build id
	notes = append(notes, elfNote("Linux", 6, []byte("6.1"))...)  // odd sizes: padding
	notes = append(notes, elfNote("Xen", 17, make([]byte, 8))...) // XEN_ELFNOTE_SUPPORTED_FEATURES-ish
	if pvh {
		notes = append(notes, elfNote("Xen", 18, []byte{0, 0, 0, 1})...)
	}
	return buildELF(elf.ET_EXEC, []testSection{{name: ".notes", typ: elf.SHT_NOTE, data: notes}},
		[]testProg{{typ: elf.PT_LOAD, data: []byte("code")}, {typ: elf.PT_NOTE, data: notes}})
}

// xzCompress compresses data with the xz command, or skips the test.
func xzCompress(t *testing.T, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed (apt-get install xz-utils); cannot build a compressed kernel")
	}
	cmd := exec.Command("xz", "-c", "-0")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	return out
}

func TestBzPayload(t *testing.T) {
	payload := append(bytes.Clone(xzMagic), []byte("compressed kernel bytes")...)
	tests := []struct {
		name       string
		setupSects byte
		version    uint16
	}{
		{"setup_sects 0 means 4", 0, 0x208},
		{"setup_sects 4", 4, 0x20c},
		{"setup_sects 27", 27, 0x20f},
		{"setup_sects 1", 1, 0x215},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := makeBzImage(t, tt.setupSects, tt.version, payload)
			got, err := bzPayload(img)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("payload = %q, want %q (without the 4 size bytes)", got, payload)
			}
		})
	}
}

func TestBzPayloadErrors(t *testing.T) {
	payload := append(bytes.Clone(xzMagic), []byte("compressed")...)
	good := func(t *testing.T) []byte { return makeBzImage(t, 0, 0x20f, payload) }
	tests := []struct {
		name   string
		img    func(t *testing.T) []byte
		substr string
	}{
		{"empty", func(*testing.T) []byte { return nil }, "HdrS"},
		{"too short for the header", func(t *testing.T) []byte { return good(t)[:0x24f] }, "HdrS"},
		{"no HdrS", func(t *testing.T) []byte { img := good(t); copy(img[0x202:], "HdrX"); return img }, "HdrS"},
		{"an ELF file", func(*testing.T) []byte { return pvhKernel(true) }, "HdrS"},
		{"old boot protocol", func(t *testing.T) []byte { return makeBzImage(t, 0, 0x207, payload) }, "0x207"},
		{"payload beyond the end", func(t *testing.T) []byte {
			img := good(t)
			binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(img)))
			return img
		}, "outside"},
		{"payload offset beyond the end", func(t *testing.T) []byte {
			img := good(t)
			binary.LittleEndian.PutUint32(img[0x248:], 0xfffffff0)
			return img
		}, "outside"},
		{"payload shorter than its size field", func(t *testing.T) []byte {
			img := good(t)
			binary.LittleEndian.PutUint32(img[0x24c:], 3)
			return img
		}, "outside"},
		{"image truncated inside the payload", func(t *testing.T) []byte { img := good(t); return img[:len(img)-64-2] }, "outside"},
		{"setup_sects 0 is not 1", func(t *testing.T) []byte {
			// Laid out for one setup sector but claiming 0 (= 4): the
			// payload is looked for three sectors too far on.
			img := makeBzImage(t, 1, 0x20f, payload)
			img[0x1f1] = 0
			return img
		}, "outside"},
		{"gzip payload", func(t *testing.T) []byte {
			return makeBzImage(t, 0, 0x20f, []byte("\x1f\x8b\x08\x00 gzip stream"))
		}, "not xz"},
		{"empty payload", func(t *testing.T) []byte { return makeBzImage(t, 0, 0x20f, nil) }, "not xz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bzPayload(tt.img(t))
			if err == nil {
				t.Fatalf("bzPayload = %d bytes, want an error", len(got))
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q does not mention %q", err, tt.substr)
			}
		})
	}
}

func TestCheckPVH(t *testing.T) {
	notes := func(ns ...[]byte) []byte { return bytes.Join(ns, nil) }
	gnu := elfNote("GNU", 3, bytes.Repeat([]byte{1}, 20))
	pvhNote := elfNote("Xen", 18, []byte{0, 0, 0, 1})
	tests := []struct {
		name  string
		file  []byte
		noPVH bool // want ErrNoPVH; otherwise nil
	}{
		{"PVH note after others", pvhKernel(true), false},
		{"PVH note alone", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_NOTE, data: pvhNote}}), false},
		{"PVH note in the second note segment", buildELF(elf.ET_EXEC, nil, []testProg{
			{typ: elf.PT_NOTE, data: gnu}, {typ: elf.PT_LOAD, data: pvhNote}, {typ: elf.PT_NOTE, data: notes(gnu, pvhNote)},
		}), false},
		{"other Xen notes only", pvhKernel(false), true},
		{"type 18 from another vendor", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_NOTE, data: elfNote("Linux", 18, []byte{1})}}), true},
		{"Xen note in a load segment only", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_LOAD, data: pvhNote}}), true},
		{"Xen note in a section only", buildELF(elf.ET_EXEC, []testSection{{name: ".note.Xen", typ: elf.SHT_NOTE, data: pvhNote}}, nil), true},
		{"note with an oversized descriptor hides what follows", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_NOTE, data: notes(
			func() []byte { n := elfNote("GNU", 3, nil); binary.LittleEndian.PutUint32(n[4:], 1<<30); return n }(), pvhNote)}}), true},
		{"truncated note header", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_NOTE, data: pvhNote[:11]}}), true},
		{"name size beyond the segment", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_NOTE, data: func() []byte {
			n := elfNote("Xen", 17, nil)
			binary.LittleEndian.PutUint32(n, 0xffffffff)
			return n
		}()}}), true},
		{"empty note segment", buildELF(elf.ET_EXEC, nil, []testProg{{typ: elf.PT_NOTE}}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "vmlinux")
			if err := os.WriteFile(p, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkPVH(p)
			if tt.noPVH {
				if !errors.Is(err, ErrNoPVH) {
					t.Errorf("checkPVH = %v, want ErrNoPVH", err)
				}
			} else if err != nil {
				t.Errorf("checkPVH = %v, want nil", err)
			}
		})
	}
}

func TestCheckPVHNotELF(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(notELF, []byte("MZ not an ELF file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkPVH(notELF); err == nil || errors.Is(err, ErrNoPVH) {
		t.Errorf("checkPVH(non-ELF) = %v, want an ELF error", err)
	}
	if err := checkPVH(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("checkPVH(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestExtractVmlinux(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		elf   []byte
		noPVH bool
	}{
		{"PVH kernel", pvhKernel(true), false},
		{"kernel without PVH", pvhKernel(false), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bz := filepath.Join(dir, "vmlinuz")
			if err := os.WriteFile(bz, makeBzImage(t, 0, 0x20f, xzCompress(t, tt.elf)), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "vmlinux")
			err := ExtractVmlinux(ctx, bz, dst)
			if tt.noPVH != errors.Is(err, ErrNoPVH) || (!tt.noPVH && err != nil) {
				t.Fatalf("ExtractVmlinux = %v, want ErrNoPVH: %v", err, tt.noPVH)
			}
			if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, tt.elf) {
				t.Errorf("extracted %d bytes (%v), want the %d-byte ELF", len(got), err, len(tt.elf))
			}
		})
	}
}

func TestExtractVmlinuxErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dst := filepath.Join(dir, "vmlinux")
	if err := ExtractVmlinux(ctx, filepath.Join(dir, "missing"), dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing bzImage: %v, want fs.ErrNotExist", err)
	}
	notBz := filepath.Join(dir, "notbz")
	if err := os.WriteFile(notBz, []byte("not a bzImage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ExtractVmlinux(ctx, notBz, dst); err == nil || !strings.Contains(err.Error(), "not a bzImage") {
		t.Errorf("non-bzImage: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed extraction created %s (%v)", dst, err)
	}
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed; skipping the corrupt-stream case")
	}
	badXZ := filepath.Join(dir, "badxz")
	stream := append(bytes.Clone(xzMagic), []byte("this is not an xz stream")...)
	if err := os.WriteFile(badXZ, makeBzImage(t, 0, 0x20f, stream), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ExtractVmlinux(ctx, badXZ, dst); err == nil || !strings.Contains(err.Error(), "xz -dc") {
		t.Errorf("corrupt xz stream: %v", err)
	}
}

// TestRealKernelPVH checks the kernel the lab has cached, when there is
// one: its bzImage has an xz payload and its extracted ELF a PVH entry.
func TestRealKernelPVH(t *testing.T) {
	tree := realKernelTree(t)
	vmlinux, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinux-*"))
	vmlinuz, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(vmlinux) == 0 && len(vmlinuz) == 0 {
		t.Skipf("no kernel image in %s", tree)
	}
	for _, p := range vmlinux {
		if err := checkPVH(p); err != nil {
			t.Errorf("checkPVH(%s): %v", p, err)
		}
	}
	for _, p := range vmlinuz {
		img, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if payload, err := bzPayload(img); err != nil || len(payload) < len(img)/2 {
			t.Errorf("bzPayload(%s) = %d of %d bytes, %v", p, len(payload), len(img), err)
		}
	}
}
