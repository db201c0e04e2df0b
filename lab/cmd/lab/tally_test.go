package main

import (
	"io"
	"slices"
	"testing"
)

func TestTallyNamesFailuresAcrossSplitWrites(t *testing.T) {
	tally := &testTally{w: io.Discard}
	for _, chunk := range []string{
		"=== RUN TestA\n--- PA", "SS: TestA (0.1s)\n--- FAIL: Test",
		"B (2.0s)\r\n    --- FAIL: TestB/sub (1s)\n--- FAIL: TestC (0.0s)\n",
	} {
		if _, err := tally.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if tally.passed != 1 || tally.failed != 2 {
		t.Errorf("passed %d failed %d, want 1 and 2", tally.passed, tally.failed)
	}
	if want := []string{"TestB", "TestC"}; !slices.Equal(tally.failures, want) {
		t.Errorf("failures %q, want %q", tally.failures, want)
	}
}
