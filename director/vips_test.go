package director

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/directorlb/director/config"
)

// dualStack is a service on an IPv4 and an IPv6 VIP with dual-stack real
// servers (each listed once per family) and an IPv4 sorry server.
func dualStack() *config.Config {
	s := svc("web", "192.0.2.10", 80,
		rs("10.0.0.1:80", 1), rs("[2001:db8::1]:80", 2), rs("10.0.0.2:80", 3), rs("[2001:db8::2]:80", 4))
	s.VIPs = []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	s.Persistence, s.PersistenceMask = 5*time.Minute, 32
	sorry := rs("10.0.0.99:80", 1)
	s.SorryServer = &sorry
	return cfgOf(s, svc("api", "192.0.2.11", 443, rs("10.0.0.3:443", 1)))
}

// destList is an entry's destinations as "addr:port=weight", sorted.
func destList(e *Entry) []string {
	var out []string
	for _, d := range e.Dests {
		out = append(out, netip.AddrPortFrom(d.Address, d.Port).String()+"="+strconv.Itoa(int(d.Weight)))
	}
	slices.Sort(out)
	return out
}

func TestDesiredTableVIPs(t *testing.T) {
	key4 := KeyOf(ServiceOf(&dualStack().Services[0]))
	tests := []struct {
		name string
		down []string
		want map[string][]string // kernel key: destinations
	}{
		{"all up", nil, map[string][]string{
			"192.0.2.10:80/tcp":     {"10.0.0.1:80=1", "10.0.0.2:80=3"},
			"[2001:db8::10]:80/tcp": {"[2001:db8::1]:80=2", "[2001:db8::2]:80=4"},
			"192.0.2.11:443/tcp":    {"10.0.0.3:443=1"},
		}},
		// One health verdict per real server drives its weight in every
		// kernel service that has it.
		{"one down", []string{"10.0.0.1:80", "[2001:db8::2]:80"}, map[string][]string{
			"192.0.2.10:80/tcp":     {"10.0.0.1:80=0", "10.0.0.2:80=3"},
			"[2001:db8::10]:80/tcp": {"[2001:db8::1]:80=2", "[2001:db8::2]:80=0"},
			"192.0.2.11:443/tcp":    {"10.0.0.3:443=1"},
		}},
		// The sorry server stands in only in the kernel service of its family.
		{"all down", []string{"10.0.0.1:80", "10.0.0.2:80", "[2001:db8::1]:80", "[2001:db8::2]:80"}, map[string][]string{
			"192.0.2.10:80/tcp":     {"10.0.0.1:80=0", "10.0.0.2:80=0", "10.0.0.99:80=1"},
			"[2001:db8::10]:80/tcp": {"[2001:db8::1]:80=0", "[2001:db8::2]:80=0"},
			"192.0.2.11:443/tcp":    {"10.0.0.3:443=1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &switchWeights{down: map[string]bool{}}
			for _, a := range tt.down {
				w.set(a, true)
			}
			cfg := dualStack()
			for name, table := range map[string]Table{
				"DesiredTable":     DesiredTable(cfg, w),
				"NextDesiredTable": NextDesiredTable(cfg, w, DesiredTable(dualStack(), nil2w())),
			} {
				got := map[string][]string{}
				for k, e := range table {
					got[k.String()] = destList(e)
					if e.Name != cfgName(cfg, e) {
						t.Errorf("%s: %s is named %q", name, k, e.Name)
					}
				}
				eq(t, name, got, tt.want)
				// Persistence, port and scheduler are the same on each VIP;
				// the mask is the whole address of the VIP's family.
				for k, e := range table {
					bits := 32
					if e.Service.Family == ipvs.INET6 {
						bits = 128
					}
					if e.Name == "web" && (e.Service.Timeout != 300 || e.Service.Scheduler != "wlc" || e.Service.Port != 80 ||
						e.Service.Netmask != netmask.MaskFrom(bits, bits)) {
						t.Errorf("%s: %s is %+v", name, k, e.Service)
					}
				}
			}
		})
	}
	if got := len(ServicesOf(&dualStack().Services[0])); got != 2 {
		t.Errorf("ServicesOf: %d kernel services, want 2", got)
	}
	if key4.String() != "192.0.2.10:80/tcp" {
		t.Errorf("ServiceOf is %s, want the first VIP's", key4)
	}
}

func cfgName(c *config.Config, e *Entry) string {
	for i := range c.Services {
		for _, s := range ServicesOf(&c.Services[i]) {
			if KeyOf(s) == KeyOf(e.Service) {
				return c.Services[i].Name
			}
		}
	}
	return ""
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// A director with a vips service: both kernel services converge, a
// health change reaches both, and status shows each under the name.
func TestDirectorVIPs(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	w := &switchWeights{down: map[string]bool{}}
	cfg := dualStack()
	d, _ := startDirector(t, k, w, cfg)
	kernelEquals(t, k, cfg, w)

	w.set("10.0.0.1:80", true)
	w.set("[2001:db8::1]:80", true)
	if err := d.WeightsChanged(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	kernelEquals(t, k, cfg, w)
	for _, s := range ServicesOf(&cfg.Services[0]) {
		for _, dest := range k.table[KeyOf(s)].Dests {
			if (dest.Address == netip.MustParseAddr("10.0.0.1") || dest.Address == netip.MustParseAddr("2001:db8::1")) && dest.Weight != 0 {
				t.Errorf("%s: %s still has weight %d", KeyOf(s), dest.Address, dest.Weight)
			}
		}
	}

	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range st.Services {
		line := s.Name + " " + s.Key
		for _, r := range s.RealServers {
			line += " " + r.Address
		}
		got = append(got, line)
	}
	eq(t, "status", got, []string{
		"web 192.0.2.10:80/tcp 10.0.0.1:80 10.0.0.2:80 10.0.0.99:80",
		"web [2001:db8::10]:80/tcp [2001:db8::1]:80 [2001:db8::2]:80",
		"api 192.0.2.11:443/tcp 10.0.0.3:443",
	})
}
