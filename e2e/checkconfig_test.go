//go:build lab

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/lab/topo"
)

// TestCheckConfigRefusesBadKeyFile: systemd runs `directorctl
// check-config` as ExecStartPre, so what it passes directord must start
// with. A pair key file that others can read, or that is missing, passed
// it and failed only at start; now check-config exits 1 at the line that
// names the file, directord refuses the same file with the same reason,
// and once the file is fixed check-config passes.
func TestCheckConfigRefusesBadKeyFile(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	h := n.Host("dir")
	tmp := t.TempDir()
	key, text := keyFileConfig(t, tmp)
	cfg := writeConfig(t, tmp, text)
	at := fmt.Sprintf("%s:%d:18: failover.auth_key_file: ", cfg, 1+strings.Count(text[:strings.Index(text, "auth_key_file:")], "\n"))

	checkConfig := func(wantCode int, want string) {
		t.Helper()
		out, code := run(t, h, "", "/bin/directorctl", "check-config", "-config", cfg)
		if code != wantCode || out != want {
			t.Fatalf("check-config: exit %d\n%s\nwant exit %d\n%s", code, out, wantCode, want)
		}
	}

	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	why := fmt.Sprintf("auth key %s: owned by uid 0 with mode 0644; run `chown root:root %[1]s && chmod 0600 %[1]s`: key file must be owned by root with mode 0600", key)
	checkConfig(1, at+why+"\n")
	// The same file stops directord, for the same reason: check-config
	// now says what the start would.
	if out, code := run(t, h, "", "/bin/directord", "-config", cfg); code == 0 || !strings.Contains(out, why) {
		t.Fatalf("directord with a 0644 key file: exit %d\n%s", code, out)
	}

	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	checkConfig(1, at+"auth key: open "+key+": no such file or directory\n")

	if err := os.WriteFile(key, []byte("lab pair shared secret, 32 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkConfig(0, cfg+": ok (1 service(s))\n")
}

// TestDirectordBadKeyFileTouchesNothing: directord refuses a key file it
// cannot use before it changes the kernel, as check-config would have:
// started by hand without ExecStartPre, a refused start must not leave
// services behind.
func TestDirectordBadKeyFileTouchesNothing(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	h := n.Host("dir")
	tmp := t.TempDir()
	key, text := keyFileConfig(t, tmp)
	cfg := writeConfig(t, tmp, text)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, h, "", "/bin/directord", "-config", cfg); code == 0 || !strings.Contains(out, "failover.auth_key_file") {
		t.Fatalf("directord with a 0644 key file: exit %d\n%s", code, out)
	}
	if got := ipvsadmSave(t, h); got != "" {
		t.Fatalf("a refused start reached the kernel:\n%s", got)
	}
}

// keyFileConfig writes a pair key (0600) in dir and returns its path and
// a config for a director of a pair that uses it, on lo so that no
// interface is missing.
func keyFileConfig(t *testing.T, dir string) (key, text string) {
	t.Helper()
	key = filepath.Join(dir, "authkey")
	if err := os.WriteFile(key, []byte("lab pair shared secret, 32 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, configHeader(dir) + `services:
  - name: web
    vip: 192.0.2.10
    port: 80
failover:
  auth_key_file: ` + key + `
  links:
    - {interface: lo, peer: 192.0.2.2}
  vips:
    - {address: 192.0.2.10/24, interface: lo}
`
}
