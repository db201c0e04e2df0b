package lab

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrModuleNotFound is returned when a requested module (or one of its
// dependencies) is neither a loadable module nor built into the kernel.
var ErrModuleNotFound = errors.New("kernel module not found")

// NICModules drive the NIC of a VM with HostForward: the virtio PCI
// transport, and the network driver, which binds the device as it loads.
// Add them to the modules of such a VM (DefaultModules leaves them out:
// the lab's guests have no NIC otherwise).
var NICModules = []string{"virtio_pci", "virtio_net"}

// ModInfo is what the lab needs from a module's .modinfo section.
type ModInfo struct {
	Name    string
	Depends []string // hard dependencies, loaded first
	SoftPre []string // "softdep=pre:" names: modules, or aliases of modules
	Aliases []string
}

// ParseModInfo decodes the NUL-separated key=value strings of a .modinfo
// section (or of modules.builtin.modinfo with prefix "module.").
func ParseModInfo(section []byte) ModInfo {
	var mi ModInfo
	for _, kv := range bytes.Split(section, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			mi.Name = v
		case "depends":
			mi.Depends = splitNonEmpty(v, ",")
		case "softdep":
			mi.SoftPre = append(mi.SoftPre, parseSoftdepPre(v)...)
		case "alias":
			mi.Aliases = append(mi.Aliases, v)
		}
	}
	return mi
}

// parseSoftdepPre returns the names listed after "pre:" in a softdep value
// such as "pre: crc32c post: foo".
func parseSoftdepPre(v string) []string {
	var out []string
	pre := false
	for _, f := range strings.Fields(v) {
		switch f {
		case "pre:":
			pre = true
		case "post:":
			pre = false
		default:
			if pre {
				out = append(out, f)
			}
		}
	}
	return out
}

func splitNonEmpty(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// moduleName is the kernel's canonical name for a module file: the base
// name without .ko, with dashes folded to underscores.
func moduleName(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(base, ".ko")
	return strings.ReplaceAll(base, "-", "_")
}

// ModuleTree indexes the modules of one unpacked kernel: which are files,
// which are built in, and how each depends on the others.
type ModuleTree struct {
	root    string             // .../lib/modules/RELEASE
	files   map[string]string  // name -> path relative to root
	builtin map[string]bool    // names built into the kernel image
	aliases map[string]string  // alias -> module name (loadable or built in)
	info    map[string]ModInfo // cache of parsed .modinfo

	// verify, when set, checks a module file (relative to root) before its
	// metadata is trusted.
	verify func(rel string) error
}

// NewModuleTree indexes root (a lib/modules/RELEASE directory) given the
// module files under it (relative paths) and the aliases they declare.
// Built-in modules and their aliases come from modules.builtin.modinfo.
func NewModuleTree(root string, files []string, aliases map[string]string) (*ModuleTree, error) {
	t := &ModuleTree{
		root:    root,
		files:   map[string]string{},
		builtin: map[string]bool{},
		aliases: map[string]string{},
		info:    map[string]ModInfo{},
	}
	for _, f := range files {
		t.files[moduleName(f)] = f
	}
	for a, m := range aliases {
		t.aliases[a] = m
	}
	b, err := os.ReadFile(filepath.Join(root, "modules.builtin.modinfo"))
	if err != nil {
		return nil, fmt.Errorf("read built-in module list: %w", err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		mk, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		mod, key, ok := strings.Cut(mk, ".")
		if !ok {
			continue
		}
		t.builtin[mod] = true
		if key == "alias" {
			t.aliases[v] = mod
		}
	}
	return t, nil
}

func readModInfoSection(path string) ([]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	return s.Data()
}

// Path returns the absolute path of a loadable module's file.
func (t *ModuleTree) Path(name string) string { return filepath.Join(t.root, t.files[name]) }

func (t *ModuleTree) modInfo(name string) (ModInfo, error) {
	if mi, ok := t.info[name]; ok {
		return mi, nil
	}
	if t.verify != nil {
		if err := t.verify(t.files[name]); err != nil {
			return ModInfo{}, err
		}
	}
	b, err := readModInfoSection(t.Path(name))
	if err != nil {
		return ModInfo{}, fmt.Errorf("module %s: %w", name, err)
	}
	mi := ParseModInfo(b)
	t.info[name] = mi
	return mi, nil
}

// resolveAlias maps a softdep name to a module name. Most softdeps name a
// module; some (libcrc32c's "crc32c") name an alias declared by another
// module (crc32c_generic).
func (t *ModuleTree) resolveAlias(name string) (string, error) {
	n := strings.ReplaceAll(name, "-", "_")
	if _, ok := t.files[n]; ok || t.builtin[n] {
		return n, nil
	}
	if mod, ok := t.aliases[name]; ok {
		return mod, nil
	}
	return "", fmt.Errorf("%w: %s (no module or alias of that name)", ErrModuleNotFound, name)
}

// LoadOrder returns the loadable modules needed for names, each after
// everything it depends on (soft "pre" dependencies included), without
// duplicates. Built-in modules are satisfied already and left out.
func (t *ModuleTree) LoadOrder(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 0 unseen, 1 visiting, 2 done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(path, name), " -> "))
		}
		if _, ok := t.files[name]; !ok {
			if t.builtin[name] {
				state[name] = 2
				return nil
			}
			if len(path) > 0 {
				return fmt.Errorf("%w: %s (needed by %s)", ErrModuleNotFound, name, path[len(path)-1])
			}
			return fmt.Errorf("%w: %s", ErrModuleNotFound, name)
		}
		state[name] = 1
		mi, err := t.modInfo(name)
		if err != nil {
			return err
		}
		path = append(path, name)
		for _, s := range mi.SoftPre {
			dep, err := t.resolveAlias(s)
			if err != nil {
				return fmt.Errorf("soft dependency of %s: %w", name, err)
			}
			if err := visit(dep, path); err != nil {
				return err
			}
		}
		for _, d := range mi.Depends {
			// depends= uses the names as built, dashes and all
			// (snd-pcm); the index uses the canonical form.
			if err := visit(strings.ReplaceAll(d, "-", "_"), path); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, n := range names {
		if err := visit(strings.ReplaceAll(n, "-", "_"), nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
