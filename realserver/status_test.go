package realserver

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// TestStatusProblems: each way a real server can be wrong for DR/TUN is
// reported as one problem line, and only that.
func TestStatusProblems(t *testing.T) {
	ready := func(mode Mode) func(*fakeKernel) {
		return func(k *fakeKernel) {
			var out bytes.Buffer
			if err := Up(k, Store{Path: t.TempDir() + "/s.json"}, Spec{Mode: mode, VIPs: addrs("192.0.2.10", "2001:db8::10")}, &out); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		mode   Mode
		breaks func(*fakeKernel)
		want   []string // the problem lines, in order
	}{
		{"dr ready", DR, nil, nil},
		{"tun ready", TUN, nil, nil},
		{"vip missing", DR, func(k *fakeKernel) {
			k.DelAddr("lo", netip.MustParseAddr("192.0.2.10"))
		}, []string{"VIP 192.0.2.10 is missing from lo"}},
		{"arp_ignore reset", DR, func(k *fakeKernel) {
			k.sysctls[conf("all", "arp_ignore")] = "0"
			k.sysctls[conf("eth0", "arp_ignore")] = "0"
		}, []string{"eth0 answers ARP for the VIPs: arp_ignore is 0 (all 0, eth0 0); it needs 1"}},
		{"arp_ignore 3 is not enough", DR, func(k *fakeKernel) {
			k.sysctls[conf("eth0", "arp_ignore")] = "3"
		}, []string{"eth0 answers ARP for the VIPs: arp_ignore is 3 (all 1, eth0 3); it needs 1"}},
		{"arp_announce on a second interface", DR, func(k *fakeKernel) {
			k.addLink(Link{Name: "eth1", Up: true, Kind: "veth"})
			k.addrs = append(k.addrs, Addr{"eth1", netip.MustParsePrefix("10.1.0.11/24")})
			k.sysctls[conf("all", "arp_announce")] = "1"
		}, []string{"eth1 may use a VIP as its ARP source address: arp_announce is 1 (all 1, eth1 0); it needs 2"}},
		{"vip also on eth0", DR, func(k *fakeKernel) {
			k.AddAddr("eth0", netip.MustParseAddr("192.0.2.10"))
			k.AddAddr("eth0", netip.MustParseAddr("2001:db8::10"))
		}, []string{
			"VIP 192.0.2.10 is also on eth0, which answers ARP for it: clients would reach this server instead of the director",
			"VIP 2001:db8::10 is also on eth0, which answers neighbour solicitations for it: clients would reach this server instead of the director",
		}},
		{"tunnel down", TUN, func(k *fakeKernel) { k.SetLinkUp("ip6tnl0", false) }, []string{"ip6tnl0 is down"}},
		{"tunnel gone", TUN, func(k *fakeKernel) { k.DeleteLink("tunl0") }, []string{
			"tunl0 does not exist (tun mode needs the ipip module)",
			"VIP 192.0.2.10 is missing from tunl0",
		}},
		{"strict rp_filter", TUN, func(k *fakeKernel) { k.sysctls[conf("all", "rp_filter")] = "1" }, []string{
			"rp_filter on tunl0 is strict (all 1, tunl0 0): tunnelled packets from clients are dropped; it needs 0 or 2",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := server()
			ready(tc.mode)(k)
			if tc.breaks != nil {
				tc.breaks(k)
			}
			rep, err := Status(k, Spec{Mode: tc.mode, VIPs: addrs("192.0.2.10", "2001:db8::10")})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range rep.Findings {
				if !f.OK {
					got = append(got, f.Text)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if rep.Ready() != (len(tc.want) == 0) {
				t.Errorf("Ready() = %t with problems %q", rep.Ready(), got)
			}
			var out bytes.Buffer
			rep.Write(&out)
			if n := strings.Count(out.String(), "\nproblem  "); n != len(tc.want) {
				t.Errorf("printed %d problem lines, want %d:\n%s", n, len(tc.want), out.String())
			}
		})
	}
}
