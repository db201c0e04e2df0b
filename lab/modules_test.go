package lab

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testSection is one section of a synthetic ELF file.
type testSection struct {
	name string
	typ  elf.SectionType
	data []byte
}

// testProg is one program header (segment) of a synthetic ELF file.
type testProg struct {
	typ  elf.ProgType
	data []byte
}

// buildELF assembles a minimal little-endian ELF64 file: the header, the
// program headers, the contents of segments and sections, a .shstrtab and
// the section header table (null section first, .shstrtab last).
func buildELF(typ elf.Type, sections []testSection, progs []testProg) []byte {
	const ehsize, phentsize, shentsize = 64, 56, 64
	align8 := func(n int) int { return (n + 7) &^ 7 }

	var body bytes.Buffer // everything after the header and program headers
	dataStart := ehsize + phentsize*len(progs)
	place := func(b []byte) uint64 {
		for (dataStart+body.Len())%8 != 0 {
			body.WriteByte(0)
		}
		off := dataStart + body.Len()
		body.Write(b)
		return uint64(off)
	}

	var phdrs []elf.Prog64
	for _, p := range progs {
		off := place(p.data)
		phdrs = append(phdrs, elf.Prog64{
			Type: uint32(p.typ), Flags: uint32(elf.PF_R), Off: off,
			Filesz: uint64(len(p.data)), Memsz: uint64(len(p.data)), Align: 4,
		})
	}

	shstrtab := []byte{0}
	nameOff := func(name string) uint32 {
		off := uint32(len(shstrtab))
		shstrtab = append(shstrtab, name...)
		shstrtab = append(shstrtab, 0)
		return off
	}
	shdrs := []elf.Section64{{}} // SHN_UNDEF
	for _, s := range sections {
		n := nameOff(s.name)
		off := place(s.data)
		shdrs = append(shdrs, elf.Section64{
			Name: n, Type: uint32(s.typ), Off: off, Size: uint64(len(s.data)), Addralign: 1,
		})
	}
	strName := nameOff(".shstrtab")
	strOff := place(shstrtab)
	shdrs = append(shdrs, elf.Section64{
		Name: strName, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1,
	})
	shoff := align8(dataStart + body.Len())
	for dataStart+body.Len() < shoff {
		body.WriteByte(0)
	}

	hdr := elf.Header64{
		Type: uint16(typ), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shoff), Ehsize: ehsize, Shentsize: shentsize,
		Shnum: uint16(len(shdrs)), Shstrndx: uint16(len(shdrs) - 1),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	if len(progs) > 0 {
		hdr.Phoff = ehsize
		hdr.Phentsize = phentsize
		hdr.Phnum = uint16(len(progs))
	}

	var out bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&out, le, hdr)
	for _, p := range phdrs {
		_ = binary.Write(&out, le, p)
	}
	out.Write(body.Bytes())
	for _, s := range shdrs {
		_ = binary.Write(&out, le, s)
	}
	return out.Bytes()
}

// modinfoSection encodes key=value entries as a .modinfo section does.
func modinfoSection(entries ...string) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, e...)
		b = append(b, 0)
	}
	return b
}

// koBytes is a tiny relocatable ELF whose .modinfo holds entries.
func koBytes(entries ...string) []byte {
	return buildELF(elf.ET_REL, []testSection{
		{name: ".text", typ: elf.SHT_PROGBITS, data: []byte{0xc3}},
		{name: ".modinfo", typ: elf.SHT_PROGBITS, data: modinfoSection(entries...)},
	}, nil)
}

// writeKO writes a module file at path and checks, with debug/elf, that
// its .modinfo section reads back as written.
func writeKO(t *testing.T, path string, entries ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, koBytes(entries...), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("synthetic module %s is not valid ELF: %v", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		t.Fatalf("synthetic module %s: no .modinfo section", path)
	}
	got, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	if want := modinfoSection(entries...); !bytes.Equal(got, want) {
		t.Fatalf("synthetic module %s: .modinfo = %q, want %q", path, got, want)
	}
}

func TestBuildELFHelper(t *testing.T) {
	note := []byte("not really a note")
	b := buildELF(elf.ET_EXEC, []testSection{{name: ".modinfo", typ: elf.SHT_PROGBITS, data: []byte("a=b\x00")}},
		[]testProg{{typ: elf.PT_NOTE, data: note}})
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != elf.ET_EXEC || f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		t.Errorf("header = %v %v %v", f.Type, f.Class, f.Machine)
	}
	if len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_NOTE {
		t.Fatalf("progs = %+v", f.Progs)
	}
	got := make([]byte, f.Progs[0].Filesz)
	if _, err := f.Progs[0].ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, note) {
		t.Errorf("PT_NOTE data = %q, want %q", got, note)
	}
	if s := f.Section(".shstrtab"); s == nil || s.Type != elf.SHT_STRTAB {
		t.Errorf(".shstrtab = %+v", s)
	}
}

func TestParseModInfo(t *testing.T) {
	tests := []struct {
		name    string
		section []byte
		want    ModInfo
	}{
		{
			name:    "empty",
			section: nil,
			want:    ModInfo{},
		},
		{
			name: "typical module",
			section: modinfoSection(
				"license=GPL", "name=ip_vs", "depends=nf_conntrack,nf_defrag_ipv6,libcrc32c",
				"alias=ip_vs_alias", "alias=net-pf-16-proto-12", "vermagic=6.1.0 SMP mod_unload"),
			want: ModInfo{
				Name:    "ip_vs",
				Depends: []string{"nf_conntrack", "nf_defrag_ipv6", "libcrc32c"},
				Aliases: []string{"ip_vs_alias", "net-pf-16-proto-12"},
			},
		},
		{
			name:    "empty depends and softdep pre/post",
			section: modinfoSection("depends=", "softdep=pre: a b post: c", "name=x"),
			want:    ModInfo{Name: "x", SoftPre: []string{"a", "b"}},
		},
		{
			name:    "several softdep entries accumulate",
			section: modinfoSection("softdep=pre: crc32c", "softdep=post: z pre: y"),
			want:    ModInfo{SoftPre: []string{"crc32c", "y"}},
		},
		{
			name:    "depends with spaces and empty items",
			section: modinfoSection("depends= a ,,b, "),
			want:    ModInfo{Depends: []string{"a", "b"}},
		},
		{
			name: "garbage entries without '=' are ignored",
			section: append(append([]byte("garbage\x00\x00\x00"), modinfoSection("name=m", "noequals", "alias=x=y")...),
				"trailing-without-nul"...),
			want: ModInfo{Name: "m", Aliases: []string{"x=y"}},
		},
		{
			name:    "later name wins",
			section: modinfoSection("name=first", "name=second"),
			want:    ModInfo{Name: "second"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseModInfo(tt.section); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseModInfo(%q) = %+v, want %+v", tt.section, got, tt.want)
			}
		})
	}
}

func TestParseSoftdepPre(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"pre: crc32c", []string{"crc32c"}},
		{"pre: a b post: c", []string{"a", "b"}},
		{"post: c pre: a", []string{"a"}},
		{"post: c d", nil},
		{"pre:   a\tb  ", []string{"a", "b"}},
		{"a b", nil}, // no "pre:" section at all
		{"", nil},
		{"pre: a post: b pre: c", []string{"a", "c"}},
	}
	for _, tt := range tests {
		if got := parseSoftdepPre(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("parseSoftdepPre(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestModuleName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"crc32c-intel.ko", "crc32c_intel"},
		{"kernel/arch/x86/crypto/crc32c-intel.ko", "crc32c_intel"},
		{"ip_vs.ko", "ip_vs"},
		{"/abs/path/a-b-c.ko", "a_b_c"},
		{"noext", "noext"},
		{"mod.ko.xz", "mod.ko.xz"}, // compressed modules are not stripped
	}
	for _, tt := range tests {
		if got := moduleName(tt.in); got != tt.want {
			t.Errorf("moduleName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// synthModules is the module set of the synthetic tree: relative path ->
// .modinfo entries.
var synthModules = map[string][]string{
	"kernel/net/top.ko":                      {"name=top", "depends=left,right"},
	"kernel/net/left.ko":                     {"name=left", "depends=base"},
	"kernel/net/right.ko":                    {"name=right", "depends=base,bi_core"},
	"kernel/net/base.ko":                     {"name=base", "depends="},
	"kernel/lib/libcrc32c.ko":                {"name=libcrc32c", "softdep=pre: crc32c", "depends="},
	"kernel/crypto/crc32c_generic.ko":        {"name=crc32c_generic", "alias=crc32c", "alias=crypto-crc32c"},
	"kernel/arch/x86/crypto/crc32c-intel.ko": {"name=crc32c_intel", "alias=crc32c", "alias=cpu:type:x86*"},
	"kernel/misc/uses_bialias.ko":            {"name=uses_bialias", "softdep=pre: bialias"},
	"kernel/misc/soft_dash.ko":               {"name=soft_dash", "softdep=pre: crc32c-intel"},
	"kernel/misc/dep_on_dash.ko":             {"name=dep_on_dash", "depends=crc32c_intel"},
	"kernel/misc/needs_missing.ko":           {"name=needs_missing", "depends=base,ghost"},
	"kernel/misc/bad_soft.ko":                {"name=bad_soft", "softdep=pre: nothing_provides_this"},
	"kernel/misc/cyc_a.ko":                   {"name=cyc_a", "depends=cyc_b"},
	"kernel/misc/cyc_b.ko":                   {"name=cyc_b", "depends=cyc_c"},
	"kernel/misc/cyc_c.ko":                   {"name=cyc_c", "depends=cyc_a"},
}

// synthAliases is what the manifest would record for synthModules.
var synthAliases = map[string]string{"crc32c": "crc32c_generic", "crypto-crc32c": "crc32c_generic"}

// synthBuiltin is modules.builtin.modinfo: a built-in module with an
// alias, and another one that only has a licence line.
var synthBuiltin = modinfoSection(
	"bi_core.file=kernel/core/bi_core", "bi_core.license=GPL", "bi_core.alias=bialias",
	"bi_other.license=GPL", "not-a-module-entry")

// writeSynthTree writes the synthetic lib/modules/RELEASE tree and
// returns its root and the module files relative to it.
func writeSynthTree(t *testing.T) (string, []string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-test")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "modules.builtin.modinfo"), synthBuiltin, 0o644); err != nil {
		t.Fatal(err)
	}
	var files []string
	for rel, entries := range synthModules {
		writeKO(t, filepath.Join(root, rel), entries...)
		files = append(files, rel)
	}
	slices.Sort(files)
	return root, files
}

// synthDeps is the dependency graph (hard and soft, after alias
// resolution, built-ins removed) that LoadOrder must respect.
var synthDeps = map[string][]string{
	"top":          {"left", "right"},
	"left":         {"base"},
	"right":        {"base"},
	"libcrc32c":    {"crc32c_generic"},
	"soft_dash":    {"crc32c_intel"},
	"dep_on_dash":  {"crc32c_intel"},
	"uses_bialias": nil,
}

func TestModuleTreeLoadOrder(t *testing.T) {
	root, files := writeSynthTree(t)
	tests := []struct {
		name  string
		names []string
		want  []string // as a set; order is checked against synthDeps
	}{
		{"single leaf", []string{"base"}, []string{"base"}},
		{"dependencies first, diamond once", []string{"top"}, []string{"base", "left", "right", "top"}},
		{"requested twice and as dependency", []string{"top", "base", "left", "top"}, []string{"base", "left", "right", "top"}},
		{"built-in dependency skipped", []string{"right"}, []string{"base", "right"}},
		{"built-in module requested directly", []string{"bi_core", "bi_other"}, nil},
		{"soft pre dependency through alias", []string{"libcrc32c"}, []string{"crc32c_generic", "libcrc32c"}},
		{"soft pre dependency on a built-in alias", []string{"uses_bialias"}, []string{"uses_bialias"}},
		{"dashed request", []string{"crc32c-intel"}, []string{"crc32c_intel"}},
		{"underscored request for dashed file", []string{"crc32c_intel"}, []string{"crc32c_intel"}},
		{"dashed soft dependency", []string{"soft_dash"}, []string{"crc32c_intel", "soft_dash"}},
		{"hard dependency on a dashed file", []string{"dep_on_dash"}, []string{"crc32c_intel", "dep_on_dash"}},
		{"nothing", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt, err := NewModuleTree(root, files, synthAliases)
			if err != nil {
				t.Fatal(err)
			}
			got, err := mt.LoadOrder(tt.names)
			if err != nil {
				t.Fatalf("LoadOrder(%q): %v", tt.names, err)
			}
			checkLoadOrder(t, got, tt.want)
			for _, name := range got {
				p := mt.Path(name)
				if !strings.HasPrefix(p, root+string(filepath.Separator)) || moduleName(p) != name {
					t.Errorf("Path(%q) = %q, not the module's file under %s", name, p, root)
				}
				if _, err := os.Stat(p); err != nil {
					t.Errorf("Path(%q): %v", name, err)
				}
			}
		})
	}
}

// checkLoadOrder checks that got holds exactly the modules of want, once
// each, with every module after what it depends on.
func checkLoadOrder(t *testing.T, got, want []string) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range got {
		if _, dup := pos[m]; dup {
			t.Errorf("order %q lists %s twice", got, m)
		}
		pos[m] = i
	}
	sortedGot, sortedWant := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(slices.Compact(sortedGot), sortedWant) {
		t.Errorf("order %q has modules %q, want %q", got, slices.Compact(sortedGot), sortedWant)
	}
	for m, deps := range synthDeps {
		for _, d := range deps {
			pm, okm := pos[m]
			pd, okd := pos[d]
			if okm && (!okd || pd > pm) {
				t.Errorf("order %q: %s does not come after its dependency %s", got, m, d)
			}
		}
	}
}

func TestModuleTreeLoadOrderErrors(t *testing.T) {
	root, files := writeSynthTree(t)
	tests := []struct {
		name         string
		names        []string
		notFound     bool
		wantInErrors []string
	}{
		{"unknown module", []string{"base", "nope"}, true, []string{"nope"}},
		{"missing dependency names who needed it", []string{"needs_missing"}, true, []string{"ghost", "needed by needs_missing"}},
		{"unresolvable soft dependency", []string{"bad_soft"}, true, []string{"soft dependency of bad_soft", "nothing_provides_this"}},
		{"cycle", []string{"cyc_a"}, false, []string{"cycle", "cyc_a -> cyc_b -> cyc_c -> cyc_a"}},
		{"cycle entered in the middle", []string{"cyc_b"}, false, []string{"cycle", "cyc_b -> cyc_c -> cyc_a -> cyc_b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt, err := NewModuleTree(root, files, synthAliases)
			if err != nil {
				t.Fatal(err)
			}
			got, err := mt.LoadOrder(tt.names)
			if err == nil {
				t.Fatalf("LoadOrder(%q) = %q, want an error", tt.names, got)
			}
			if got != nil {
				t.Errorf("LoadOrder(%q) returned %q along with its error", tt.names, got)
			}
			if errors.Is(err, ErrModuleNotFound) != tt.notFound {
				t.Errorf("errors.Is(%v, ErrModuleNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
			for _, s := range tt.wantInErrors {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestNewModuleTreeNeedsBuiltinList(t *testing.T) {
	root := t.TempDir()
	if _, err := NewModuleTree(root, nil, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewModuleTree without modules.builtin.modinfo: err = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestNewModuleTreeBuiltinAliases(t *testing.T) {
	root, files := writeSynthTree(t)
	// The caller's alias for "bialias" is overridden by the built-in list,
	// and the caller's map is copied, not kept.
	aliases := map[string]string{"bialias": "base", "crc32c": "crc32c_generic"}
	mt, err := NewModuleTree(root, files, aliases)
	if err != nil {
		t.Fatal(err)
	}
	aliases["crc32c"] = "crc32c_intel"
	for name, want := range map[string]string{"bialias": "bi_core", "crc32c": "crc32c_generic", "crc32c-intel": "crc32c_intel", "base": "base", "bi_other": "bi_other"} {
		got, err := mt.resolveAlias(name)
		if err != nil || got != want {
			t.Errorf("resolveAlias(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if got, err := mt.resolveAlias("not-a-module-entry"); !errors.Is(err, ErrModuleNotFound) {
		t.Errorf("resolveAlias of an entry without a key = %q, %v; want ErrModuleNotFound", got, err)
	}
}

func TestModuleTreeVerifyHook(t *testing.T) {
	t.Run("called once per module, before parsing", func(t *testing.T) {
		root, files := writeSynthTree(t)
		// The module files hold garbage until the hook writes them, so
		// parsing before verifying would fail.
		for _, rel := range files {
			if err := os.WriteFile(filepath.Join(root, rel), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mt, err := NewModuleTree(root, files, synthAliases)
		if err != nil {
			t.Fatal(err)
		}
		calls := map[string]int{}
		mt.verify = func(rel string) error {
			calls[rel]++
			return os.WriteFile(filepath.Join(root, rel), koBytes(synthModules[rel]...), 0o644)
		}
		got, err := mt.LoadOrder([]string{"top", "libcrc32c", "right"})
		if err != nil {
			t.Fatalf("LoadOrder: %v", err)
		}
		checkLoadOrder(t, got, []string{"base", "left", "right", "top", "crc32c_generic", "libcrc32c"})
		want := map[string]int{}
		for _, m := range got {
			rel, _ := filepath.Rel(root, mt.Path(m))
			want[rel] = 1
		}
		if !reflect.DeepEqual(calls, want) {
			t.Errorf("verify calls = %v, want %v", calls, want)
		}
	})

	t.Run("its error is returned", func(t *testing.T) {
		root, files := writeSynthTree(t)
		mt, err := NewModuleTree(root, files, synthAliases)
		if err != nil {
			t.Fatal(err)
		}
		errBad := errors.New("bad hash")
		var calls []string
		mt.verify = func(rel string) error {
			calls = append(calls, rel)
			if rel == "kernel/net/base.ko" {
				return errBad
			}
			return nil
		}
		got, err := mt.LoadOrder([]string{"top"})
		if !errors.Is(err, errBad) {
			t.Fatalf("LoadOrder = %q, %v; want the verify error", got, err)
		}
		if calls[len(calls)-1] != "kernel/net/base.ko" {
			t.Errorf("verify calls = %q; LoadOrder went on after base.ko failed", calls)
		}
	})
}

// TestRealKernelLoadOrder resolves the lab's default modules in the kernel
// tree the lab has cached, when there is one.
func TestRealKernelLoadOrder(t *testing.T) {
	tree := realKernelTree(t)
	m, err := readManifest(tree)
	if err != nil {
		t.Fatalf("cached tree %s: %v", tree, err)
	}
	modRoot := filepath.Join("lib", "modules", m.Release)
	var files []string
	for f := range m.Files {
		if rel, ok := strings.CutPrefix(f, modRoot+string(filepath.Separator)); ok && strings.HasSuffix(f, ".ko") {
			files = append(files, rel)
		}
	}
	mt, err := NewModuleTree(filepath.Join(tree, modRoot), files, m.Aliases)
	if err != nil {
		t.Fatal(err)
	}
	order, err := mt.LoadOrder(DefaultModules)
	if err != nil {
		t.Fatalf("LoadOrder(DefaultModules): %v", err)
	}
	pos := map[string]int{}
	for i, name := range order {
		if _, dup := pos[name]; dup {
			t.Errorf("%s listed twice", name)
		}
		pos[name] = i
	}
	for _, name := range order {
		mi, err := mt.modInfo(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range mi.Depends {
			if p, ok := pos[d]; ok && p > pos[name] {
				t.Errorf("%s loads before its dependency %s", name, d)
			}
		}
	}
	if _, ok := pos["ip_vs"]; !ok {
		t.Errorf("ip_vs not in the load order %q", order)
	}
}

// realKernelTree returns the lab's cached kernel tree or skips the test.
func realKernelTree(t *testing.T) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skipf("no home directory: %v", err)
	}
	trees, _ := filepath.Glob(filepath.Join(home, ".cache", "director-lab", "linux-image-*"))
	for _, tree := range trees {
		if _, err := os.Stat(filepath.Join(tree, manifestName)); err == nil {
			return tree
		}
	}
	t.Skipf("no cached lab kernel under %s (make test downloads one)", filepath.Join(home, ".cache", "director-lab"))
	return ""
}
