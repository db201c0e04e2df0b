package childenv

import (
	"slices"
	"strings"
	"testing"
)

// Environ is the stated environment, every entry NAME=VALUE with each
// name once, and a caller's change to one slice never reaches the next.
func TestEnviron(t *testing.T) {
	env := Environ()
	var names []string
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			t.Fatalf("entry %q is not NAME=VALUE", kv)
		}
		if slices.Contains(names, name) {
			t.Fatalf("%s twice in %q", name, env)
		}
		names = append(names, name)
	}
	if !slices.Contains(env, "PATH="+Path) {
		t.Errorf("%q has no PATH=%s", env, Path)
	}
	env[0] = "CHANGED=1"
	if again := Environ(); slices.Contains(again, "CHANGED=1") {
		t.Errorf("a change to one result shows in the next: %q", again)
	}
}
