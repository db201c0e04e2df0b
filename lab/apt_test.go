package lab

import (
	"strings"
	"testing"
)

func TestParseDepends(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"apt-cache depends", "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", "linux-image-6.1.0-56-amd64"},
		{"with other relations", "linux-image-amd64\n  Recommends: firmware-linux-free\n  Depends: linux-image-6.1.0-56-amd64\n  Breaks: <foo>\n", "linux-image-6.1.0-56-amd64"},
		{"first Depends wins", "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n  Depends: linux-image-6.1.0-55-amd64\n", "linux-image-6.1.0-56-amd64"},
		{"CRLF and trailing blanks", "linux-image-amd64\r\n  Depends: linux-image-6.1.0-56-amd64  \r\n", "linux-image-6.1.0-56-amd64"},
		{"alternatives line is not a Depends", "linux-image-amd64\n |Depends: linux-image-a\n  Depends: linux-image-b\n", "linux-image-b"},
		{"no Depends", "linux-image-amd64\n  Recommends: x\n", ""},
		{"empty", "", ""},
		{"not the field name", "linux-image-amd64\n  PreDepends: x\n", ""},
	}
	for _, tt := range tests {
		if got := parseDepends([]byte(tt.out)); got != tt.want {
			t.Errorf("%s: parseDepends(%q) = %q, want %q", tt.name, tt.out, got, tt.want)
		}
	}
}

const showSHA = "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1"

const aptShow = `Package: linux-image-6.1.0-56-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 411229
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Provides: linux-image-6.1.0-56-amd64-unsigned, wireguard-modules (= 1.0.0)
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Recommends: firmware-linux-free, apparmor
Suggests: linux-doc-6.1, debian-kernel-handbook, grub-pc | grub-efi-amd64 | extlinux
Breaks: fwupdate (<< 12-7), initramfs-tools (<< 0.120+deb8u2), wireless-regdb (<< 2019.06.03-1~)
Description: Linux 6.1 for 64-bit PCs (signed)
 The Linux kernel 6.1 and modules for use on PCs with AMD64, Intel 64 or
 VIA Nano processors.
 Version: 0.0 (this line is description text, not a field)
 SHA256: 0000000000000000000000000000000000000000000000000000000000000000
Description-md5: 6b9c5e2b2b0e7bbf1e4f0c2b8d8c0d39
Section: kernel
Priority: optional
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb
Size: 69070356
MD5sum: 1f0f8d7e77d3a6d1d3e1b6b3f1b6f1c3
SHA256: ` + showSHA + `

`

func TestParseShow(t *testing.T) {
	const pkg = "linux-image-6.1.0-56-amd64"
	info, err := parseShow(pkg, []byte(aptShow))
	if err != nil {
		t.Fatal(err)
	}
	if want := (DebInfo{Package: pkg, Version: "6.1.192-2", SHA256: showSHA}); info != want {
		t.Errorf("parseShow = %+v, want %+v", info, want)
	}

	crlf := strings.ReplaceAll(aptShow, "\n", "\r\n")
	if info, err := parseShow(pkg, []byte(crlf)); err != nil || info.SHA256 != showSHA || info.Version != "6.1.192-2" {
		t.Errorf("parseShow with CRLF = %+v, %v", info, err)
	}
}

func TestParseShowErrors(t *testing.T) {
	drop := func(field string) string {
		var keep []string
		for _, l := range strings.Split(aptShow, "\n") {
			if !strings.HasPrefix(l, field+": ") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	tests := []struct{ name, out string }{
		{"no SHA256", drop("SHA256")},
		{"no Version", drop("Version")},
		{"short SHA256", strings.Replace(aptShow, "SHA256: "+showSHA, "SHA256: "+showSHA[:63], 1)},
		{"empty SHA256", strings.Replace(aptShow, "SHA256: "+showSHA, "SHA256: ", 1)},
		{"no such package", ""},
		{"apt's notice only", "N: Unable to locate package linux-image-9.9\n"},
	}
	for _, tt := range tests {
		info, err := parseShow("linux-image-6.1.0-56-amd64", []byte(tt.out))
		if err == nil {
			t.Errorf("%s: parseShow = %+v, want an error", tt.name, info)
		} else if !strings.Contains(err.Error(), "linux-image-6.1.0-56-amd64") {
			t.Errorf("%s: error %q does not name the package", tt.name, err)
		}
	}
}
