package config

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxLocate bounds the input size for which locate re-parses prefixes
// (yaml.v3 reads about a megabyte a second, and locate parses up to
// log2(lines) prefixes); larger files get yaml.v3's own line.
const maxLocate = 256 << 10

// syntaxError turns a yaml.v3 error into an Error. yaml.v3's positions are
// poor: a parser error names the line where the enclosing block started,
// counted from 0 ("yaml: line 1: did not find expected '-' indicator" for
// a key misindented on line 5), some errors have no line at all, and none
// has a column. So the position is worked out here where it can be.
func (d *decoder) syntaxError(err error, data []byte) {
	pos := Pos{File: d.file, Line: 1, Col: 1}
	var extra *extraDocument
	if errors.As(err, &extra) {
		pos.Line = extra.line
		d.errs = append(d.errs, &Error{Pos: pos, Key: "yaml", Msg: "a second document; the configuration is one YAML document"})
		return
	}
	line, msg := splitYAMLError(err)
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		if l, c, ok := find(data, "*"+strings.TrimSuffix(name, "' referenced")); ok {
			pos.Line, pos.Col = l, c
		}
	} else if l, c, ok := badChar(data); ok && line == 0 {
		pos.Line, pos.Col = l, c
	} else if l, ok := locate(data, msg); ok {
		pos.Line, pos.Col = l, indent(data, l)
	} else if line > 0 {
		pos.Line = line
	}
	d.errs = append(d.errs, &Error{Pos: pos, Key: "yaml", Msg: clip(msg)})
}

// splitYAMLError separates "yaml: line N: text" into N (0 if absent) and text.
func splitYAMLError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil && line >= 1 {
				return line, text
			}
		}
	}
	return 0, msg
}

// locate finds the first line at which the file stops being valid YAML in
// the way the whole file is not: the shortest prefix of whole lines that
// fails with the same message. Binary search assumes a prefix that fails
// keeps failing, which holds for the usual indentation and structure
// mistakes; where it does not, the line found still shows that failure.
func locate(data []byte, msg string) (int, bool) {
	if len(data) > maxLocate {
		return 0, false
	}
	var ends []int // ends[i] is the length of the first i+1 lines
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	fails := func(lines int) bool {
		_, err := parseYAML(data[:ends[lines-1]])
		if err == nil {
			return false
		}
		_, m := splitYAMLError(err)
		return m == msg
	}
	if len(ends) == 0 || !fails(len(ends)) {
		return 0, false
	}
	lo, hi := 1, len(ends)
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, true
}

// indent is the column of the first non-blank character of line, where a
// misplaced key or value starts.
func indent(data []byte, line int) int {
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return 1
		}
		data = data[i+1:]
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	return utf8.RuneCount(data) - utf8.RuneCount(bytes.TrimLeft(data, " \t")) + 1
}

// badChar finds the first byte sequence YAML does not allow: invalid
// UTF-8, or a character outside YAML's printable set.
func badChar(data []byte) (line, col int, ok bool) {
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 || !printable(r) && !(i == 0 && r == '\uFEFF') {
			return line, col, true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return 0, 0, false
}

// printable is YAML 1.2's c-printable.
func printable(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// find is the line and column of the first occurrence of s in data.
func find(data []byte, s string) (line, col int, ok bool) {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0, 0, false
	}
	before := data[:i]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col, true
}
