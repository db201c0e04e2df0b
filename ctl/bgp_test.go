package ctl

import (
	"os"
	"path/filepath"
	"testing"
)

// check-config judges a bgp block fully and passes a valid one with no
// note: directord runs bgp mode.
func TestCheckConfigBGP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "director.yaml")
	body := "node: lb1\ncontrol: {socket: " + filepath.Join(dir, "ctl.sock") + "}\n" +
		"services:\n  - {name: web, vip: 192.0.2.10, port: 80, forward: dr, real_servers: [{address: 10.1.0.11}]}\n" +
		"bgp:\n  asn: 65001\n  router_id: 10.0.1.2\n  peers: [{address: 10.0.1.1, asn: 65000}]\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check-config", "-config", path}, {"check-config", "-host=false", "-config", path}} {
		out, errOut, code := runCtl(t, args...)
		if want := path + ": ok (1 service(s))\n"; code != 0 || out != want {
			t.Errorf("%v: exit %d\n%s%s\nwant exit 0 and:\n%s", args, code, out, errOut, want)
		}
	}

	// An invalid block fails as any other part of the file does.
	bad := []byte("services: []\nallow_no_services: true\nbgp:\n  asn: 65001\n  peers: [{address: 10.0.1.1, asn: 65000}]\n")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCtl(t, "check-config", "-config", path)
	if want := path + ":4:3: bgp.router_id: missing; this director's BGP identifier, an IPv4 address unique among the speakers, such as its own address\n"; code != 1 || out != want {
		t.Errorf("no router_id: exit %d\n%s\nwant exit 1 and:\n%s", code, out, want)
	}
}
