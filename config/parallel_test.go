package config

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// richFarm is a services list long enough to be decoded in parallel,
// using what the decoders keep for later (check files, VIPs, vips, the
// failover block's VIPs) and, in entry i where bad(i), whatever bad
// writes.
func richFarm(n int, bad func(i int) string) []byte {
	var b strings.Builder
	b.WriteString("node: a\nfailover:\n  priority: 100\n  auth_key_file: /etc/director/authkey\n" +
		"  links: [{interface: eth1, peer: 192.168.50.2}]\n  vips:\n    - {address: 10.100.0.1/16, interface: eth0}\n" +
		"    - {address: 192.0.2.99/24, interface: eth0}\nservices:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: s%d\n", i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "    vip: 10.100.%d.%d\n    port: 443\n    check: {type: https, ca_file: /etc/ca%d.pem, interval: 2s}\n", i/256, i%256, i%3)
		case 1:
			fmt.Fprintf(&b, "    vips: [10.101.%d.%d, 10.102.%d.%d]\n    port: 3306\n    check: {type: mysql, user: u, password_file: /etc/pw}\n", i/256, i%256, i/256, i%256)
		case 2:
			fmt.Fprintf(&b, "    fwmark: %d\n    persistence: 60s\n    check: {type: exec, command: [/bin/check, \"%d\"]}\n", i+1, i)
		default:
			fmt.Fprintf(&b, "    vip: 10.103.%d.%d\n    port: 80\n    tunnel: {type: gue, port: 5555}\n    forward: tun\n", i/256, i%256)
		}
		if bad != nil {
			b.WriteString(bad(i))
		}
		b.WriteString("    real_servers:\n")
		for j := 1; j <= 3; j++ {
			fmt.Fprintf(&b, "      - {address: 10.200.%d.%d, weight: %d}\n", i%200, j, j)
		}
	}
	return []byte(b.String())
}

// parseSerial is Parse with one decoder reading the file from the top.
func parseSerial(t *testing.T, data []byte) (*Config, error) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	return Parse("director.yaml", data)
}

// TestParallelDecodeSame: a list decoded on several cores gives the same
// Config (down to where each key is written), warnings and errors, in
// the same order, as one decoder reading it in order.
func TestParallelDecodeSame(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	}
	for name, data := range map[string][]byte{
		"valid": richFarm(3000, nil),
		// Names repeated: said by services, after the decoders.
		"duplicates": []byte(strings.ReplaceAll(string(richFarm(3000, nil)), "name: s17\n", "name: s16\n")),
		// Problems in the entries: decoded again in order.
		"problems": richFarm(3000, func(i int) string {
			switch {
			case i%97 == 5:
				return "    bogus: 1\n"
			case i%89 == 7:
				return "    scheduler: wrr2\n"
			}
			return ""
		}),
		// More than maxErrors: which are kept depends on the order.
		"many problems": richFarm(3000, func(i int) string { return "    one_packet: yes\n" }),
		"warnings":      richFarm(3000, func(i int) string { return "    scheduler_flags: [mh-port]\n    scheduler: rr\n" }),
		"too many real servers": []byte(strings.ReplaceAll(string(richFarm(2000, nil)), "    real_servers:\n",
			"    real_servers:\n"+manyReals(48))),
	} {
		want, wantErr := parseSerial(t, data)
		got, err := Parse("director.yaml", data)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("%s: errors\n%.2000v\nwant\n%.2000v", name, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the Config differs from one decoded in order", name)
		}
		if name == "valid" && (err != nil || len(got.Warnings) == 0) {
			t.Errorf("valid: %v, %d warnings; want no error and the failover warnings", err, len(got.Warnings))
		}
	}
}

// manyReals is n real servers, each at its own address.
func manyReals(n int) string {
	var b strings.Builder
	for j := 0; j < n; j++ {
		fmt.Fprintf(&b, "      - {address: 10.201.0.%d}\n", j+1)
	}
	return b.String()
}
