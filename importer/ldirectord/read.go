package ldirectord

import (
	"regexp"
	"strings"

	"github.com/directorlb/director/importer"
)

// directive is one "key = value" line of the file.
type directive struct {
	Line   int
	Key    string // lower-cased as ldirectord matches it (it is case-sensitive: keys are written in lower case)
	Val    string // without the quotes
	Quoted bool   // the value was written in double quotes
}

// virtual is a virtual= or virtual6= line and the indented lines after it.
type virtual struct {
	Line  int
	V6    bool
	Addr  string // what follows "virtual="
	Opts  []directive
	Reals []directive
}

// file is an ldirectord configuration as read: the global directives and
// the virtual sections, in order.
type file struct {
	Globals  []directive
	Virtuals []*virtual
	NotLd    string // why this is not an ldirectord file, if it is not
}

var (
	virtualRe   = regexp.MustCompile(`^virtual(6)?\s*=\s*(.*)$`)
	directiveRe = regexp.MustCompile(`^([A-Za-z0-9_]+)\s*(?:=\s*(.*))?$`)
	iniRe       = regexp.MustCompile(`^\[[^\]]*\]\s*$`)
)

// read splits data into globals and virtual sections as ldirectord's
// read_config does: a virtual's options are the lines after it indented
// by at least 4 columns (a tab counts 4), "#" starts a comment, and the
// first line at column 0 ends the section. ldirectord refuses a file whose
// indented line comes after a blank line, or is indented by fewer than 4
// columns or with non-breaking spaces; such a line is read into the
// virtual above it, with a finding, since that is what its author meant.
func read(name string, data []byte) (*file, []importer.Finding) {
	f := &file{}
	var finds []importer.Finding
	report := func(line int, key, msg string) {
		finds = append(finds, importer.Finding{File: name, Line: line, Keyword: key, Msg: msg})
	}
	var cur *virtual
	blankAfter := false // a blank line since cur's last option: ldirectord's section has ended
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		raw = strings.TrimSuffix(raw, "\r")
		cols, nbsp, rest := indent(raw)
		if strings.TrimSpace(rest) == "" {
			if cur != nil {
				blankAfter = true
			}
			continue
		}
		if strings.HasPrefix(rest, "#") {
			continue // ldirectord skips comment lines everywhere, even inside a section
		}
		body := strings.TrimSpace(stripComment(rest))
		if cols > 0 || nbsp {
			d, ok := parseDirective(n, body)
			if !ok {
				report(n, firstWord(body), "not a key=value line: ldirectord refuses the file here; not read")
				continue
			}
			if cur == nil {
				report(n, d.Key, "indented line outside a virtual section: ldirectord refuses the file here; not read (move it to column 0 if it is a global directive)")
				continue
			}
			switch {
			case nbsp:
				report(n, d.Key, "indented with non-breaking spaces: ldirectord refuses the file here; read as an option of the virtual at line "+itoa(cur.Line))
			case blankAfter:
				report(n, d.Key, "after a blank line, which ends a virtual's section in ldirectord (it refuses the file here); read as an option of the virtual at line "+itoa(cur.Line))
			case cols < 4:
				report(n, d.Key, "indented by fewer than 4 columns: ldirectord refuses the file here; read as an option of the virtual at line "+itoa(cur.Line))
			}
			if d.Key == "real" || d.Key == "real6" {
				cur.Reals = append(cur.Reals, d)
			} else {
				cur.Opts = append(cur.Opts, d)
			}
			continue
		}
		cur, blankAfter = nil, false
		if m := virtualRe.FindStringSubmatch(body); m != nil {
			cur = &virtual{Line: n, V6: m[1] != "", Addr: strings.TrimSpace(m[2])}
			f.Virtuals = append(f.Virtuals, cur)
			continue
		}
		if iniRe.MatchString(body) {
			if f.NotLd == "" {
				f.NotLd = "line " + itoa(n) + " is an INI section header (" + body + "): this file is not ldirectord's format (perhaps Config::Ldirectord's)"
			}
			continue
		}
		d, ok := parseDirective(n, body)
		if !ok {
			report(n, firstWord(body), "not a key=value line: ldirectord refuses the file here; not read")
			continue
		}
		f.Globals = append(f.Globals, d)
	}
	return f, finds
}

// indent measures a line's indentation as ldirectord sees it (tabs are 4
// spaces), and whether it has non-breaking spaces in it (UTF-8 or Latin-1).
func indent(s string) (cols int, nbsp bool, rest string) {
	for {
		switch {
		case strings.HasPrefix(s, " "):
			cols++
			s = s[1:]
		case strings.HasPrefix(s, "\t"):
			cols += 4
			s = s[1:]
		case strings.HasPrefix(s, "\u00a0"):
			nbsp = true
			s = s[2:]
		case strings.HasPrefix(s, "\xa0"):
			nbsp = true
			s = s[1:]
		default:
			return cols, nbsp, s
		}
	}
}

// stripComment cuts a line at its first "#", as ldirectord's s/#.*// does,
// even inside quotes.
func stripComment(s string) string {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		return s[:i]
	}
	return s
}

// parseDirective reads "key = value" or "key = "value"" (a bare key, as
// ldirectord's old "supervised", has an empty value).
func parseDirective(line int, body string) (directive, bool) {
	m := directiveRe.FindStringSubmatch(body)
	if m == nil {
		return directive{}, false
	}
	d := directive{Line: line, Key: m[1], Val: strings.TrimSpace(m[2])}
	// ldirectord's "(.*)" is greedy: the value runs to the last quote.
	if strings.HasPrefix(d.Val, `"`) {
		if j := strings.LastIndexByte(d.Val, '"'); j > 0 {
			d.Val, d.Quoted = d.Val[1:j], true
		}
	}
	return d, true
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		w := f[0]
		if len(w) > 40 {
			w = w[:40]
		}
		return strings.ToValidUTF8(w, "?")
	}
	return "line"
}
