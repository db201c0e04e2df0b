//go:build lab

package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// importSource says which lines of an imported file a kernel table entry
// comes from, so that a difference can be traced to the import report.
type importSource interface {
	// serviceLines: the lines that make the service entry key (its -A).
	serviceLines(key string) []int
	// serverLines: beyond those, the lines of the server addr of key.
	serverLines(key, addr string) []int
}

// explainTable fails unless every difference between peer's table
// (theirs) and directord's (ours), both as ipvsadm --save lines, has a
// line of the import report for file where it comes from: a service's
// own line by one of its service lines, a server's line by those or its
// own.
func explainTable(t *testing.T, peer, file, report string, src importSource, theirs, ours []string) {
	t.Helper()
	a, b := byService(theirs), byService(ours)
	keys := mergeKeysOf(a, b)
	byLine := map[int][]string{}
	for _, l := range strings.Split(report, "\n") {
		if m := reportLineRE.FindStringSubmatch(l); m != nil && m[1] == file {
			n, _ := strconv.Atoi(m[2])
			byLine[n] = append(byLine[n], l)
		}
	}
	same := 0
	for _, k := range keys {
		if slices.Equal(a[k], b[k]) {
			same++
			continue
		}
		svc := src.serviceLines(k)
		var why, unexplained []string
		explain := func(what string, lines []int) {
			var got []string
			for _, n := range lines {
				got = append(got, byLine[n]...)
			}
			if len(got) == 0 {
				unexplained = append(unexplained, what)
			}
			why = append(why, got...)
		}
		headA, restA := splitService(a[k])
		headB, restB := splitService(b[k])
		if headA != headB {
			explain("the service", svc)
		}
		for _, addr := range slices.Sorted(maps.Keys(mergeKeys(restA, restB))) {
			if restA[addr] != restB[addr] {
				explain("server "+addr, append(slices.Clone(svc), src.serverLines(k, addr)...))
			}
		}
		slices.Sort(why)
		why = slices.Compact(why)
		msg := fmt.Sprintf("%s differs:\n%s:\n  %s\ndirectord:\n  %s", k, peer, strings.Join(a[k], "\n  "), strings.Join(b[k], "\n  "))
		if len(unexplained) > 0 {
			t.Errorf("%s\nno line of the import report explains %s; report lines nearby:\n  %s", msg, strings.Join(unexplained, ", "), strings.Join(why, "\n  "))
			continue
		}
		t.Logf("%s\nexplained by:\n  %s", msg, strings.Join(why, "\n  "))
	}
	t.Logf("%d of %d table entries (services, and the timeouts) identical", same, len(keys))
}

// mergeKeysOf is the keys of a and b, sorted.
func mergeKeysOf(a, b map[string][]string) []string {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return slices.Sorted(maps.Keys(m))
}
