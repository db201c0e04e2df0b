package keepalived

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/directorlb/director/importer"
)

// Limits that keep a hostile or looping file (an include of itself, a
// variable that expands to itself) from costing more than a real one.
const (
	maxIncludeDepth = 16
	maxExpandDepth  = 32
	maxLines        = 500000
	maxSeq          = 10000
)

// srcLine is one logical line after keepalived's preprocessing: comments
// cut, conditionals decided, variables expanded, includes read.
type srcLine struct {
	file string
	line int
	text string
}

// reader is keepalived's preprocessing of one import.
type reader struct {
	opts    Options
	find    *[]importer.Finding
	vars    map[string]string
	out     []srcLine
	undef   map[string]bool
	stopped bool
	reading map[string]bool // the files being read: an include of one is a loop
}

func (r *reader) report(file string, line int, kw, format string, args ...any) {
	*r.find = append(*r.find, importer.Finding{File: file, Line: line, Keyword: kw, Msg: fmt.Sprintf(format, args...)})
}

var (
	defRE  = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$`)
	varRE  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)
	nbsp   = []byte("\u00a0")
	spaces = " \t\r\v\f"
)

// readFile reads one file of the tree; depth counts includes.
func (r *reader) readFile(path string, depth int) error {
	if r.reading == nil {
		r.reading = map[string]bool{}
	}
	abs, _ := filepath.Abs(path)
	if r.reading[abs] {
		return fmt.Errorf("%s includes itself (through the files including it); not read again", path)
	}
	r.reading[abs] = true
	defer delete(r.reading, abs)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalid(data)], []byte("\n"))
		r.report(path, line, "encoding", "the file is not valid UTF-8 (first odd byte on this line); read byte for byte, check names and addresses written near odd bytes")
	}
	if i := bytes.Index(data, nbsp); i >= 0 {
		// keepalived's own reader takes a non-breaking space as part of a
		// word ("Unknown keyword"), so the lines it starts are ignored
		// there; editors hide it. Taken as a blank, as the author meant,
		// and said: the import then differs from what keepalived runs.
		line := 1 + bytes.Count(data[:i], []byte("\n"))
		r.report(path, line, "encoding", "non-breaking spaces (first on this line) read as spaces; keepalived itself ignores the lines they indent (\"Unknown keyword\"), so it runs without what they say: replace them with spaces in keepalived's file")
		data = bytes.ReplaceAll(data, nbsp, []byte(" "))
	}
	phys := strings.Split(string(data), "\n")
	for i := 0; i < len(phys) && !r.stopped; i++ {
		lineNo := i + 1
		text := cutComment(strings.Trim(phys[i], spaces))
		if text == "" {
			continue
		}
		text, ok := r.conditional(text)
		if !ok {
			continue
		}
		if m := defRE.FindStringSubmatch(text); m != nil {
			val := strings.Trim(m[2], spaces)
			var parts []string
			for strings.HasSuffix(val, "\\") {
				val = strings.Trim(strings.TrimSuffix(val, "\\"), spaces)
				if val != "" {
					parts = append(parts, val)
				}
				if i+1 >= len(phys) {
					val = ""
					break
				}
				i++
				val = cutComment(strings.Trim(phys[i], spaces))
			}
			if val != "" {
				parts = append(parts, val)
			}
			r.vars[m[1]] = strings.Join(parts, "\n")
			continue
		}
		r.line(path, lineNo, text, depth, 0)
	}
	return nil
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		c, n := utf8.DecodeRune(b[i:])
		if c == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// cutComment drops a # or ! comment: at the start of the line or after a
// blank or brace, outside double quotes.
func cutComment(s string) string {
	inQ := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQ = !inQ
		case !inQ && (c == '#' || c == '!'):
			if i == 0 || strings.IndexByte(" \t{}", s[i-1]) >= 0 {
				return strings.Trim(s[:i], spaces)
			}
		}
	}
	return s
}

// conditional applies @id and @^id: the line is kept (without its prefix)
// when it is for this host.
func (r *reader) conditional(text string) (string, bool) {
	if !strings.HasPrefix(text, "@") {
		return text, true
	}
	end := strings.IndexAny(text, spaces)
	if end < 0 {
		return "", false
	}
	id, rest := text[1:end], strings.Trim(text[end:], spaces)
	neg := strings.HasPrefix(id, "^")
	id = strings.TrimPrefix(id, "^")
	if (id == r.opts.ID) != neg {
		return rest, true
	}
	return "", false
}

// line handles one logical line: ~SEQ/~LST, variables, include.
func (r *reader) line(file string, lineNo int, text string, depth, exp int) {
	if r.stopped {
		return
	}
	if len(r.out) >= maxLines {
		r.report(file, lineNo, "include", "more than %d lines after includes and expansions; the rest is not read", maxLines)
		r.stopped = true
		return
	}
	if exp > maxExpandDepth {
		r.report(file, lineNo, "$", "variables nested more than %d deep (a variable that uses itself?); line left out", maxExpandDepth)
		return
	}
	if strings.HasPrefix(text, "~") {
		r.sequence(file, lineNo, text, depth, exp)
		return
	}
	if strings.Contains(text, "$") {
		expanded := r.expand(file, lineNo, text)
		if expanded != text {
			for _, l := range strings.Split(expanded, "\n") {
				l = strings.Trim(l, spaces)
				if l == "" {
					continue
				}
				if l2, ok := r.conditional(l); ok {
					if m := defRE.FindStringSubmatch(l2); m != nil {
						r.vars[m[1]] = strings.Trim(m[2], spaces)
						continue
					}
					r.line(file, lineNo, l2, depth, exp+1)
				}
			}
			return
		}
	}
	if f := strings.Fields(text); len(f) > 0 && f[0] == "include" {
		r.include(file, lineNo, strings.Trim(strings.TrimPrefix(text, "include"), spaces), depth)
		return
	}
	r.out = append(r.out, srcLine{file: file, line: lineNo, text: text})
}

// expand replaces the defined variables of one line, once; ${_PWD} is the
// directory of the file being read, as keepalived has it.
func (r *reader) expand(file string, lineNo int, text string) string {
	return varRE.ReplaceAllStringFunc(text, func(m string) string {
		name := strings.Trim(m, "${}")
		if name == "_PWD" {
			return filepath.Dir(file)
		}
		if v, ok := r.vars[name]; ok {
			return v
		}
		if !r.undef[name] {
			r.undef[name] = true
			r.report(file, lineNo, "$"+name, "variable not defined here; left as written (define it, or replace it with its value)")
		}
		return m
	})
}

// sequence is ~SEQ(VAR, [start,] [step,] end) and ~LST(VAR, v1, v2...):
// the rest of the line once per value, with $VAR set to it.
func (r *reader) sequence(file string, lineNo int, text string, depth, exp int) {
	open, close := strings.IndexByte(text, '('), strings.IndexByte(text, ')')
	if open < 0 || close < open {
		r.report(file, lineNo, strings.Fields(text)[0], "not a ~SEQ(...) or ~LST(...) this importer knows; line left out")
		return
	}
	kw := text[:open]
	params := strings.Split(r.expand(file, lineNo, text[open+1:close]), ",")
	for i := range params {
		params[i] = strings.Trim(params[i], spaces)
	}
	rest := strings.Trim(text[close+1:], spaces)
	var values []string
	switch kw {
	case "~LST":
		values = params[1:]
	case "~SEQ":
		nums := make([]int64, 0, 3)
		for _, p := range params[1:] {
			n, err := strconv.ParseInt(p, 0, 64)
			if err != nil {
				r.report(file, lineNo, kw, "%q is not a number; line left out", p)
				return
			}
			nums = append(nums, n)
		}
		start, step, end := int64(1), int64(1), int64(0)
		switch len(nums) {
		case 1:
			end = nums[0]
		case 2:
			start, end = nums[0], nums[1]
		case 3:
			start, step, end = nums[0], nums[1], nums[2]
		default:
			r.report(file, lineNo, kw, "takes 2 to 4 parameters; line left out")
			return
		}
		if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
			return
		}
		for v := start; (step > 0 && v <= end) || (step < 0 && v >= end); v += step {
			values = append(values, strconv.FormatInt(v, 10))
			if len(values) > maxSeq {
				r.report(file, lineNo, kw, "more than %d values; line left out", maxSeq)
				return
			}
		}
	default:
		r.report(file, lineNo, kw, "unknown sequence keyword (keepalived has ~SEQ and ~LST); line left out")
		return
	}
	if len(params) == 0 || params[0] == "" {
		r.report(file, lineNo, kw, "no variable name; line left out")
		return
	}
	for _, v := range values {
		r.vars[params[0]] = v
		r.line(file, lineNo, rest, depth, exp+1)
	}
}

// include reads the files a pattern names: relative to the including
// file, an absolute one under Options.Root when set.
func (r *reader) include(file string, lineNo int, pattern string, depth int) {
	pattern = strings.Trim(pattern, `"`)
	if pattern == "" {
		r.report(file, lineNo, "include", "no file named; ignored")
		return
	}
	if depth >= maxIncludeDepth {
		r.report(file, lineNo, "include", "includes nested more than %d deep (a loop?); not read", maxIncludeDepth)
		return
	}
	full := pattern
	switch {
	case filepath.IsAbs(pattern) && r.opts.Root != "":
		full = filepath.Join(r.opts.Root, pattern)
	case !filepath.IsAbs(pattern) && !strings.HasPrefix(pattern, filepath.Dir(file)+string(filepath.Separator)):
		// (a pattern starting with the file's directory came from ${_PWD}:
		// it is resolved already)
		full = filepath.Join(filepath.Dir(file), pattern)
	}
	matches, err := filepath.Glob(full)
	if err != nil || len(matches) == 0 {
		hint := ""
		if filepath.IsAbs(pattern) && r.opts.Root == "" {
			hint = "; for a copied tree give -root DIR"
		} else if filepath.IsAbs(pattern) && full != pattern {
			// keepalived's trees are often copied flat: try the pattern's
			// base name beside the main file's tree root.
			alt, _ := filepath.Glob(filepath.Join(r.opts.Root, filepath.Base(pattern)))
			if len(alt) > 0 {
				matches = alt
				r.report(file, lineNo, "include", "%s is not under -root; read %s from the root instead", pattern, filepath.Base(pattern))
			}
		}
		if len(matches) == 0 {
			r.report(file, lineNo, "include", "%s matches no file%s; its contents are missing from the import", full, hint)
			return
		}
	}
	sort.Strings(matches)
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.IsDir() {
			continue
		}
		if abs, _ := filepath.Abs(m); r.reading[abs] && len(matches) > 1 {
			continue // a glob matching the including file: keepalived would loop
		}
		if err := r.readFile(m, depth+1); err != nil {
			r.report(file, lineNo, "include", "cannot read %s: %v", m, err)
		}
	}
}
