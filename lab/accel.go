package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// kvmProbe is the cached answer to "does a KVM guest really boot here?".
// /dev/kvm existing is not enough: on the build machines a KVM guest
// hangs during boot, so the only honest test is to boot one.
type kvmProbe struct {
	Host  string `json:"host"` // host kernel release and qemu version
	Works bool   `json:"works"`
}

const kvmProbeTimeout = 10 * time.Second

func (r *Runner) accel(ctx context.Context, k *Kernel) (string, error) {
	switch r.Accel {
	case "tcg", "kvm":
		return r.Accel, nil
	case "", "auto":
	default:
		return "", fmt.Errorf("unknown accelerator %q (want auto, tcg or kvm)", r.Accel)
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg", nil
	}
	host := hostIdentity(ctx)
	cache := filepath.Join(r.Cache.Dir, "kvm-probe.json")
	if b, err := os.ReadFile(cache); err == nil {
		var p kvmProbe
		if json.Unmarshal(b, &p) == nil && p.Host == host {
			return pick(p.Works), nil
		}
	}
	r.logf("lab: probing whether a KVM guest boots here (at most %v, once per host)", kvmProbeTimeout)
	works := r.probeKVM(ctx, k)
	if b, err := json.Marshal(kvmProbe{Host: host, Works: works}); err == nil {
		_ = os.WriteFile(cache, b, 0o644)
	}
	r.logf("lab: KVM guest boots: %v; using %s", works, pick(works))
	return pick(works), nil
}

func pick(kvm bool) string {
	if kvm {
		return "kvm"
	}
	return "tcg"
}

func (r *Runner) probeKVM(ctx context.Context, k *Kernel) bool {
	dir, err := os.MkdirTemp("", "director-kvm-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	nonce := newNonce()
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := WriteInitramfs(initrd, r.Init, &Kernel{Vmlinuz: k.Vmlinuz}, nonce, Payload{}); err != nil {
		return false
	}
	vm := &VM{Kernel: k.Vmlinuz, Initrd: initrd, Nonce: nonce, Accel: "kvm", Memory: 256, CPUs: 1,
		BootTimeout: kvmProbeTimeout, Timeout: kvmProbeTimeout}
	_, err = vm.Run(ctx)
	return err == nil
}

func hostIdentity(ctx context.Context) string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	rel := unix.ByteSliceToString(u.Release[:])
	out, _ := exec.CommandContext(ctx, QEMUBinary, "--version").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	return rel + " / " + first
}
