package preflight_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bgpYAML is a bgp director naming every file and interface preflight
// judges in the block, one per line.
func (h *host) bgpYAML(bgpKey string) string {
	return `node: lb1
control: {socket: ` + filepath.Join(h.dir, "ctl.sock") + `}
services:
  - {name: web, vip: 192.0.2.10, port: 80, forward: dr, real_servers: [{address: 10.1.0.11}]}
bgp:
  asn: 65001
  router_id: 10.0.1.2
  peers:
    - {address: 10.0.1.1, asn: 65000, password_file: ` + bgpKey + `}
    - {address: 10.0.1.2, asn: 65000, password_file: ` + bgpKey + `}
  vip_interface: ` + h.iface + `
  sync: {interface: ` + h.iface + `}
  group:
    links: [{interface: ` + h.iface + `, multicast: 239.192.0.19}]
    auth_key_file: ` + h.key + `
`
}

// A peer's password file follows the rules of the pair's key file, and
// holds what TCP MD5 takes; the group's key is the pair's kind of key; a
// file named by two peers is judged once.
func TestCheckBGP(t *testing.T) {
	writeKey := func(t *testing.T, h *host, data string, mode os.FileMode) string {
		p := filepath.Join(h.dir, "bgp.key")
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		chmod(t, p, mode)
		return p
	}
	t.Run("good", func(t *testing.T) {
		h := newHost(t)
		for _, pw := range []string{"secret", "secret\n", "secret\r\n", strings.Repeat("x", 80) + "\n"} {
			errs, warns := check(t, h.bgpYAML(writeKey(t, h, pw, 0o600)))
			if len(errs)+len(warns) != 0 {
				t.Errorf("password %q: errors %v, warnings %v", pw, errs, warns)
			}
		}
	})
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, h *host) string
		at    string
		msg   string
	}{
		{"password file readable by others", func(t *testing.T, h *host) string {
			return h.bgpYAML(writeKey(t, h, "secret\n", 0o640))
		}, "9:54: bgp.peers[0].password_file", "mode 0640"},
		{"password file missing", func(t *testing.T, h *host) string {
			return h.bgpYAML(filepath.Join(h.dir, "nosuch.key"))
		}, "9:54: bgp.peers[0].password_file", "no such file or directory"},
		{"password empty", func(t *testing.T, h *host) string {
			return h.bgpYAML(writeKey(t, h, "\n", 0o600))
		}, "9:54: bgp.peers[0].password_file", "is empty"},
		{"password longer than TCP MD5 takes", func(t *testing.T, h *host) string {
			return h.bgpYAML(writeKey(t, h, strings.Repeat("x", 81), 0o600))
		}, "9:54: bgp.peers[0].password_file", "a password of 81 bytes; TCP MD5 takes at most 80"},
		{"group key readable by others", func(t *testing.T, h *host) string {
			chmod(t, h.key, 0o644)
			return h.bgpYAML(writeKey(t, h, "secret\n", 0o600))
		}, "15:20: bgp.group.auth_key_file", "mode 0644"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t)
			errs, warns := check(t, tt.setup(t, h))
			one(t, "errors", errs, tt.at, tt.msg)
			if len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
		})
	}
	t.Run("interfaces missing", func(t *testing.T) {
		h := newHost(t)
		h.iface = "nosuch0"
		errs, warns := check(t, h.bgpYAML(writeKey(t, h, "secret\n", 0o600)))
		if len(errs) != 0 {
			t.Errorf("errors: %v", errs)
		}
		var got []string
		for _, w := range warns {
			got = append(got, w.Error())
		}
		want := []string{
			"x.yaml:11:18: bgp.vip_interface: there is no interface nosuch0 on this host; directord will not start here without it",
			"x.yaml:12:21: bgp.sync.interface: there is no interface nosuch0 on this host; directord will not start here without it",
			"x.yaml:14:25: bgp.group.links[0].interface: there is no interface nosuch0 on this host; directord will not start here without it",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
