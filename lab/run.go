package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// DefaultModules is what every lab guest loads: IPVS with every scheduler
// the kernel has (the kernel would ask a modprobe the guest does not have),
// and the devices the topologies use. Dependencies are resolved from the
// modules' own metadata.
var DefaultModules = []string{
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
	"ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_fo", "ip_vs_ovf", "ip_vs_mh",
	"veth", "bridge", "ipip", "ip6_tunnel", "ip_gre", "fou", "fou6", "dummy", "macvlan", "sctp",
	// nftables marks packets for fwmark services in the tests.
	"nf_tables",
}

// File is a host file placed in the guest.
type File struct {
	Src  string
	Dst  string // absolute path in the guest
	Mode os.FileMode
}

// Payload is what one boot carries and runs.
type Payload struct {
	Files    []File
	Commands []Command
	Env      []string
}

// Runner boots payloads in the lab VM.
type Runner struct {
	Cache   *KernelCache
	Init    string   // the labinit binary (static)
	Modules []string // nil: DefaultModules
	Accel   string   // "" or "auto": probe KVM once, else tcg
	Memory  int
	CPUs    int
	Timeout time.Duration
	Output  io.Writer
	OnExit  func(ExitStatus)
	Logf    func(format string, args ...any)
}

func (r *Runner) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// Run boots the VM once with p and returns what init reported.
func (r *Runner) Run(ctx context.Context, p Payload) (*Result, error) {
	mods := r.Modules
	if mods == nil {
		mods = DefaultModules
	}
	k, err := r.Cache.Kernel(ctx, mods)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "director-lab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	nonce := newNonce()
	initrd := filepath.Join(dir, "initramfs.cpio")
	if err := WriteInitramfs(initrd, r.Init, k, nonce, p); err != nil {
		return nil, err
	}
	accel, err := r.accel(ctx, k)
	if err != nil {
		return nil, err
	}
	vm := &VM{
		Kernel: k.Vmlinuz, Initrd: initrd, Nonce: nonce, Accel: accel,
		Memory: r.Memory, CPUs: r.CPUs, Timeout: r.Timeout,
		Output: r.Output, OnExit: r.OnExit,
	}
	return vm.Run(ctx)
}

func newNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// guestEtc is the minimum of /etc that Go programs and tests look at.
var guestEtc = map[string]string{
	"etc/hosts":         "127.0.0.1 localhost\n::1 localhost\n",
	"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
	"etc/nsswitch.conf": "hosts: files dns\n",
}

// WriteInitramfs builds the guest's root: init, the kernel's modules in
// load order, the payload's files and the spec that ties them together.
func WriteInitramfs(dst, init string, k *Kernel, nonce string, p Payload) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	a := NewInitramfs(f)
	a.Dir("dev", 0o755)
	a.CharDev("dev/console", 0o600, 5, 1)
	a.Dir("root", 0o700)
	a.Dir("tmp", 0o777|fs.ModeSticky)
	a.Dir("var", 0o755)
	for name, content := range guestEtc {
		a.File(name, 0o644, []byte(content))
	}
	a.CopyFile("init", 0o755, init)
	spec := Spec{Nonce: nonce, Env: p.Env, Commands: p.Commands}
	for i, m := range k.Modules {
		dst := fmt.Sprintf("lab/modules/%03d-%s", i, filepath.Base(m))
		a.CopyFile(dst, 0o644, m)
		spec.Modules = append(spec.Modules, "/"+dst)
	}
	for _, pf := range dedupe(p.Files) {
		mode := pf.Mode
		if mode == 0 {
			mode = 0o755
		}
		if !path.IsAbs(pf.Dst) || path.Clean(pf.Dst) != pf.Dst {
			a.fail(fmt.Errorf("initramfs: guest path %q must be absolute and clean", pf.Dst))
		}
		a.CopyFile(pf.Dst, mode, pf.Src)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		f.Close()
		return err
	}
	a.File(SpecPath, 0o644, b)
	if err := a.Close(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return f.Close()
}
