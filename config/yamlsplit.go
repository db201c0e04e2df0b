package config

import (
	"bytes"
	"runtime"
	"sync"

	"gopkg.in/yaml.v3"
)

// A long services list is most of a large file, and parsing YAML is most
// of the cost of reading one (about 60% for the reference farm of 10,000
// services): parseDocument parses such a list in pieces, one per core.
// Below these sizes a file is parsed whole, as splitting would not pay.
const (
	splitMinBytes = 256 << 10
	splitMinItems = 1000
	splitMaxParts = 8
)

// parseDocument is parseYAML, faster for a long services list. The tree
// is the same as parseYAML's: the list is split only where the text shows
// an entry beginning, each piece is parsed as a document of its own that
// keeps its line numbers, and every piece's parse is checked to hold
// exactly the entries the text showed, where it showed them. A file this
// cannot split with certainty, or any parse error, is parsed whole, so
// that errors are parseYAML's own.
func parseDocument(data []byte) (*yaml.Node, error) {
	if root := parseSplit(data, min(runtime.GOMAXPROCS(0), splitMaxParts)); root != nil {
		return root, nil
	}
	return parseYAML(data)
}

// servicesList is where a top-level block list of services is written.
type servicesList struct {
	keyLine int   // line of "services:" (1-based)
	indent  int   // spaces before each entry's "- "
	starts  []int // offset of each entry's first line
	lines   []int // its line number
	end     int   // offset of the first line after the list
	endLine int   // its line number
}

// parseSplit is parseDocument's split parse in parts pieces, or nil when
// the file is not for it or a piece does not parse as expected.
func parseSplit(data []byte, parts int) *yaml.Node {
	if parts < 2 || len(data) < splitMinBytes ||
		// Line breaks other than \n (YAML also breaks lines at \r,
		// U+0085, U+2028 and U+2029) would make the line numbers
		// counted here differ from the parser's. Anchors could be
		// defined in one piece and used in another.
		bytes.IndexByte(data, '\r') >= 0 || bytes.IndexByte(data, '&') >= 0 ||
		bytes.Contains(data, []byte("\u0085")) || bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029")) {
		return nil
	}
	l, ok := findServices(data)
	if !ok || len(l.starts) < splitMinItems {
		return nil
	}
	// Piece k holds entries [cut[k], cut[k+1]); piece 0 is parsed with
	// the rest of the file, the entries of the others left as blank
	// lines so that what follows the list keeps its line numbers.
	n := len(l.starts)
	cut := make([]int, parts+1)
	for k := range cut {
		cut[k] = n * k / parts
	}
	offset := func(i int) int {
		if i == n {
			return l.end
		}
		return l.starts[i]
	}
	line := func(i int) int {
		if i == n {
			return l.endLine
		}
		return l.lines[i]
	}
	docs := make([][]byte, parts)
	docs[0] = concat(data[:offset(cut[1])], line(n)-line(cut[1]), data[l.end:])
	for k := 1; k < parts; k++ {
		// Blank lines, then the key on the line before the piece's first
		// entry: every node keeps its line number in the file.
		head := append(bytes.Repeat([]byte("\n"), line(cut[k])-2), "services:\n"...)
		docs[k] = concat(head, 0, data[offset(cut[k]):offset(cut[k+1])])
	}
	roots := make([]*yaml.Node, parts)
	var wg sync.WaitGroup
	for k := range docs {
		wg.Go(func() {
			if root, err := parseYAML(docs[k]); err == nil {
				roots[k] = root
			}
		})
	}
	wg.Wait()
	items := make([]*yaml.Node, 0, n)
	var main *yaml.Node
	for k, root := range roots {
		key := l.keyLine
		if k > 0 {
			key = line(cut[k]) - 1
		}
		seq := listAt(root, key, k > 0)
		if seq == nil || !entriesAt(seq.Content, l.lines[cut[k]:cut[k+1]], l.indent) {
			return nil
		}
		items = append(items, seq.Content...)
		if k == 0 {
			main = seq
		}
	}
	main.Content = items
	return roots[0]
}

// concat is a, blank lines, then b, in new memory.
func concat(a []byte, blank int, b []byte) []byte {
	out := make([]byte, 0, len(a)+blank+len(b))
	out = append(out, a...)
	out = append(out, bytes.Repeat([]byte("\n"), blank)...)
	return append(out, b...)
}

// listAt is the list under the top-level key services written at line
// keyLine, column 1, or nil; only, if that is the document's one key.
func listAt(root *yaml.Node, keyLine int, only bool) *yaml.Node {
	if root == nil || root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode || only && len(m.Content) != 2 {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Line == keyLine && k.Column == 1 {
			if k.Kind != yaml.ScalarNode || k.Value != "services" || v.Kind != yaml.SequenceNode {
				return nil
			}
			return v
		}
	}
	return nil
}

// entriesAt reports that the parsed entries are the ones the text showed:
// as many, each where its "- " line has it.
func entriesAt(entries []*yaml.Node, lines []int, indent int) bool {
	if len(entries) != len(lines) {
		return false
	}
	for i, e := range entries {
		if e.Line != lines[i] || e.Column != indent+3 {
			return false
		}
	}
	return true
}

// findServices finds a list written as a block under a top-level
// "services:" line, each entry starting on its own line with the same
// indentation and "- " followed by its content. Lines between entries
// that are more indented, blank or comments belong to the entry above.
// ok is false for anything else the text could be: the parse would not
// be checked against it.
func findServices(data []byte) (l servicesList, ok bool) {
	lineNo, off := 0, 0
	next := func() ([]byte, bool) {
		if off >= len(data) {
			return nil, false
		}
		lineNo++
		end := bytes.IndexByte(data[off:], '\n')
		var s []byte
		if end < 0 {
			s, off = data[off:], len(data)
		} else {
			s, off = data[off:off+end], off+end+1
		}
		return s, true
	}
	for {
		s, more := next()
		if !more {
			return l, false
		}
		if len(s) > 0 && s[0] == '%' {
			return l, false // a directive: the pieces would not have it
		}
		if string(bytes.TrimRight(s, " ")) == "services:" {
			l.keyLine = lineNo
			break
		}
	}
	l.indent = -1
	for {
		start, startLine := off, lineNo+1
		s, more := next()
		if !more {
			l.end, l.endLine = len(data), lineNo+1
			return l, l.indent >= 0
		}
		ind := 0
		for ind < len(s) && s[ind] == ' ' {
			ind++
		}
		if ind == len(s) || s[ind] == '#' {
			continue // blank or a comment
		}
		if s[ind] == '\t' {
			return l, false
		}
		entry := s[ind] == '-' && ind+2 < len(s) && s[ind+1] == ' ' && s[ind+2] != ' ' && s[ind+2] != '#'
		switch {
		case l.indent < 0 && !entry:
			return l, false
		case l.indent < 0:
			l.indent = ind
			fallthrough
		case ind == l.indent && entry:
			l.starts, l.lines = append(l.starts, start), append(l.lines, startLine)
		case ind == l.indent && s[ind] == '-':
			return l, false // an entry this does not read
		case ind <= l.indent:
			l.end, l.endLine = start, startLine
			return l, true
		}
	}
}
