package ctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

// TestConfigFindsSocket: -config FILE reaches the daemon on the socket
// the file names, before or after the command, even when the rest of the
// file is invalid: the unit's ExecReload is `directorctl reload -config
// FILE`, and it is the daemon that must refuse a bad file, visibly.
func TestConfigFindsSocket(t *testing.T) {
	var reloads int
	sock := fakeDaemon(t, func(_ context.Context, r control.Request) (any, error) {
		switch r.Cmd {
		case control.CmdReload:
			reloads++
			return nil, errors.New("/etc/director/director.yaml:3:11: services: want a list")
		case control.CmdStatus:
			return director.Status{Node: "lb7"}, nil
		}
		return nil, errors.New("unknown")
	})
	cfg := filepath.Join(t.TempDir(), "director.yaml")
	// Invalid for directord (services is not a list), but it names the socket.
	if err := os.WriteFile(cfg, []byte("node: lb7\ncontrol:\n  socket: "+sock+"\nservices: 42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"reload", "-config", cfg}, {"-config", cfg, "reload"}} {
		_, errOut, code := runCtl(t, args...)
		if code != 1 || !strings.Contains(errOut, "services: want a list") || !strings.Contains(errOut, "refused") {
			t.Errorf("%q: exit %d, want 1 with the daemon's refusal:\n%s", args, code, errOut)
		}
	}
	if reloads != 2 {
		t.Errorf("the daemon saw %d reloads, want 2", reloads)
	}
	if out, errOut, code := runCtl(t, "status", "-config", cfg); code != 0 || !strings.Contains(out, "node lb7") {
		t.Errorf("status -config: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := runCtl(t, "status", "-config", cfg, "-socket", sock); code != 2 || !strings.Contains(errOut, "give one") {
		t.Errorf("-config with -socket: exit %d, want 2:\n%s", code, errOut)
	}
}

// TestSocketOf: the default when the file sets none, and a file that
// does not say (unreadable, not YAML) fails naming the file.
func TestSocketOf(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct{ name, text, want string }{
		{"none.yaml", "node: lb1\nservices: []\n", config.DefaultSocket},
		{"empty.yaml", "control:\n  socket:\n", config.DefaultSocket},
		{"set.yaml", "control: {socket: /run/d2/ctl.sock}\n", "/run/d2/ctl.sock"},
	} {
		got, err := socketOf(write(c.name, c.text))
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	bad := write("bad.yaml", "control: {socket: [a, b]}\n")
	if got, err := socketOf(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad.yaml: %q, %v; want an error naming the file", got, err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, errOut, code := runCtl(t, "reload", "-config", missing); code != 1 || !strings.Contains(errOut, missing) {
		t.Errorf("reload -config %s: exit %d, want 1:\n%s", missing, code, errOut)
	}
	if _, err := socketOf(dir); err == nil {
		t.Error("a directory: no error")
	}
}
