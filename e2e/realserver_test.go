//go:build lab

package e2e

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/lab/topo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestRealserverForDirectord: directord runs DR and TUN services, over
// IPv4 and IPv6, to real servers prepared only with `realserver up`. The
// real servers start as a fresh host would, with ARP left answering and
// strict reverse-path filtering; the client must reach every real server
// in turn, and only ever resolve the VIPs to the director. Then down puts
// a server back as it was, and status says it is no longer fit.
func TestRealserverForDirectord(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	lan := n.Switch("lan")
	client, dir := n.Host("client"), n.Host("dir")
	lan.Plug(client, "10.0.0.1/24,2001:db8::1/64")
	dirIf := lan.Plug(dir, "10.0.0.2/24,10.0.0.100/24,10.0.0.101/24,2001:db8::2/64")
	// IPv6 VIPs deprecated, as a director holds them: otherwise the
	// newest address, a VIP, becomes the source of the director's own
	// packets, tunnelled ones included, and a real server holding that
	// VIP drops them as coming from itself.
	for _, vip := range []string{"2001:db8::100/64", "2001:db8::101/64"} {
		l, err := dir.Netlink().LinkByName(dirIf)
		if err == nil {
			a, _ := netlink.ParseAddr(vip)
			a.Flags, a.PreferedLft, a.ValidLft = unix.IFA_F_NODAD, 0, math.MaxUint32
			err = dir.Netlink().AddrAdd(l, a)
		}
		if err != nil {
			t.Fatalf("dir: add %s: %v", vip, err)
		}
	}

	servers := map[string]struct {
		v4, v6, mode, vips string
	}{
		"dr1":  {"10.0.0.11", "2001:db8::11", "dr", "10.0.0.100,2001:db8::100"},
		"dr2":  {"10.0.0.12", "2001:db8::12", "dr", "10.0.0.100,2001:db8::100"},
		"tun1": {"10.0.0.21", "2001:db8::21", "tun", "10.0.0.101,2001:db8::101"},
		"tun2": {"10.0.0.22", "2001:db8::22", "tun", "10.0.0.101,2001:db8::101"},
	}
	hosts := map[string]*topo.Host{}
	// The namespaces share one filesystem: each server keeps its own record.
	tmp := t.TempDir()
	state := func(name string) string { return "--state=" + filepath.Join(tmp, name+".json") }
	for _, name := range []string{"dr1", "dr2", "tun1", "tun2"} {
		s := servers[name]
		h := n.Host(name)
		hosts[name] = h
		lan.Plug(h, s.v4+"/24,"+s.v6+"/64")
		h.Sysctl("net.ipv4.conf.all.rp_filter", "1")
		h.Sysctl("net.ipv4.conf.default.rp_filter", "1")
		must(t, h, "/bin/realserver", "up", "--mode", s.mode, "--vip", s.vips, state(name))
		if out, code := run(t, h, "", "/bin/realserver", "status", state(name)); code != 0 {
			t.Fatalf("%s: realserver status after up: exit %d\n%s", name, code, out)
		}
		h.ServeHTTP(":80")
	}

	svc := func(name, vip, fwd, a, b string) string {
		return fmt.Sprintf("  - name: %s\n    vip: %s\n    port: 80\n    scheduler: rr\n    forward: %s\n    real_servers:\n      - {address: %q}\n      - {address: %q}\n", name, vip, fwd, a, b)
	}
	runDirectord(t, dir, "services:\n"+
		svc("dr4", "10.0.0.100", "dr", "10.0.0.11", "10.0.0.12")+
		svc("dr6", "2001:db8::100", "dr", "2001:db8::11", "2001:db8::12")+
		svc("tun4", "10.0.0.101", "tun", "10.0.0.21", "10.0.0.22")+
		svc("tun6", "2001:db8::101", "tun", "2001:db8::21", "2001:db8::22"))

	for _, tc := range []struct{ url, a, b string }{
		{"http://10.0.0.100/", "dr1", "dr2"},
		{"http://[2001:db8::100]/", "dr1", "dr2"},
		{"http://10.0.0.101/", "tun1", "tun2"},
		{"http://[2001:db8::101]/", "tun1", "tun2"},
	} {
		roundRobin(t, client.Fetch(tc.url, 4), tc.a, tc.b)
	}
	for _, vip := range []string{"10.0.0.100", "10.0.0.101", "2001:db8::100", "2001:db8::101"} {
		if got, want := client.Neighbor(vip).String(), dir.MAC(dirIf).String(); got != want {
			t.Errorf("client resolved %s to %s, want the director's %s: a real server answered for it", vip, got, want)
		}
	}

	// down on tun1 restores strict rp_filter and removes the VIPs; status
	// then names what is missing.
	tun1 := hosts["tun1"]
	must(t, tun1, "/bin/realserver", "down", state("tun1"))
	if got := tun1.ReadSysctl("net.ipv4.conf.all.rp_filter"); got != "1" {
		t.Errorf("tun1 all.rp_filter = %s after down, want the original 1", got)
	}
	out, code := run(t, tun1, "", "/bin/realserver", "status", "--mode", "tun", "--vip", "10.0.0.101,2001:db8::101")
	if code != 1 || !strings.Contains(out, "problem  VIP 10.0.0.101 is missing from tunl0") || !strings.Contains(out, "problem  VIP 2001:db8::101 is missing from ip6tnl0") {
		t.Errorf("status after down: exit %d, want 1 naming the missing VIPs\n%s", code, out)
	}
}
