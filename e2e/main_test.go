//go:build lab

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// helperEnv names a helper program the test binary plays instead of
// running tests: the guest has no shell, so hooks that directord runs
// (notify, fence) are this binary re-executed with the helper's name in
// the environment.
const helperEnv = "DIRECTOR_E2E_HELPER"

// e2eHelpers are the programs this binary can play; each gets the
// arguments and returns the exit status.
var e2eHelpers = map[string]func(args []string) int{
	// hook appends its arguments as a line to $DIRECTOR_E2E_HOOK_LOG and
	// exits with $DIRECTOR_E2E_HOOK_EXIT (0 if unset).
	"hook": func(args []string) int {
		f, err := os.OpenFile(os.Getenv("DIRECTOR_E2E_HOOK_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		fmt.Fprintln(f, strings.Join(args, " "))
		if os.Getenv("DIRECTOR_E2E_HOOK_EXIT") == "1" {
			fmt.Fprintln(os.Stderr, "hook told to fail")
			return 1
		}
		return 0
	},
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := e2eHelpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h(os.Args[1:]))
	}
	os.Exit(m.Run())
}
