//go:build lab

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
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

// hookName is the name this binary is run by as a hook: directord gives
// hooks a stated environment, none of its own, so the helper's settings
// are in a file beside it (writeHook).
const hookName = "hook"

// writeHook makes dir/hook this binary, run as a hook with env set.
func writeHook(t testing.TB, dir string, env []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, hookName)
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Symlink(self, path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".env", []byte(strings.Join(env, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == hookName {
		b, err := os.ReadFile(os.Args[0] + ".env")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, kv := range strings.Fields(string(b)) {
			name, value, _ := strings.Cut(kv, "=")
			os.Setenv(name, value)
		}
	}
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
