package lab

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// A bzImage decompresses itself before the kernel starts, and under
// software emulation the xz decompressor takes longer than the whole rest
// of the boot. Debian's kernel has CONFIG_PVH, so qemu can start the
// uncompressed ELF directly at its PVH entry point: the lab extracts it
// once, when the package is unpacked.

// ErrNoPVH means the extracted kernel cannot be booted directly.
var ErrNoPVH = errors.New("kernel has no PVH entry point")

// bzPayload locates the compressed kernel inside a bzImage using the boot
// protocol's setup header (Documentation/x86/boot.rst).
func bzPayload(img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS setup header)")
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x has no payload fields", v)
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	// The build appends the decompressed size (4 bytes) to the stream.
	if n < 4 || off < 0 || off+n > len(img) {
		return nil, fmt.Errorf("payload [%d, %d) outside the %d-byte image", off, off+n, len(img))
	}
	p := img[off : off+n-4]
	if !bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")) {
		return nil, errors.New("payload is not xz-compressed")
	}
	return p, nil
}

// ExtractVmlinux writes the uncompressed kernel of bzImage to dst and
// checks that it can be booted with PVH.
func ExtractVmlinux(ctx context.Context, bzImage, dst string) error {
	img, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	payload, err := bzPayload(img)
	if err != nil {
		return fmt.Errorf("%s: %w", bzImage, err)
	}
	if _, err := exec.LookPath("xz"); err != nil {
		return errors.New("xz not found: apt-get install xz-utils")
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	// The kernel's stream uses the x86 BCJ filter, which only xz itself
	// (not the Go xz packages) decodes.
	cmd := exec.CommandContext(ctx, "xz", "-dc")
	cmd.Stdin = bytes.NewReader(payload)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xz -dc: %w: %s", err, stderr.String())
	}
	if err := out.Close(); err != nil {
		return err
	}
	return checkPVH(dst)
}

// checkPVH looks for the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY, which is
// what qemu's -kernel needs to boot an ELF kernel.
func checkPVH(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	const xenElfnotePhys32Entry = 18
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(b) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(b))
			descsz := int(binary.LittleEndian.Uint32(b[4:]))
			typ := binary.LittleEndian.Uint32(b[8:])
			name := b[12:min(len(b), 12+namesz)]
			if typ == xenElfnotePhys32Entry && bytes.HasPrefix(name, []byte("Xen")) {
				return nil
			}
			next := 12 + align4(namesz) + align4(descsz)
			if next > len(b) || next <= 0 {
				break
			}
			b = b[next:]
		}
	}
	return fmt.Errorf("%s: %w", path, ErrNoPVH)
}

func align4(n int) int { return (n + 3) &^ 3 }
