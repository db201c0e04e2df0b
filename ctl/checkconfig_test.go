package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-config runs as systemd's ExecStartPre: what it passes, directord
// must start with. A key file others can read passed it and failed only
// at start; now check-config refuses it, at the line that names it, and
// passes once the mode is fixed.
func TestCheckConfigRefusesKeyFileMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the key file must be root's, as directord wants it; run as root")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "authkey")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "director.yaml")
	body := "node: lb1\ncontrol: {socket: " + filepath.Join(dir, "ctl.sock") + "}\n" +
		"services:\n  - {name: web, vip: 192.0.2.10, port: 80}\n" +
		"failover:\n  auth_key_file: " + key + "\n  links: [{interface: lo, peer: 192.168.50.2}]\n" +
		"  vips: [{address: 192.0.2.10/24, interface: lo}]\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCtl(t, "check-config", "-config", path)
	want := path + ":6:18: failover.auth_key_file: auth key " + key + ": owned by uid 0 with mode 0644"
	if code != 1 || !strings.HasPrefix(out, want) || strings.Contains(out, ": ok (") {
		t.Errorf("0644 key file: exit %d\n%s%s\nwant exit 1 and %s...", code, out, errOut, want)
	}

	// The file alone, as on a machine that is not the director, is fine.
	if out, errOut, code := runCtl(t, "check-config", "-host=false", "-config", path); code != 0 || !strings.Contains(out, ": ok (1 service(s))") {
		t.Errorf("-host=false: exit %d\n%s%s", code, out, errOut)
	}

	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCtl(t, "check-config", "-config", path); code != 0 || out != path+": ok (1 service(s))\n" {
		t.Errorf("0600 key file: exit %d\n%s%s\nwant exit 0 and only the ok line", code, out, errOut)
	}
}

// Warnings from the host (an interface missing here) are printed as the
// file's own are, and do not fail the check.
func TestCheckConfigHostWarning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "director.yaml")
	body := "node: lb1\ncontrol: {socket: " + filepath.Join(dir, "ctl.sock") + "}\n" +
		"services:\n  - {name: web, vip: 192.0.2.10, port: 80}\n" +
		"  - {name: app, vip: 192.0.2.10, port: 81, check: {type: exec, command: [/bin/true], timeout: 3s}}\n" +
		"failover:\n  auth_key_file: /nonexistent/authkey\n  links: [{interface: nosuch0, peer: 192.168.50.2}]\n" +
		"  vips: [{address: 192.0.2.10/24, interface: lo}]\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCtl(t, "check-config", "-config", path)
	want := path + ":5:95: services[1].check.timeout: timeout 3s is not shorter than interval 2s; a probe that times out is followed at once by the next, so the interval is not kept (warning)\n" +
		path + ":7:18: failover.auth_key_file: auth key: open /nonexistent/authkey: no such file or directory\n" +
		path + ":8:23: failover.links[0].interface: there is no interface nosuch0 on this host; directord will not start here without it (warning)\n"
	if code != 1 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant exit 1, output:\n%s", code, out, want)
	}
}
