package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrKernelFetch wraps every failure to obtain the guest kernel.
var ErrKernelFetch = errors.New("cannot fetch the lab kernel")

// ErrCacheCorrupt reports a cached file whose content is not what was
// recorded when it was unpacked.
var ErrCacheCorrupt = errors.New("lab cache file is corrupt or missing")

// MetaPackage is the Debian package that always depends on the current
// stock kernel.
const MetaPackage = "linux-image-amd64"

// DebInfo is what the package index says about one .deb.
type DebInfo struct {
	Package string
	Version string
	SHA256  string
}

// PackageSource is the narrow view of apt the cache needs, so the cache's
// logic can be tested without a package manager.
type PackageSource interface {
	// Resolve names the versioned package a meta package depends on.
	Resolve(ctx context.Context, meta string) (string, error)
	// Info returns the index entry of a package.
	Info(ctx context.Context, pkg string) (DebInfo, error)
	// Download fetches the package's .deb into dir and returns its path.
	Download(ctx context.Context, info DebInfo, dir string) (string, error)
	// Unpack extracts a .deb's files into dir.
	Unpack(ctx context.Context, deb, dir string) error
	// Stamp changes whenever the package index changes, so a resolution
	// can be reused until then ("" means never reuse).
	Stamp() string
}

// Kernel is an unpacked, verified kernel ready to boot.
type Kernel struct {
	Package string
	Version string // the kernel release, e.g. 6.1.0-56-amd64
	// Vmlinuz is the image qemu boots: the uncompressed PVH-bootable ELF
	// when it could be extracted, else the bzImage.
	Vmlinuz string
	// Modules are the absolute paths of the modules to load, in order.
	Modules []string
}

// manifest records, at unpack time, what every file of the tree must
// contain, and the module metadata that is costly to recompute.
type manifest struct {
	DebSHA256 string            `json:"deb_sha256"`
	Release   string            `json:"release"`
	Files     map[string]string `json:"files"`   // relative path -> sha256
	Aliases   map[string]string `json:"aliases"` // module alias -> module name
}

const manifestName = "lab-manifest.json"

// KernelCache keeps downloaded and unpacked kernels outside the repository
// so that a second run costs nothing.
type KernelCache struct {
	Dir    string
	Source PackageSource
	Logf   func(format string, args ...any)
}

func (c *KernelCache) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// Kernel returns the current stock kernel with the modules needed for
// names resolved into load order. Any cached file that does not match its
// recorded hash makes the tree be unpacked again (and the .deb be
// downloaded again if it, too, is wrong).
func (c *KernelCache) Kernel(ctx context.Context, modules []string) (*Kernel, error) {
	info, err := c.resolve(ctx)
	if err != nil {
		return nil, err
	}
	tree := filepath.Join(c.Dir, info.Package+"_"+info.Version)
	for attempt := 0; ; attempt++ {
		k, err := c.load(tree, info, modules)
		if err == nil {
			return k, nil
		}
		if attempt > 0 || !errors.Is(err, ErrCacheCorrupt) {
			return nil, err
		}
		c.logf("lab: %v; unpacking the kernel again", err)
		if err := c.unpack(ctx, info, tree); err != nil {
			return nil, err
		}
	}
}

// resolvedIndex remembers which kernel the package index named.
type resolvedIndex struct {
	Stamp string  `json:"stamp"`
	Info  DebInfo `json:"info"`
}

// resolve finds the current kernel package, reusing the last answer while
// the package index is unchanged (asking apt costs about a second a call).
func (c *KernelCache) resolve(ctx context.Context) (DebInfo, error) {
	file := filepath.Join(c.Dir, "resolved.json")
	stamp := c.Source.Stamp()
	if b, err := os.ReadFile(file); err == nil && stamp != "" {
		var r resolvedIndex
		if json.Unmarshal(b, &r) == nil && r.Stamp == stamp && r.Info.Package != "" && len(r.Info.SHA256) == 64 {
			return r.Info, nil
		}
	}
	pkg, err := c.Source.Resolve(ctx, MetaPackage)
	if err != nil {
		return DebInfo{}, fmt.Errorf("%w: resolve %s: %w", ErrKernelFetch, MetaPackage, err)
	}
	info, err := c.Source.Info(ctx, pkg)
	if err != nil {
		return DebInfo{}, fmt.Errorf("%w: look up %s: %w", ErrKernelFetch, pkg, err)
	}
	// The stamp is taken again: Resolve may have run apt-get update.
	if b, err := json.Marshal(resolvedIndex{Stamp: c.Source.Stamp(), Info: info}); err == nil {
		_ = os.WriteFile(file, b, 0o644)
	}
	return info, nil
}

// load verifies the tree against its manifest and resolves modules.
func (c *KernelCache) load(tree string, info DebInfo, modules []string) (*Kernel, error) {
	m, err := readManifest(tree)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCacheCorrupt, tree, err)
	}
	if m.DebSHA256 != info.SHA256 {
		return nil, fmt.Errorf("%w: %s was unpacked from another .deb", ErrCacheCorrupt, tree)
	}
	modRoot := filepath.Join("lib", "modules", m.Release)
	vmlinuz := filepath.Join("boot", "vmlinuz-"+m.Release)
	builtin := filepath.Join(modRoot, "modules.builtin.modinfo")
	if elfKernel := filepath.Join("boot", "vmlinux-"+m.Release); m.Files[elfKernel] != "" {
		vmlinuz = elfKernel
	}
	if err := m.verify(tree, vmlinuz, builtin); err != nil {
		return nil, err
	}
	var modFiles []string
	for f := range m.Files {
		if rel, ok := strings.CutPrefix(f, modRoot+string(filepath.Separator)); ok && strings.HasSuffix(f, ".ko") {
			modFiles = append(modFiles, rel)
		}
	}
	mt, err := NewModuleTree(filepath.Join(tree, modRoot), modFiles, m.Aliases)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCacheCorrupt, err)
	}
	// Module metadata is read from the files themselves, so verify them
	// before they are parsed, not after.
	mt.verify = func(rel string) error { return m.verify(tree, filepath.Join(modRoot, rel)) }
	order, err := mt.LoadOrder(modules)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Package: info.Package, Version: m.Release, Vmlinuz: filepath.Join(tree, vmlinuz)}
	for _, name := range order {
		k.Modules = append(k.Modules, mt.Path(name))
	}
	return k, nil
}

func readManifest(tree string) (*manifest, error) {
	b, err := os.ReadFile(filepath.Join(tree, manifestName))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Release == "" || len(m.Files) == 0 {
		return nil, errors.New("manifest: incomplete")
	}
	return &m, nil
}

// verify checks that each file still has the hash recorded at unpack time.
func (m *manifest) verify(tree string, rels ...string) error {
	for _, rel := range rels {
		want, ok := m.Files[rel]
		if !ok {
			return fmt.Errorf("%w: %s is not in the manifest", ErrCacheCorrupt, rel)
		}
		got, err := fileSHA256(filepath.Join(tree, rel))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCacheCorrupt, err)
		}
		if got != want {
			return fmt.Errorf("%w: %s has changed since it was unpacked", ErrCacheCorrupt, rel)
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// deb returns a verified .deb for info, downloading it if the cached one
// is missing or does not match the index's SHA256.
func (c *KernelCache) deb(ctx context.Context, info DebInfo) (string, error) {
	dir := filepath.Join(c.Dir, "debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	path := filepath.Join(dir, info.Package+"_"+info.Version+".deb")
	if sum, err := fileSHA256(path); err == nil && sum == info.SHA256 {
		return path, nil
	} else if err == nil {
		c.logf("lab: cached %s does not match the package index; downloading it again", filepath.Base(path))
	}
	c.logf("lab: downloading %s %s", info.Package, info.Version)
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	defer os.RemoveAll(tmp)
	got, err := c.Source.Download(ctx, info, tmp)
	if err != nil {
		return "", fmt.Errorf("%w: download %s: %w (check that apt can reach the Debian archive: apt-get update)", ErrKernelFetch, info.Package, err)
	}
	sum, err := fileSHA256(got)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	if sum != info.SHA256 {
		return "", fmt.Errorf("%w: downloaded %s has SHA256 %s, the package index says %s", ErrKernelFetch, filepath.Base(got), sum, info.SHA256)
	}
	if err := os.Rename(got, path); err != nil {
		return "", fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	return path, nil
}

// unpack extracts a verified .deb into tree and records its manifest. The
// tree is built beside its final place and renamed in, so an interrupted
// unpack never leaves a tree that looks complete.
func (c *KernelCache) unpack(ctx context.Context, info DebInfo, tree string) error {
	deb, err := c.deb(ctx, info)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(c.Dir, "unpack-")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	defer os.RemoveAll(tmp)
	c.logf("lab: unpacking %s", filepath.Base(deb))
	if err := c.Source.Unpack(ctx, deb, tmp); err != nil {
		return fmt.Errorf("%w: unpack %s: %w", ErrKernelFetch, deb, err)
	}
	if imgs, _ := filepath.Glob(filepath.Join(tmp, "boot", "vmlinuz-*")); len(imgs) == 1 {
		elfKernel := filepath.Join(tmp, "boot", "vmlinux-"+strings.TrimPrefix(filepath.Base(imgs[0]), "vmlinuz-"))
		if err := ExtractVmlinux(ctx, imgs[0], elfKernel); err != nil {
			// Still bootable, only slower: say so rather than fail.
			c.logf("lab: booting the compressed kernel, which is slower: %v", err)
			os.Remove(elfKernel)
		}
	}
	m, err := buildManifest(tmp, info.SHA256)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestName), b, 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	if err := os.RemoveAll(tree); err != nil {
		return fmt.Errorf("%w: remove stale %s: %w", ErrKernelFetch, tree, err)
	}
	if err := os.Rename(tmp, tree); err != nil {
		return fmt.Errorf("%w: %w", ErrKernelFetch, err)
	}
	return nil
}

func buildManifest(tree, debSHA string) (*manifest, error) {
	m := &manifest{DebSHA256: debSHA, Files: map[string]string{}, Aliases: map[string]string{}}
	var kernels []string
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		m.Files[rel] = sum
		if strings.HasPrefix(rel, "boot/vmlinuz-") {
			kernels = append(kernels, strings.TrimPrefix(rel, "boot/vmlinuz-"))
		}
		if strings.HasSuffix(rel, ".ko") {
			sec, err := readModInfoSection(p)
			if err != nil {
				return err
			}
			mi := ParseModInfo(sec)
			for _, a := range mi.Aliases {
				// Device aliases (pci:, usb:, ...) are globs for udev; only
				// plain names can be the target of a softdep.
				if !strings.ContainsAny(a, ":*?[") {
					m.Aliases[a] = preferredAlias(m.Aliases[a], moduleName(p))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(kernels)
	if len(kernels) != 1 {
		return nil, fmt.Errorf("expected one boot/vmlinuz-* in the package, found %d", len(kernels))
	}
	m.Release = kernels[0]
	return m, nil
}

// preferredAlias chooses between two modules that declare the same alias.
// Several implementations often do (crc32c_intel and crc32c_generic both
// say "crc32c"); the generic one loads on any CPU, emulated ones included.
func preferredAlias(have, candidate string) string {
	switch {
	case have == "":
		return candidate
	case strings.HasSuffix(candidate, "_generic") && !strings.HasSuffix(have, "_generic"):
		return candidate
	case strings.HasSuffix(have, "_generic") && !strings.HasSuffix(candidate, "_generic"):
		return have
	case candidate < have:
		return candidate
	}
	return have
}
