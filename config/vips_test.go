package config_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
)

// vips: one service, several kernel services; vip stays the first.
func TestVIPs(t *testing.T) {
	c, err := config.Load("testdata/good/vips.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddr
	tests := []struct {
		name   string
		vip    netip.Addr
		vips   []netip.Addr
		ipv6   bool
		mask   int
		kernel []netip.Addr
		serves map[netip.Addr][]string // VIP: the real servers its kernel service takes
	}{
		{"web", ap("192.0.2.10"), []netip.Addr{ap("192.0.2.10"), ap("2001:db8::10")}, false, 32,
			[]netip.Addr{ap("192.0.2.10"), ap("2001:db8::10")},
			map[netip.Addr][]string{ap("192.0.2.10"): {"10.1.0.11:443"}, ap("2001:db8::10"): {"[2001:db8:1::11]:443"}}},
		// A list of one is vip: the same Service, and the same digest.
		{"one", ap("192.0.2.20"), nil, false, 32, []netip.Addr{ap("192.0.2.20")},
			map[netip.Addr][]string{ap("192.0.2.20"): {"10.1.0.12:80"}}},
		{"pair4", ap("192.0.2.30"), []netip.Addr{ap("192.0.2.30"), ap("192.0.2.31")}, false, 24,
			[]netip.Addr{ap("192.0.2.30"), ap("192.0.2.31")},
			map[netip.Addr][]string{ap("192.0.2.30"): {"10.1.0.13:80"}, ap("192.0.2.31"): {"10.1.0.13:80"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := c.Service(tt.name)
			eq(t, "vip", s.VIP, tt.vip)
			eq(t, "vips", s.VIPs, tt.vips)
			eq(t, "ipv6", s.IPv6, tt.ipv6)
			eq(t, "persistence mask", s.PersistenceMask, tt.mask)
			eq(t, "kernel vips", s.KernelVIPs(), tt.kernel)
			for vip, want := range tt.serves {
				var got []string
				for i := range s.RealServers {
					if s.ServesFrom(vip, &s.RealServers[i]) {
						got = append(got, s.RealServers[i].AddrPort().String())
					}
				}
				eq(t, "served from "+vip.String(), got, want)
			}
		})
	}
	one, err := config.Parse("one.yaml", []byte("node: lb1\nservices:\n  - {name: one, vip: 192.0.2.20, port: 80, real_servers: [{address: 10.1.0.12}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	both := &config.Config{Services: []config.Service{*c.Service("one")}}
	both.Services[0].Pos = one.Services[0].Pos
	if both.ServicesDigest() != one.ServicesDigest() {
		t.Errorf("vips: [x] and vip: x digest differently")
	}
}

// Each VIP of vips is checked against failover.vips, as vip is.
func TestVIPsFailoverCoverage(t *testing.T) {
	c := load(t, "testdata/good/vips_failover.yaml")
	warnings(t, c, "testdata/good/vips_failover.yaml:5:24: services[0].vips[1]: 2001:db8::10 is in no failover.vips entry, so neither director adds it; "+
		"add it there unless something else brings it to the active director")
}

// include: the included files' services join the main file's, in order.
func TestInclude(t *testing.T) {
	c, err := config.Load("testdata/good/include.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range c.Services {
		names = append(names, s.Name+"@"+filepath.Base(s.Pos.File))
	}
	eq(t, "services", names, []string{"main@include.yaml", "web@web.yaml", "a@more-a.yaml", "b@more-b.yaml"})
	warnings(t, c, "testdata/good/include.yaml:7:5: include[2]: testdata/good/include.d/none-*.yaml matches no file")
	// Key paths count across files: CheckKey finds an included service's check.
	if _, pos, ok := c.CheckKey(3, "command"); !ok || !strings.HasSuffix(pos.File, "more-b.yaml") || pos.Line != 5 {
		t.Errorf("CheckKey(3, command) = %v, %v; want more-b.yaml line 5", pos, ok)
	}
}

// A reload reads the included files again, and the digest covers them.
func TestIncludeReload(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "director.yaml")
	write(t, main, "node: lb1\ninclude: [conf.d/*.yaml]\nallow_no_services: true\n")
	c1 := load(t, main)
	eq(t, "services before", len(c1.Services), 0)
	write(t, filepath.Join(dir, "conf.d", "web.yaml"), "services:\n  - {name: web, vip: 192.0.2.10, port: 80, real_servers: [{address: 10.1.0.11}]}\n")
	c2 := load(t, main)
	eq(t, "services after", len(c2.Services), 1)
	write(t, filepath.Join(dir, "conf.d", "web.yaml"), "services:\n  - {name: web, vip: 192.0.2.10, port: 80, real_servers: [{address: 10.1.0.12}]}\n")
	c3 := load(t, main)
	if c2.ServicesDigest() == c3.ServicesDigest() {
		t.Errorf("the digest does not change with an included file")
	}
}

// The limits are on the main file and its includes together.
func TestIncludeLimits(t *testing.T) {
	svc := func(i int) string {
		return fmt.Sprintf("  - {name: s%d, vip: 192.0.2.1, port: %d, real_servers: [{address: 10.1.0.1}]}\n", i, i+1)
	}
	tests := []struct {
		name  string
		files func(dir string)
		want  string
	}{
		{"files", func(dir string) {
			for i := range 257 {
				write(t, filepath.Join(dir, "conf.d", fmt.Sprintf("%03d.yaml", i)), "services:\n"+svc(i))
			}
		}, "director.yaml:2:11: include[0]: brings the number of included files past 256, the most directord reads"},
		{"services", func(dir string) {
			var b strings.Builder
			b.WriteString("services:\n")
			for i := range 6000 {
				b.WriteString(svc(i))
			}
			write(t, filepath.Join(dir, "conf.d", "a.yaml"), b.String())
			write(t, filepath.Join(dir, "conf.d", "b.yaml"), strings.ReplaceAll(b.String(), "name: s", "name: t"))
		}, "b.yaml:2:3: services: brings the configuration to 12000 services, more than the 10000 directord takes"},
		{"size", func(dir string) {
			pad := "#" + strings.Repeat("x", 1<<20) + "\n"
			for i := range 9 {
				write(t, filepath.Join(dir, "conf.d", fmt.Sprintf("%d.yaml", i)), pad+"services:\n"+svc(i))
			}
		}, "director.yaml:2:11: include[0]: " + "DIR/conf.d/7.yaml brings the configuration past 8 MiB, the most directord reads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			main := filepath.Join(dir, "director.yaml")
			write(t, main, "node: lb1\ninclude: [conf.d/*.yaml]\n")
			tt.files(dir)
			_, err := config.Load(main)
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want %q", err, want)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
