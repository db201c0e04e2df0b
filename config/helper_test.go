package config_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
)

func TestParseRealServerHost(t *testing.T) {
	c, err := config.ParseRealServerHost("rs.yaml", []byte("mode: tun\nvips: [192.0.2.10, \"2001:db8::10\"]\ninterface: eth0.100\nstate: /run/rs//state.json\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	if c.Mode != "tun" || !slices.Equal(c.VIPs, want) || c.Interface != "eth0.100" || c.State != "/run/rs/state.json" {
		t.Errorf("got %+v", c)
	}
	if c, err := config.ParseRealServerHost("rs.yaml", []byte("mode: dr\nvips: 192.0.2.10\n")); err != nil || len(c.VIPs) != 1 {
		t.Errorf("one VIP as a scalar: %+v, %v", c, err)
	}
}

func TestParseRealServerHostErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "rs.yaml:1:1: document: the file is empty; it needs mode and vips"},
		{"mode: dr\n", "rs.yaml:1:1: vips: missing; list the addresses of the services this server answers for"},
		{"vips: [192.0.2.10]\n", "rs.yaml:1:1: mode: missing; say dr (direct routing) or tun (tunnelling)"},
		{"mode: nat\nvips: [192.0.2.10]\n", `rs.yaml:1:7: mode: must be dr or tun, got "nat"`},
		{"mode: dr\nvips: []\n", "rs.yaml:2:7: vips: must list at least one address"},
		{"mode: dr\nvips: [192.0.2.10/32]\n", "rs.yaml:2:8: vips[0]: must be an address without a prefix length"},
		{"mode: dr\nvips: [127.0.0.1]\n", "rs.yaml:2:8: vips[0]: must not be a loopback address"},
		{"mode: dr\nvips: [fe80::1]\n", "rs.yaml:2:8: vips[0]: must not be a link-local address"},
		{"mode: dr\nvips: [224.0.0.1]\n", "rs.yaml:2:8: vips[0]: must not be a multicast address"},
		{"mode: dr\nvips: [192.0.2.10, 192.0.2.10]\n", "rs.yaml:2:20: vips[1]: 192.0.2.10 is listed twice (first at 2:8)"},
		{"mode: dr\nvips: [192.0.2.10]\ninterface: eth0/1\n", "rs.yaml:3:12: interface: must be an interface name"},
		{"mode: dr\nvips: [192.0.2.10]\nstate: run/state.json\n", "rs.yaml:3:8: state: must be an absolute path"},
		{"mode: dr\nvip: [192.0.2.10]\n", `rs.yaml:2:1: vip: unknown key "vip" (did you mean "vips"?)`},
	} {
		_, err := config.ParseRealServerHost("rs.yaml", []byte(tc.in))
		if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

// FuzzParseRealServerHost: any file yields a host config or placed
// errors, never both, never neither, never a panic.
func FuzzParseRealServerHost(f *testing.F) {
	f.Add([]byte("mode: tun\nvips: [192.0.2.10, \"2001:db8::10\"]\ninterface: eth0\nstate: /run/rs.json\n"))
	f.Add([]byte("mode: dr\nvips: 192.0.2.10\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.ParseRealServerHost("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("got %+v and %v", c, err)
		}
		if err != nil && !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("error %v is not ErrInvalid", err)
		}
		if c != nil && (len(c.VIPs) == 0 || (c.Mode != "dr" && c.Mode != "tun")) {
			t.Fatalf("accepted %+v", c)
		}
	})
}
