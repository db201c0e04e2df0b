package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// maxErrors bounds the report: past this many, a file is not a config with
// mistakes but something else, and listing every problem would only cost
// memory in proportion to the input.
const maxErrors = 1000

// decoder walks the YAML node tree by hand, so that every problem can name
// the line and column of the key or value at fault, and collects them all
// instead of stopping at the first.
type decoder struct {
	file    string
	errs    Errors
	warns   Errors
	dropped int
	last    *yaml.Node // where the last dropped problem was

	realServerCount int  // listed so far, against MaxRealServers
	bgpMode         bool // a bgp block: services are decoded for it (bgp.go)

	// Across the main file and its includes (include.go).
	svc      serviceSet // services listed so far (service.go)
	size     int        // bytes read so far, against MaxSize
	included int        // files read for include:, against maxIncludes
	// readIncludes is false in Parse, which reads nothing from disk.
	readIncludes bool

	// For checks across sections and after loading (where.go).
	where   map[string]Pos
	svcVIPs []placed
	foVIPs  []placed
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	if d.full() {
		d.dropped++
		d.last = n
		return
	}
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// limitf reports a file over one of the size limits. It is shown even
// past maxErrors: it says why the rest of the file was not read.
func (d *decoder) limitf(n *yaml.Node, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{Pos: d.pos(n), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// full reports that further problems will only be counted.
func (d *decoder) full() bool { return len(d.errs) >= maxErrors }

// warnf records a problem that does not make the file invalid.
func (d *decoder) warnf(n *yaml.Node, key, format string, args ...any) {
	if len(d.warns) < maxErrors {
		d.warns = append(d.warns, &Error{Pos: d.pos(n), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
}

// result is every problem in file order, or nil.
func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	if d.dropped > 0 {
		d.errs = append(d.errs, &Error{Pos: d.pos(d.last), Key: "document",
			Msg: fmt.Sprintf("too many problems; %d more not shown", d.dropped)})
	}
	return d.errs.sorted()
}

func (d *decoder) pos(n *yaml.Node) Pos {
	p := Pos{File: d.file, Line: 1, Col: 1}
	if n != nil && n.Line > 0 {
		p.Line = n.Line
		if n.Column > 0 {
			p.Col = n.Column
		}
	}
	return p
}

func at(n *yaml.Node) string { return fmt.Sprintf("%d:%d", n.Line, n.Column) }

// join extends a key path: join("", "node") is "node", join("ipvs",
// "timeouts") is "ipvs.timeouts".
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// clip keeps messages about a huge or hostile input readable.
func clip(s string) string {
	const limit = 60
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)
	return string(r[:limit]) + "..."
}

// describe is what a message says was found: numbers and booleans as
// written, strings quoted, anything else by its kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!int", "!!float", "!!bool":
			if n.Style == 0 {
				return clip(n.Value)
			}
		}
		return strconv.Quote(clip(n.Value))
	}
	return "nothing"
}

// isNull reports an absent or empty value (`key:`, `key: ~`), which counts
// as not set: commenting out everything under a key leaves it empty.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// alias refuses aliases: following them would make one value appear at
// many places (which position would a message name?), and expanding them
// is the classic way to make a small file huge.
func (d *decoder) alias(n *yaml.Node, key string) bool {
	if n.Kind != yaml.AliasNode {
		return false
	}
	d.errorf(n, key, "aliases (*%s) are not supported; write the value out", clip(n.Value))
	return true
}

// fields is one mapping's keys, checked against the keys it may hold.
// They are a short list searched in order, not maps: a mapping holds at
// most one of each allowed key (a few dozen), usually a handful, and a
// large file has hundreds of thousands of mappings, for which building
// two maps each was most of the decoding's cost.
type fields struct {
	path string
	node *yaml.Node
	list []field // in file order; each allowed name at most once
}

// field is one key of a mapping and its value.
type field struct {
	name     string
	key, val *yaml.Node
}

// get is the key named name, if the mapping has it.
func (f *fields) get(name string) (field, bool) {
	for _, e := range f.list {
		if e.name == name {
			return e, true
		}
	}
	return field{}, false
}

// mapping checks that n is a mapping of allowed keys, reporting unknown and
// repeated keys, and returns nil (after reporting) if n is not a mapping.
// what names the mapping in the message, e.g. "a check".
func (d *decoder) mapping(n *yaml.Node, path, what string, allowed []string) *fields {
	self := path
	if self == "" {
		self = "document"
	}
	if d.alias(n, self) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, self, "must be a mapping (%s), got %s", what, describe(n))
		return nil
	}
	f := &fields{path: path, node: n, list: make([]field, 0, min(len(n.Content)/2, len(allowed)))}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if d.alias(k, self) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, self, "keys must be plain names, got %s", describe(k))
			continue
		}
		name := k.Value
		if !slices.Contains(allowed, name) {
			key := join(path, keyName(clip(name)))
			if d.full() {
				// Spare the message for a file that is mostly unknown keys.
				d.errorf(k, key, "")
			} else {
				d.errorf(k, key, "%s", unknownKey(name, allowed))
			}
			continue
		}
		if first, dup := f.get(name); dup {
			d.errorf(k, join(path, keyName(clip(name))), "duplicate key %q (first at %s)", name, at(first.key))
			continue
		}
		f.list = append(f.list, field{name, k, v})
	}
	return f
}

func unknownKey(name string, allowed []string) string {
	if name == "<<" {
		return "merge keys (<<) are not supported; write the keys out"
	}
	if s := suggest(name, allowed); s != "" {
		return fmt.Sprintf("unknown key %q (did you mean %q?)", clip(name), s)
	}
	return fmt.Sprintf("unknown key %q (known keys: %s)", clip(name), strings.Join(allowed, ", "))
}

// value is the value of key name, or nil when it is absent or empty.
func (f *fields) value(name string) *yaml.Node {
	if e, _ := f.get(name); !isNull(e.val) {
		return e.val
	}
	return nil
}

// key is the key node of name, for messages about the key's presence.
func (f *fields) key(name string) *yaml.Node {
	e, _ := f.get(name)
	return e.key
}

func (f *fields) sub(name string) string { return join(f.path, name) }

// scalar is n's text, or reports that n should have been want.
func (d *decoder) scalar(n *yaml.Node, key, want string) (string, bool) {
	if d.alias(n, key) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// text is a non-empty string.
func (d *decoder) text(n *yaml.Node, key, want string) (string, bool) {
	s, ok := d.scalar(n, key, want)
	if ok && s == "" {
		d.errorf(n, key, "must be %s, got an empty string", want)
		return "", false
	}
	return s, ok
}

// integer reads a decimal integer, or one written with a 0x, 0o or 0b
// prefix. A leading zero does not make it octal: "0080" is 80, as an
// admin means it (YAML 1.2 agrees). Quoted numbers are accepted too.
func (d *decoder) integer(n *yaml.Node, key string, lo, hi int64) (int64, bool) {
	if v, ok := quickInteger(n, lo, hi); ok {
		return v, true
	}
	want := fmt.Sprintf("an integer from %d to %d", lo, hi)
	s, ok := d.scalar(n, key, want)
	if !ok {
		return 0, false
	}
	v, err := parseInt(s)
	if err != nil || v < lo || v > hi {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return 0, false
	}
	return v, true
}

// quickInteger is integer's common case, a valid value, without building
// the message's text: false means integer must look again.
func quickInteger(n *yaml.Node, lo, hi int64) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return 0, false
	}
	v, err := parseInt(n.Value)
	return v, err == nil && v >= lo && v <= hi
}

func parseInt(s string) (int64, error) {
	digits := strings.TrimLeft(s, "+-")
	if len(digits) > 2 && digits[0] == '0' && strings.ContainsRune("xXoObB", rune(digits[1])) {
		return strconv.ParseInt(s, 0, 64)
	}
	return strconv.ParseInt(s, 10, 64)
}

func (d *decoder) boolean(n *yaml.Node, key string) (bool, bool) {
	s, ok := d.scalar(n, key, "true or false")
	if !ok {
		return false, false
	}
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	d.errorf(n, key, "must be true or false, got %s", describe(n))
	return false, false
}

// enum reads one of a fixed set of words, suggesting the closest on a miss.
func (d *decoder) enum(n *yaml.Node, key string, allowed []string) (string, bool) {
	// The common case without building the message's text.
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && slices.Contains(allowed, n.Value) {
		return n.Value, true
	}
	want := orList(allowed)
	s, ok := d.scalar(n, key, want)
	if !ok {
		return "", false
	}
	if slices.Contains(allowed, s) {
		return s, true
	}
	msg := fmt.Sprintf("must be %s, got %s", want, describe(n))
	if sug := suggest(s, allowed); sug != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	}
	d.errorf(n, key, "%s", msg)
	return "", false
}

// list is the entries of a YAML sequence.
func (d *decoder) list(n *yaml.Node, key, want string) ([]*yaml.Node, bool) {
	if d.alias(n, key) {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, key, "must be a list of %s, got %s", want, describe(n))
		return nil, false
	}
	return n.Content, true
}

// item is one entry of a list read by items, with its key path.
type item struct {
	node *yaml.Node
	key  string
}

// items is like list, but also takes a single scalar for a list of one,
// for lists that usually hold one word (expect_status: 200).
func (d *decoder) items(n *yaml.Node, key, want string) ([]item, bool) {
	if n.Kind == yaml.ScalarNode {
		return []item{{n, key}}, true
	}
	entries, ok := d.list(n, key, want)
	out := make([]item, len(entries))
	for i, e := range entries {
		out[i] = item{e, index(key, i)}
	}
	return out, ok
}
