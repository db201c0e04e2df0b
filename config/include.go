package config

import (
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// maxIncludes bounds the files include: reads, all patterns together:
// enough for a conf.d of one file per service group, few enough that a
// glob matching a large directory by mistake is refused, not read.
const maxIncludes = 256

// includedKeys is what an included file may hold.
var includedKeys = []string{"services"}

// includes reads the files include: names, each a path or a glob
// relative to the main file's directory, in order (a glob's matches
// sorted), and returns their services. An included file holds only
// services: and cannot include: one level, so a tree can neither loop
// nor hide where a service comes from. Its problems are reported at its
// own lines, and its services are checked against every other file's
// (names, kernel identities, and the limits, which are on the total).
func (d *decoder) includes(n *yaml.Node, base Check) []Service {
	items, ok := d.items(n, "include", "files or globs such as services.d/*.yaml")
	if !ok {
		return nil
	}
	if !d.readIncludes {
		d.errorf(n, "include", "included files are read only from a configuration file on disk (config.Load)")
		return nil
	}
	dir := filepath.Dir(d.file)
	main, _ := filepath.Abs(d.file)
	seen := map[string]bool{main: true}
	var out []Service
	for _, it := range items {
		pattern, ok := d.text(it.node, it.key, "a file or glob such as services.d/*.yaml")
		if !ok {
			continue
		}
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		files, err := filepath.Glob(pattern)
		if err != nil {
			d.errorf(it.node, it.key, "is not a valid glob (%v), got %s", err, describe(it.node))
			continue
		}
		if len(files) == 0 {
			if !hasMeta(pattern) {
				d.errorf(it.node, it.key, "%s: no such file", pattern)
			} else {
				// An empty conf.d is a valid state, not a typo to refuse.
				d.warnf(it.node, it.key, "%s matches no file", pattern)
			}
			continue
		}
		for _, file := range files {
			abs, _ := filepath.Abs(file)
			if seen[abs] {
				continue // matched by an earlier pattern, or the main file: read once
			}
			seen[abs] = true
			if d.included++; d.included > maxIncludes {
				d.limitf(it.node, it.key, "brings the number of included files past %d, the most directord reads", maxIncludes)
				return out
			}
			out = append(out, d.include(it, file, base)...)
		}
	}
	return out
}

// include reads one included file's services, its problems reported at
// its own positions.
func (d *decoder) include(it item, file string, base Check) []Service {
	fi, err := os.Stat(file)
	if err == nil && fi.IsDir() {
		d.errorf(it.node, it.key, "%s is a directory; name its files (such as %s)", file, filepath.Join(file, "*.yaml"))
		return nil
	}
	data, err := readFile(file)
	if err != nil {
		d.errorf(it.node, it.key, "%v", err)
		return nil
	}
	if d.size += len(data); d.size > MaxSize {
		d.limitf(it.node, it.key, "%s brings the configuration past %d MiB, the most directord reads", file, MaxSize>>20)
		return nil
	}
	outer := d.file
	d.file = file
	defer func() { d.file = outer }()
	root, ok := d.document(data, "a file of services")
	if !ok || root == nil || len(root.Content) == 0 || isNull(root.Content[0]) {
		return nil
	}
	f := d.mapping(root.Content[0], "", "an included file: services only", append(includedKeys, topKeys...))
	if f == nil {
		return nil
	}
	for _, e := range f.list {
		name, k := e.name, e.key
		switch name {
		case "services":
		case "include":
			d.errorf(k, name, "an included file cannot include; list every file in the main file's include (%s)", outer)
		default:
			d.errorf(k, name, "only services: may be in an included file; %s belongs in the main file (%s)", name, outer)
		}
	}
	if v := f.value("services"); v != nil {
		return d.services(v, base)
	}
	return nil
}

// hasMeta reports whether a path is a glob rather than a file name.
func hasMeta(path string) bool {
	for _, c := range path {
		switch c {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}
