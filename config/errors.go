package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid is matched (errors.Is) by every validation failure.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem at one place in the file.
type Error struct {
	Pos Pos
	Key string // the key's path, e.g. services[0].real_servers[1].weight
	Msg string
}

// Error is one line: every part is escaped, so that text from the file
// (a key, a value in a message) can neither start a line of its own that
// looks like another problem nor send a terminal escape sequence.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", escape(e.Pos.File), e.Pos.Line, e.Pos.Col, escape(e.Key), escape(e.Msg))
}

// escape replaces every character that is not printable (control
// characters, line breaks, bidirectional overrides, invalid UTF-8) by its
// Go escape, as strconv.Quote writes it. Messages quote what they show of
// the file already; this is the guarantee for whatever they do not.
func escape(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; {
		r, size := utf8.DecodeRuneInString(s[i:])
		clean = (r != utf8.RuneError || size > 1) && unicode.IsPrint(r)
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// keyName is how a key the file wrote appears in a key path: as written
// when it is a plain name, else quoted, so that a key holding ".", "[",
// a space or a control character can be told from the path around it.
func keyName(name string) string {
	if name == "" {
		return `""`
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || strings.ContainsRune(`."[]:\`, r) {
			return strconv.Quote(name)
		}
	}
	return name
}

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Is makes Errors match ErrInvalid even when empty-handed callers check.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

// sorted orders problems by position, so messages read top to bottom:
// file by file (the main one, then its includes, as they were first
// reported), each by line and column.
func (es Errors) sorted() Errors {
	rank := map[string]int{}
	for _, e := range es {
		if _, ok := rank[e.Pos.File]; !ok {
			rank[e.Pos.File] = len(rank)
		}
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return rank[a.File] < rank[b.File]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return es
}
