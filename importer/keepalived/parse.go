package keepalived

import (
	"strings"
)

// node is one statement: a keyword with its arguments, and the statements
// of its block when it opens one.
type node struct {
	file  string
	line  int
	kw    string
	args  []string
	kids  []*node
	block bool
}

// arg is the i-th argument, or "".
func (n *node) arg(i int) string {
	if i < len(n.args) {
		return n.args[i]
	}
	return ""
}

// words splits a line as keepalived does: blanks separate words, double
// quotes group them, a brace is a word of its own even when glued to one.
func words(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, quoted := false, false
	flush := func() {
		if cur.Len() > 0 || quoted {
			out = append(out, cur.String())
		}
		cur.Reset()
		quoted = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQ = !inQ
			quoted = true
		case inQ:
			cur.WriteByte(c)
		case strings.IndexByte(spaces, c) >= 0:
			flush()
		case c == '{' || c == '}':
			flush()
			out = append(out, string(c))
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// parse builds the statement tree of the preprocessed lines. A brace on
// the line after its keyword opens that keyword's block, as in keepalived.
func (im *importRun) parse(lines []srcLine) *node {
	root := &node{block: true}
	stack := []*node{root}
	top := func() *node { return stack[len(stack)-1] }
	for _, l := range lines {
		var stmt *node
		flush := func() {
			if stmt != nil {
				top().kids = append(top().kids, stmt)
				stmt = nil
			}
		}
		for i, w := range words(l.text) {
			switch w {
			case "{":
				if stmt == nil {
					p := top()
					if i == 0 && len(p.kids) > 0 && !p.kids[len(p.kids)-1].block {
						stmt = p.kids[len(p.kids)-1]
						p.kids = p.kids[:len(p.kids)-1]
					} else {
						im.report(l.file, l.line, "{", "a brace with no keyword before it; its block is ignored")
						stmt = &node{file: l.file, line: l.line, kw: "{"}
					}
				}
				stmt.block = true
				p := top()
				p.kids = append(p.kids, stmt)
				stack = append(stack, stmt)
				stmt = nil
			case "}":
				flush()
				if len(stack) == 1 {
					im.report(l.file, l.line, "}", "a closing brace with no block open; ignored")
					continue
				}
				stack = stack[:len(stack)-1]
			default:
				if stmt == nil {
					stmt = &node{file: l.file, line: l.line, kw: w}
				} else {
					stmt.args = append(stmt.args, w)
				}
			}
		}
		flush()
	}
	for _, n := range stack[1:] {
		im.report(n.file, n.line, n.kw, "block not closed by the end of the file; read as if closed there")
	}
	return root
}
