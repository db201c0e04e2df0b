package config

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// syntaxError turns a yaml.v3 error into an Error. yaml.v3 gives a line
// ("yaml: line 3: could not find expected ':'") but no column, and for
// some problems not even a line; for bad characters, the position is found
// by looking for the first one.
func (d *decoder) syntaxError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	pos := Pos{File: d.file, Line: 1, Col: 1}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil && line >= 1 {
				pos.Line, msg = line, text
			}
		}
	} else if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		if line, col, ok := find(data, "*"+strings.TrimSuffix(name, "' referenced")); ok {
			pos.Line, pos.Col = line, col
		}
	} else if line, col, ok := badChar(data); ok {
		pos.Line, pos.Col = line, col
	}
	d.errs = append(d.errs, &Error{Pos: pos, Key: "yaml", Msg: clip(msg)})
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
