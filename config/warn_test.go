package config_test

import (
	"fmt"
	"testing"

	"github.com/directorlb/director/config"
)

// Settings that load but do not do what the file says: each is a warning
// at the key that made it so, said once.
func TestCrossWarnings(t *testing.T) {
	const slow = "a probe that times out is followed at once by the next, so the interval is not kept"
	const pair = "failover:\n  auth_key_file: /etc/director/authkey\n  links: [{interface: eth1, peer: 192.168.50.2}]\n"
	for _, tt := range []struct {
		name, in string
		want     []string
	}{
		{"timeout in defaults, said once",
			"defaults:\n  check: {timeout: 5s}\nservices:\n  - {name: a, vip: 192.0.2.1, port: 80}\n  - {name: b, vip: 192.0.2.1, port: 81, check: {type: http}}\n",
			[]string{"x.yaml:2:20: defaults.check.timeout: timeout 5s is not shorter than interval 2s; " + slow}},
		{"interval shortened under an inherited timeout",
			"defaults:\n  check: {timeout: 3s, interval: 5s}\nservices:\n  - {name: a, vip: 192.0.2.1, port: 80, check: {interval: 3s}}\n",
			[]string{"x.yaml:4:59: services[0].check.interval: timeout 3s is not shorter than interval 3s; " + slow}},
		{"a check of type none never probes",
			"services:\n  - {name: a, vip: 192.0.2.1, port: 80, check: {type: none, timeout: 9s}}\n", nil},
		{"type turned on under a timeout that none ignored",
			"defaults:\n  check: {type: none, timeout: 9s}\nservices:\n  - {name: a, vip: 192.0.2.1, port: 80, check: {type: tcp}}\n",
			[]string{"x.yaml:4:55: services[0].check.type: timeout 9s is not shorter than interval 2s; " + slow}},
		{"VIPs the pair does not hold, and one it holds for nothing",
			"services:\n  - {name: a, vip: 192.0.2.10, port: 80}\n  - {name: b, vip: 192.0.2.12, port: 80}\n  - {name: c, vip: 192.0.2.12, port: 443}\n" + pair +
				"  vips:\n    - {address: 192.0.2.10/24, interface: eth0}\n    - {address: 192.0.2.11/24, interface: eth0}\n",
			[]string{
				"x.yaml:3:20: services[1].vip: 192.0.2.12 is in no failover.vips entry, so neither director adds it; add it there unless something else brings it to the active director",
				"x.yaml:10:17: failover.vips[1].address: no service has vip 192.0.2.11; the pair moves it between the directors for nothing",
			}},
		{"a fwmark service may use any VIP",
			"services:\n  - {name: a, fwmark: 1}\n" + pair + "  vips:\n    - {address: 192.0.2.11/24, interface: eth0}\n", nil},
		{"a single director holds its VIPs its own way",
			"services:\n  - {name: a, vip: 192.0.2.10, port: 80}\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("x.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			warnings(t, c, tt.want...)
		})
	}
}

// Where and CheckKey point the checks that need the host at the value
// that named the file, program or interface; a check field comes from
// the service's own check or else from defaults.check.
func TestWhere(t *testing.T) {
	in := "control: {socket: /run/d.sock}\n" +
		"defaults:\n  check: {type: https, ca_file: /etc/ca.pem}\n" +
		"services:\n  - {name: a, vip: 192.0.2.10, port: 80}\n" +
		"  - {name: b, vip: 192.0.2.10, port: 81, check: {type: exec, command: [/bin/true]}}\n" +
		"failover:\n  auth_key_file: /k\n  notify: /n\n  links: [{interface: eth1, peer: 192.168.50.2}]\n" +
		"  vips: [{address: 192.0.2.10/24, interface: eth0}]\n"
	c, err := config.Parse("x.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"control.socket": "1:19", "failover.auth_key_file": "8:18", "failover.notify": "9:11",
		"failover.links[0].interface": "10:23", "failover.vips[0].interface": "11:46",
		"defaults.check.ca_file": "3:33", "services[1].check.command": "6:71",
	} {
		p, ok := c.Where(key)
		if got := fmt.Sprintf("%d:%d", p.Line, p.Col); !ok || got != want || p.File != "x.yaml" {
			t.Errorf("Where(%s) = %+v, %v; want x.yaml:%s", key, p, ok, want)
		}
	}
	if _, ok := c.Where("failover.fence"); ok {
		t.Errorf("Where(failover.fence) found a key the file does not have")
	}
	if key, p, ok := c.CheckKey(0, "ca_file"); !ok || key != "defaults.check.ca_file" || p.Line != 3 {
		t.Errorf("CheckKey(0, ca_file) = %s %+v %v, want the inherited defaults.check.ca_file", key, p, ok)
	}
	if key, p, ok := c.CheckKey(1, "command"); !ok || key != "services[1].check.command" || p.Line != 6 {
		t.Errorf("CheckKey(1, command) = %s %+v %v, want the service's own", key, p, ok)
	}
	if _, _, ok := c.CheckKey(0, "password_file"); ok {
		t.Errorf("CheckKey(0, password_file) found a key nobody wrote")
	}
}
