package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const fakeRelease = "6.1.0-test"

// fakeModules is the module set the fake package unpacks.
var fakeModules = map[string][]string{
	"kernel/net/mod_a.ko":                    {"name=mod_a", "depends=mod_b"},
	"kernel/net/mod_b.ko":                    {"name=mod_b", "depends="},
	"kernel/net/needs_builtin.ko":            {"name=needs_builtin", "depends=bi_mod"},
	"kernel/lib/libcrc32c.ko":                {"name=libcrc32c", "softdep=pre: crc32c"},
	"kernel/crypto/crc32c_generic.ko":        {"name=crc32c_generic", "alias=crc32c", "alias=crypto-crc32c"},
	"kernel/arch/x86/crypto/crc32c-intel.ko": {"name=crc32c_intel", "alias=crc32c", "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*"},
}

// fakeSource is a PackageSource whose "packages" are written by the test.
type fakeSource struct {
	t       *testing.T
	stamp   string
	pkg     string
	version string
	deb     []byte // the package's content, whose SHA256 Info reports

	vmlinuz    []byte // boot/vmlinuz-RELEASE; nil: not a bzImage
	noVmlinuz  bool   // unpack a tree without a kernel image
	downloaded []byte // what Download writes; nil: deb

	resolveErr, infoErr, downloadErr, unpackErr error

	resolve, info, download, unpack int // calls
}

func newFakeSource(t *testing.T) *fakeSource {
	return &fakeSource{t: t, stamp: "stamp-1", pkg: "linux-image-" + fakeRelease, version: "6.1.99-1", deb: []byte("fake .deb, version 6.1.99-1")}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fakeSource) Resolve(ctx context.Context, meta string) (string, error) {
	f.resolve++
	if meta != MetaPackage {
		f.t.Errorf("Resolve(%q), want %q", meta, MetaPackage)
	}
	return f.pkg, f.resolveErr
}

func (f *fakeSource) Info(ctx context.Context, pkg string) (DebInfo, error) {
	f.info++
	if pkg != f.pkg {
		f.t.Errorf("Info(%q), want %q", pkg, f.pkg)
	}
	return DebInfo{Package: f.pkg, Version: f.version, SHA256: sha256Hex(f.deb)}, f.infoErr
}

func (f *fakeSource) Download(ctx context.Context, info DebInfo, dir string) (string, error) {
	f.download++
	if f.downloadErr != nil {
		return "", f.downloadErr
	}
	data := f.deb
	if f.downloaded != nil {
		data = f.downloaded
	}
	p := filepath.Join(dir, info.Package+"_"+info.Version+"_amd64.deb")
	return p, os.WriteFile(p, data, 0o644)
}

func (f *fakeSource) Unpack(ctx context.Context, deb, dir string) error {
	f.unpack++
	if f.unpackErr != nil {
		return f.unpackErr
	}
	// Like dpkg-deb, refuse a package that is not the real one.
	if b, err := os.ReadFile(deb); err != nil || !bytes.Equal(b, f.deb) {
		f.t.Errorf("Unpack given %s (%v), not the verified package", deb, err)
		return errors.New("bad package")
	}
	if !f.noVmlinuz {
		img := f.vmlinuz
		if img == nil {
			img = []byte("not a bzImage")
		}
		writeFile(f.t, filepath.Join(dir, "boot", "vmlinuz-"+fakeRelease), img)
	}
	writeFile(f.t, filepath.Join(dir, "boot", "config-"+fakeRelease), []byte("CONFIG_PVH=y\n"))
	modRoot := filepath.Join(dir, "lib", "modules", fakeRelease)
	writeFile(f.t, filepath.Join(modRoot, "modules.builtin.modinfo"), modinfoSection("bi_mod.license=GPL", "bi_mod.alias=bi-alias"))
	for rel, entries := range fakeModules {
		writeKO(f.t, filepath.Join(modRoot, rel), entries...)
	}
	return nil
}

func (f *fakeSource) Stamp() string { return f.stamp }

// calls summarises the call counters for comparisons.
func (f *fakeSource) calls() [4]int { return [4]int{f.resolve, f.info, f.download, f.unpack} }

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testCache is a KernelCache over src in a fresh directory, with its log
// kept for inspection.
type testCache struct {
	*KernelCache
	src  *fakeSource
	logs []string
}

func newTestCache(t *testing.T, src *fakeSource) *testCache {
	tc := &testCache{src: src}
	tc.KernelCache = &KernelCache{Dir: t.TempDir(), Source: src, Logf: func(format string, args ...any) {
		tc.logs = append(tc.logs, fmt.Sprintf(format, args...))
	}}
	return tc
}

func (tc *testCache) tree() string {
	return filepath.Join(tc.Dir, tc.src.pkg+"_"+tc.src.version)
}

func (tc *testCache) debPath() string {
	return filepath.Join(tc.Dir, "debs", tc.src.pkg+"_"+tc.src.version+".deb")
}

func (tc *testCache) logged(substr string) bool {
	return slices.ContainsFunc(tc.logs, func(s string) bool { return strings.Contains(s, substr) })
}

var fakeWanted = []string{"mod_a", "libcrc32c", "needs_builtin"}

// checkKernel checks a Kernel returned for fakeWanted.
func (tc *testCache) checkKernel(t *testing.T, k *Kernel) {
	t.Helper()
	if k.Package != tc.src.pkg || k.Version != fakeRelease {
		t.Errorf("kernel %s %s, want %s %s", k.Package, k.Version, tc.src.pkg, fakeRelease)
	}
	if want := filepath.Join(tc.tree(), "boot", "vmlinuz-"+fakeRelease); k.Vmlinuz != want {
		t.Errorf("Vmlinuz = %s, want %s", k.Vmlinuz, want)
	}
	modRoot := filepath.Join(tc.tree(), "lib", "modules", fakeRelease)
	var names []string
	for _, m := range k.Modules {
		rel, err := filepath.Rel(modRoot, m)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("module %s is not under %s", m, modRoot)
		}
		got, err := os.ReadFile(m)
		if err != nil || !bytes.Equal(got, koBytes(fakeModules[rel]...)) {
			t.Errorf("module %s does not hold what was unpacked (%v)", m, err)
		}
		names = append(names, moduleName(m))
	}
	// crc32c_generic, not crc32c_intel, provides libcrc32c's "crc32c".
	want := []string{"mod_b", "mod_a", "crc32c_generic", "libcrc32c", "needs_builtin"}
	if !slices.Equal(names, want) {
		t.Errorf("modules %q, want %q", names, want)
	}
}

func TestKernelCacheFirstRunAndReuse(t *testing.T) {
	ctx := context.Background()
	src := newFakeSource(t)
	tc := newTestCache(t, src)

	k, err := tc.Kernel(ctx, fakeWanted)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	tc.checkKernel(t, k)
	if got := src.calls(); got != [4]int{1, 1, 1, 1} {
		t.Errorf("first run: calls (resolve, info, download, unpack) = %v, want one of each", got)
	}
	if !tc.logged("booting the compressed kernel") {
		t.Errorf("a non-bzImage vmlinuz was not reported as such; log: %q", tc.logs)
	}
	if _, err := os.Stat(filepath.Join(tc.tree(), "boot", "vmlinux-"+fakeRelease)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed extraction left boot/vmlinux-%s behind (%v)", fakeRelease, err)
	}
	if sum, err := fileSHA256(tc.debPath()); err != nil || sum != sha256Hex(src.deb) {
		t.Errorf("cached .deb: %s, %v", sum, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(tc.Dir, "unpack-*")); len(leftovers) > 0 {
		t.Errorf("temporary unpack directories left: %q", leftovers)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(tc.Dir, "debs", "download-*")); len(leftovers) > 0 {
		t.Errorf("temporary download directories left: %q", leftovers)
	}

	// A second run, as by another process, with an unchanged index.
	again := &KernelCache{Dir: tc.Dir, Source: src}
	k2, err := again.Kernel(ctx, fakeWanted)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	tc.checkKernel(t, k2)
	if got := src.calls(); got != [4]int{1, 1, 1, 1} {
		t.Errorf("second run: calls = %v, want none beyond the first run's", got)
	}
}

func TestKernelCacheResolution(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// between runs the cache directory or the source changes
		change func(t *testing.T, tc *testCache)
		want   [4]int // calls made by the second run
	}{
		{"unchanged stamp", func(*testing.T, *testCache) {}, [4]int{0, 0, 0, 0}},
		{"changed stamp", func(_ *testing.T, tc *testCache) { tc.src.stamp = "stamp-2" }, [4]int{1, 1, 0, 0}},
		{"empty stamp is never reused", func(_ *testing.T, tc *testCache) { tc.src.stamp = "" }, [4]int{1, 1, 0, 0}},
		{"resolved.json garbage", func(t *testing.T, tc *testCache) {
			writeFile(t, filepath.Join(tc.Dir, "resolved.json"), []byte("{not json"))
		}, [4]int{1, 1, 0, 0}},
		{"resolved.json missing", func(t *testing.T, tc *testCache) {
			if err := os.Remove(filepath.Join(tc.Dir, "resolved.json")); err != nil {
				t.Fatal(err)
			}
		}, [4]int{1, 1, 0, 0}},
		{"resolved.json with a short SHA256", func(t *testing.T, tc *testCache) {
			b, _ := json.Marshal(resolvedIndex{Stamp: tc.src.stamp, Info: DebInfo{Package: tc.src.pkg, Version: tc.src.version, SHA256: "abc"}})
			writeFile(t, filepath.Join(tc.Dir, "resolved.json"), b)
		}, [4]int{1, 1, 0, 0}},
		{"new kernel in the index", func(_ *testing.T, tc *testCache) {
			tc.src.stamp = "stamp-2"
			tc.src.version = "6.1.100-1"
			tc.src.deb = []byte("fake .deb, version 6.1.100-1")
		}, [4]int{1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(t)
			tc := newTestCache(t, src)
			if _, err := tc.Kernel(ctx, fakeWanted); err != nil {
				t.Fatal(err)
			}
			tt.change(t, tc)
			before := src.calls()
			k, err := tc.Kernel(ctx, fakeWanted)
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			tc.checkKernel(t, k)
			after := src.calls()
			var got [4]int
			for i := range got {
				got[i] = after[i] - before[i]
			}
			if got != tt.want {
				t.Errorf("second run: calls (resolve, info, download, unpack) = %v, want %v", got, tt.want)
			}
			var r resolvedIndex
			b, err := os.ReadFile(filepath.Join(tc.Dir, "resolved.json"))
			if err != nil || json.Unmarshal(b, &r) != nil || r.Stamp != src.stamp || r.Info.Version != src.version {
				t.Errorf("resolved.json after the run = %s (%v), want stamp %q version %q", b, err, src.stamp, src.version)
			}
		})
	}
}

func TestKernelCacheRepairsCorruption(t *testing.T) {
	ctx := context.Background()
	modRoot := filepath.Join("lib", "modules", fakeRelease)
	vmlinuz := filepath.Join("boot", "vmlinuz-"+fakeRelease)
	remove := func(rel string) func(*testing.T, *testCache) {
		return func(t *testing.T, tc *testCache) {
			if err := os.Remove(filepath.Join(tc.tree(), rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	overwrite := func(rel string, data []byte) func(*testing.T, *testCache) {
		return func(t *testing.T, tc *testCache) {
			writeFile(t, filepath.Join(tc.tree(), rel), data)
		}
	}
	appendByte := func(rel string) func(*testing.T, *testCache) {
		return func(t *testing.T, tc *testCache) {
			p := filepath.Join(tc.tree(), rel)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, append(b, 0))
		}
	}
	badDeb := func(t *testing.T, tc *testCache) { writeFile(t, tc.debPath(), []byte("truncated")) }
	noDeb := func(t *testing.T, tc *testCache) {
		if err := os.Remove(tc.debPath()); err != nil {
			t.Fatal(err)
		}
	}
	both := func(fs ...func(*testing.T, *testCache)) func(*testing.T, *testCache) {
		return func(t *testing.T, tc *testCache) {
			for _, f := range fs {
				f(t, tc)
			}
		}
	}

	tests := []struct {
		name       string
		damage     func(*testing.T, *testCache)
		redownload bool
	}{
		{"vmlinuz deleted", remove(vmlinuz), false},
		{"vmlinuz changed", overwrite(vmlinuz, []byte("tampered")), false},
		{"module deleted", remove(filepath.Join(modRoot, "kernel/net/mod_b.ko")), false},
		{"module changed", appendByte(filepath.Join(modRoot, "kernel/crypto/crc32c_generic.ko")), false},
		{"module replaced by another valid module", overwrite(filepath.Join(modRoot, "kernel/net/mod_a.ko"), koBytes("name=mod_a", "depends=ghost")), false},
		{"built-in list deleted", remove(filepath.Join(modRoot, "modules.builtin.modinfo")), false},
		{"manifest deleted", remove(manifestName), false},
		{"manifest garbage", overwrite(manifestName, []byte("{\"files\": [")), false},
		{"manifest empty", overwrite(manifestName, []byte("{}")), false},
		{"manifest from another .deb", func(t *testing.T, tc *testCache) {
			m, err := readManifest(tc.tree())
			if err != nil {
				t.Fatal(err)
			}
			m.DebSHA256 = sha256Hex([]byte("other"))
			b, _ := json.Marshal(m)
			writeFile(t, filepath.Join(tc.tree(), manifestName), b)
		}, false},
		{"whole tree deleted", func(t *testing.T, tc *testCache) {
			if err := os.RemoveAll(tc.tree()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"vmlinuz and .deb changed", both(overwrite(vmlinuz, nil), badDeb), true},
		{"module and .deb deleted", both(remove(filepath.Join(modRoot, "kernel/net/mod_b.ko")), noDeb), true},
		{"only .deb changed: tree still good", badDeb, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(t)
			tc := newTestCache(t, src)
			if _, err := tc.Kernel(ctx, fakeWanted); err != nil {
				t.Fatal(err)
			}
			manifestBefore, err := os.ReadFile(filepath.Join(tc.tree(), manifestName))
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, tc)
			tc.logs = nil
			k, err := tc.Kernel(ctx, fakeWanted)
			if err != nil {
				t.Fatalf("run after damage: %v", err)
			}
			tc.checkKernel(t, k)
			treeDamaged := tt.name != "only .deb changed: tree still good"
			wantUnpack, wantDownload := 1, 1
			if treeDamaged {
				wantUnpack = 2
			}
			if tt.redownload {
				wantDownload = 2
			}
			if src.unpack != wantUnpack || src.download != wantDownload || src.resolve != 1 {
				t.Errorf("calls (resolve, info, download, unpack) = %v, want %d downloads and %d unpacks", src.calls(), wantDownload, wantUnpack)
			}
			if treeDamaged != tc.logged("unpacking the kernel again") {
				t.Errorf("log %q: reported re-unpack = %v, want %v", tc.logs, !treeDamaged, treeDamaged)
			}
			if tt.redownload && !tc.logged("downloading") {
				t.Errorf("log %q does not report the download", tc.logs)
			}
			manifestAfter, err := os.ReadFile(filepath.Join(tc.tree(), manifestName))
			if err != nil || !bytes.Equal(manifestAfter, manifestBefore) {
				t.Errorf("manifest after repair differs from the original (%v)", err)
			}
		})
	}
}

func TestKernelCacheErrors(t *testing.T) {
	ctx := context.Background()
	errSource := errors.New("source failure")
	tests := []struct {
		name    string
		setup   func(*fakeSource)
		modules []string
		is      []error
		calls   [4]int
	}{
		{"resolve fails", func(f *fakeSource) { f.resolveErr = errSource }, fakeWanted,
			[]error{ErrKernelFetch, errSource}, [4]int{1, 0, 0, 0}},
		{"info fails", func(f *fakeSource) { f.infoErr = errSource }, fakeWanted,
			[]error{ErrKernelFetch, errSource}, [4]int{1, 1, 0, 0}},
		{"download fails", func(f *fakeSource) { f.downloadErr = errSource }, fakeWanted,
			[]error{ErrKernelFetch, errSource}, [4]int{1, 1, 1, 0}},
		{"download has the wrong SHA256", func(f *fakeSource) { f.downloaded = []byte("corrupted in transit") }, fakeWanted,
			[]error{ErrKernelFetch}, [4]int{1, 1, 1, 0}},
		{"unpack fails", func(f *fakeSource) { f.unpackErr = errSource }, fakeWanted,
			[]error{ErrKernelFetch, errSource}, [4]int{1, 1, 1, 1}},
		{"package has no kernel image", func(f *fakeSource) { f.noVmlinuz = true }, fakeWanted,
			[]error{ErrKernelFetch}, [4]int{1, 1, 1, 1}},
		{"module not in the kernel: not retried", func(*fakeSource) {}, []string{"mod_a", "no_such_module"},
			[]error{ErrModuleNotFound}, [4]int{1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource(t)
			tt.setup(src)
			tc := newTestCache(t, src)
			k, err := tc.Kernel(ctx, tt.modules)
			if err == nil {
				t.Fatalf("Kernel = %+v, want an error", k)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("error %v does not wrap %v", err, target)
				}
			}
			if errors.Is(err, ErrCacheCorrupt) {
				t.Errorf("error %v reports a corrupt cache", err)
			}
			if got := src.calls(); got != tt.calls {
				t.Errorf("calls (resolve, info, download, unpack) = %v, want %v", got, tt.calls)
			}
			if src.unpack == 0 {
				if _, err := os.Stat(tc.tree()); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("tree %s exists after a failed fetch (%v)", tc.tree(), err)
				}
			}
			if tt.calls[3] == 0 && tt.calls[2] == 1 {
				if _, err := os.Stat(tc.debPath()); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("unverified .deb kept at %s (%v)", tc.debPath(), err)
				}
			}
			for _, pattern := range []string{"unpack-*", filepath.Join("debs", "download-*")} {
				if leftovers, _ := filepath.Glob(filepath.Join(tc.Dir, pattern)); len(leftovers) > 0 {
					t.Errorf("temporary directories left: %q", leftovers)
				}
			}
		})
	}
}

// TestKernelCacheExtractsVmlinux unpacks a package whose vmlinuz is a real
// (synthetic) bzImage, so the cache boots the extracted ELF kernel.
func TestKernelCacheExtractsVmlinux(t *testing.T) {
	elfKernel := pvhKernel(true)
	src := newFakeSource(t)
	src.vmlinuz = makeBzImage(t, 0, 0x20f, xzCompress(t, elfKernel))
	tc := newTestCache(t, src)
	k, err := tc.Kernel(context.Background(), []string{"mod_a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(tc.tree(), "boot", "vmlinux-"+fakeRelease); k.Vmlinuz != want {
		t.Fatalf("Vmlinuz = %s, want %s (log %q)", k.Vmlinuz, want, tc.logs)
	}
	if got, err := os.ReadFile(k.Vmlinuz); err != nil || !bytes.Equal(got, elfKernel) {
		t.Errorf("extracted kernel differs from the compressed one (%v)", err)
	}
	m, err := readManifest(tc.tree())
	if err != nil {
		t.Fatal(err)
	}
	if m.Files[filepath.Join("boot", "vmlinux-"+fakeRelease)] != sha256Hex(elfKernel) {
		t.Errorf("manifest does not record the extracted kernel")
	}

	// The extracted kernel is verified like everything else.
	writeFile(t, k.Vmlinuz, []byte("tampered"))
	k2, err := tc.Kernel(context.Background(), []string{"mod_a"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(k2.Vmlinuz); err != nil || !bytes.Equal(got, elfKernel) {
		t.Errorf("tampered vmlinux not repaired (%v)", err)
	}
	if src.unpack != 2 || src.download != 1 {
		t.Errorf("calls = %v, want one download and two unpacks", src.calls())
	}
}

func TestPreferredAlias(t *testing.T) {
	tests := []struct{ have, candidate, want string }{
		{"", "crc32c_intel", "crc32c_intel"},
		{"crc32c_intel", "crc32c_generic", "crc32c_generic"},
		{"crc32c_generic", "crc32c_intel", "crc32c_generic"},
		{"crc32c_generic", "aaa", "crc32c_generic"},
		{"zzz", "aaa", "aaa"},
		{"aaa", "zzz", "aaa"},
		{"same", "same", "same"},
	}
	for _, tt := range tests {
		if got := preferredAlias(tt.have, tt.candidate); got != tt.want {
			t.Errorf("preferredAlias(%q, %q) = %q, want %q", tt.have, tt.candidate, got, tt.want)
		}
	}

	// The choice does not depend on the order the candidates are met in
	// (as long as at most one of them is generic).
	sets := [][]string{
		{"crc32c_intel", "crc32c_generic", "crc32c_vpmsum"},
		{"c", "b", "a", "d"},
		{"x_generic", "a", "b"},
	}
	for _, set := range sets {
		want := ""
		first := true
		for perm := range permutations(set) {
			got := ""
			for _, c := range perm {
				got = preferredAlias(got, c)
			}
			if first {
				want, first = got, false
			} else if got != want {
				t.Errorf("candidates in order %q give %q, other orders %q", perm, got, want)
			}
		}
		if hasGeneric := slices.ContainsFunc(set, func(s string) bool { return strings.HasSuffix(s, "_generic") }); hasGeneric {
			if !strings.HasSuffix(want, "_generic") {
				t.Errorf("%q: chose %q over the generic module", set, want)
			}
		} else if want != slices.Min(set) {
			t.Errorf("%q: chose %q, want the smallest, %q", set, want, slices.Min(set))
		}
	}
}

// permutations yields every ordering of s.
func permutations(s []string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		var rec func(prefix, rest []string) bool
		rec = func(prefix, rest []string) bool {
			if len(rest) == 0 {
				return yield(slices.Clone(prefix))
			}
			for i := range rest {
				next := append(slices.Clone(rest[:i]), rest[i+1:]...)
				if !rec(append(prefix, rest[i]), next) {
					return false
				}
			}
			return true
		}
		rec(nil, s)
	}
}

func TestBuildManifest(t *testing.T) {
	src := newFakeSource(t)
	deb := filepath.Join(t.TempDir(), "x.deb")
	writeFile(t, deb, src.deb)
	tree := t.TempDir()
	if err := src.Unpack(context.Background(), deb, tree); err != nil {
		t.Fatal(err)
	}
	m, err := buildManifest(tree, "debsum")
	if err != nil {
		t.Fatal(err)
	}
	if m.Release != fakeRelease || m.DebSHA256 != "debsum" {
		t.Errorf("release %q deb %q", m.Release, m.DebSHA256)
	}
	wantAliases := map[string]string{"crc32c": "crc32c_generic", "crypto-crc32c": "crc32c_generic"}
	if !mapsEqual(m.Aliases, wantAliases) {
		t.Errorf("aliases = %v, want %v (device aliases left out)", m.Aliases, wantAliases)
	}
	var count int
	err = filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		count++
		rel, _ := filepath.Rel(tree, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if m.Files[rel] != sha256Hex(b) {
			t.Errorf("manifest hash of %s = %q, want %q", rel, m.Files[rel], sha256Hex(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != len(m.Files) {
		t.Errorf("manifest lists %d files, the tree has %d", len(m.Files), count)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestBuildManifestErrors(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string][]byte
		substr string
	}{
		{"no kernel image", map[string][]byte{"lib/modules/x/modules.builtin.modinfo": nil}, "found 0"},
		{"two kernel images", map[string][]byte{"boot/vmlinuz-6.1.0-1": []byte("a"), "boot/vmlinuz-6.1.0-2": []byte("b")}, "found 2"},
		{"module that is not ELF", map[string][]byte{"boot/vmlinuz-6.1.0-1": []byte("a"), "lib/modules/6.1.0-1/bad.ko": bytes.Repeat([]byte("not ELF "), 16)}, "bad magic"},
		{"empty tree", nil, "found 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := t.TempDir()
			for rel, data := range tt.files {
				writeFile(t, filepath.Join(tree, rel), data)
			}
			m, err := buildManifest(tree, "x")
			if err == nil {
				t.Fatalf("buildManifest = %+v, want an error", m)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("error %q does not mention %q", err, tt.substr)
			}
		})
	}
}

func TestBuildManifestIgnoresKernelDirectories(t *testing.T) {
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "boot", "vmlinuz-6.1.0-1"), []byte("kernel"))
	if err := os.MkdirAll(filepath.Join(tree, "boot", "vmlinuz-not-a-file"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("vmlinuz-6.1.0-1", filepath.Join(tree, "boot", "vmlinuz-link")); err != nil {
		t.Fatal(err)
	}
	m, err := buildManifest(tree, "x")
	if err != nil {
		t.Fatal(err)
	}
	if m.Release != "6.1.0-1" || len(m.Files) != 1 {
		t.Errorf("release %q, files %v; want only the regular kernel file", m.Release, m.Files)
	}
}
