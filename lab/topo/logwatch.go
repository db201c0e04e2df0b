package topo

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// LogWatch is an io.Writer for a process's output that forwards each line
// (prefixed) and lets a test wait for a line to appear: the process's own
// account of an event, awaited instead of slept for.
type LogWatch struct {
	mu      sync.Mutex
	out     io.Writer
	prefix  string
	partial []byte
	lines   []string
	changed chan struct{}
}

// NewLogWatch forwards to out with prefix.
func NewLogWatch(out io.Writer, prefix string) *LogWatch {
	return &LogWatch{out: out, prefix: prefix, changed: make(chan struct{})}
}

func (l *LogWatch) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.lines = append(l.lines, line)
		fmt.Fprintf(l.out, "%s%s\n", l.prefix, line)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(b), nil
}

// Mark is a position in the log: Wait looks only at lines after it.
func (l *LogWatch) Mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Wait returns the first line after mark matching re, or an error after
// timeout naming what was awaited.
func (l *LogWatch) Wait(mark int, re string, timeout time.Duration) (string, error) {
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for i := mark; i < len(l.lines); i++ {
			if rx.MatchString(l.lines[i]) {
				line := l.lines[i]
				l.mu.Unlock()
				return line, nil
			}
		}
		mark = len(l.lines)
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return "", fmt.Errorf("no log line matching %q within %v", re, timeout)
		}
	}
}

// Lines returns a copy of every line so far.
func (l *LogWatch) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
