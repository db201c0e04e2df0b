package group

import (
	"crypto/sha256"

	"github.com/directorlb/director/config"
	"golang.org/x/sys/unix"
)

// Digest is what the directors of a group compare: the service config
// (config.ServicesDigest) with the kernel release, because the kernel
// builds the mh lookup table, and another kernel build may build another
// table from the same destinations. Two directors with equal digests
// pick the same real server for a flow.
func Digest(cfg *config.Config, kernelRelease string) [16]byte {
	sd := cfg.ServicesDigest()
	h := sha256.New()
	// A label, so that this digest never equals a plain services digest.
	h.Write([]byte("director group digest 1\x00"))
	h.Write(sd[:])
	h.Write([]byte(kernelRelease))
	var d [16]byte
	copy(d[:], h.Sum(nil))
	return d
}

// KernelRelease is the running kernel's release (uname -r); "" if the
// kernel does not say.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
