// Package importer holds what the configuration importers share: the
// report an import makes and the exit status it means. The importers
// themselves are importer/keepalived and importer/ldirectord; directorctl
// import drives them.
package importer

import (
	"fmt"
	"sort"
)

// Finding is one line of an import's report: a construct of the source
// file that was not carried over, or carried over approximately, with
// what to do about it.
type Finding struct {
	File    string // the file the construct is in (an included file's own path)
	Line    int    // 1-based; 0 when the finding is about the file as a whole
	Keyword string // the source's keyword, as written there
	Msg     string // what happened and what to do
}

// String is the report's line: FILE:LINE: keyword: what happened.
func (f Finding) String() string {
	if f.Line == 0 {
		return fmt.Sprintf("%s: %s: %s", f.File, f.Keyword, f.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Keyword, f.Msg)
}

// Result is an import: director YAML and the report.
type Result struct {
	// YAML is the director configuration, with comments naming the source
	// line of each service; nil when nothing usable came out.
	YAML     []byte
	Findings []Finding
}

// Exit statuses of directorctl import.
const (
	ExitComplete = 0 // everything carried over
	ExitReport   = 1 // YAML printed, but read the report
	ExitNothing  = 2 // nothing usable: unreadable, not this format
)

// Exit is the status the result means.
func (r Result) Exit() int {
	switch {
	case r.YAML == nil:
		return ExitNothing
	case len(r.Findings) > 0:
		return ExitReport
	}
	return ExitComplete
}

// Sort orders the findings by file, then line, as a reader goes through
// the source.
func (r *Result) Sort() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}
