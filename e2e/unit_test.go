//go:build !lab

package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestLabRunsDirectordAsItsUnitDoes keeps the lab's nice value and the
// unit's one the same. A host test: it reads the repository, which the
// lab's guest does not have.
func TestLabRunsDirectordAsItsUnitDoes(t *testing.T) {
	b, err := os.ReadFile("../deploy/systemd/directord.service")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "Nice=")
		if !ok {
			continue
		}
		found = true
		if n, err := strconv.Atoi(v); err != nil || n != directordNice {
			t.Errorf("the unit says Nice=%s; the lab runs directord at %d", v, directordNice)
		}
	}
	if !found {
		t.Errorf("the unit sets no Nice=; the lab runs directord at %d", directordNice)
	}
}
