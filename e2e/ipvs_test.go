//go:build lab

package e2e

import (
	"net/netip"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/directorlb/director/lab/topo"
)

// ipvsIn opens an IPVS client inside a host: the netlink socket belongs
// to the namespace it is created in.
func ipvsIn(t testing.TB, h *topo.Host) ipvs.Client {
	t.Helper()
	var c ipvs.Client
	if err := h.Do(func() (err error) {
		c, err = ipvs.New()
		return err
	}); err != nil {
		t.Fatalf("ipvs client in %s: %v", h.Name, err)
	}
	return c
}

// virtualService creates a service with one destination per real server.
func virtualService(t *testing.T, c ipvs.Client, svc ipvs.Service, fwd ipvs.ForwardType, reals ...string) {
	t.Helper()
	if err := c.CreateService(svc); err != nil {
		t.Fatalf("create service %v:%d: %v", svc.Address, svc.Port, err)
	}
	for _, r := range reals {
		ap := netip.MustParseAddrPort(r)
		d := ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Family: svc.Family, FwdMethod: fwd, Weight: 1}
		if err := c.CreateDestination(svc, d); err != nil {
			t.Fatalf("add real server %s: %v", r, err)
		}
	}
	dests, err := c.Destinations(svc)
	if err != nil || len(dests) != len(reals) {
		t.Fatalf("kernel holds %d destinations (err %v), want %d", len(dests), err, len(reals))
	}
}

func tcpService(vip string, port uint16, sched string) ipvs.Service {
	a := netip.MustParseAddr(vip)
	fam := ipvs.INET
	if a.Is6() {
		fam = ipvs.INET6
	}
	return ipvs.Service{Address: a, Port: port, Protocol: ipvs.TCP, Family: fam, Scheduler: sched, Netmask: maskFor(a)}
}

// roundRobin checks that consecutive answers alternate between exactly
// the two given servers, as rr over two equal servers must.
func roundRobin(t *testing.T, got []string, a, b string) {
	t.Helper()
	t.Logf("client saw %v", got)
	if len(got) != 4 || got[0] == got[1] || got[0] != got[2] || got[1] != got[3] ||
		!((got[0] == a && got[1] == b) || (got[0] == b && got[1] == a)) {
		t.Fatalf("client saw %v, want %s and %s alternating", got, a, b)
	}
}

// TestNATRoundRobin: a client fetches the VIP four times through a NAT
// director and sees the two real servers in turn.
func TestNATRoundRobin(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	client, dir := n.Host("client"), n.Host("dir")
	rs1, rs2 := n.Host("rs1"), n.Host("rs2")
	n.Link(client, "198.51.100.2/24", dir, "198.51.100.1/24,198.51.100.10/24")
	n.Link(dir, "10.0.1.1/24", rs1, "10.0.1.11/24")
	n.Link(dir, "10.0.2.1/24", rs2, "10.0.2.12/24")
	dir.Sysctl("net.ipv4.ip_forward", "1")
	rs1.Route("default", "10.0.1.1")
	rs2.Route("default", "10.0.2.1")
	rs1.ServeHTTP(":80")
	rs2.ServeHTTP(":80")

	virtualService(t, ipvsIn(t, dir), tcpService("198.51.100.10", 80, "rr"), ipvs.Masquerade, "10.0.1.11:80", "10.0.2.12:80")

	roundRobin(t, client.Fetch("http://198.51.100.10/", 4), "rs1", "rs2")
}

// drRealServer prepares a real server for direct routing or tunnelling:
// it holds the VIP on ifName but never answers ARP for it.
func drRealServer(h *topo.Host, lanIf, vipIf, vip string) {
	for _, i := range []string{"all", lanIf} {
		h.Sysctl("net.ipv4.conf."+i+".arp_ignore", "1")
		h.Sysctl("net.ipv4.conf."+i+".arp_announce", "2")
	}
	h.Addr(vipIf, vip+"/32")
}

// tunRealServer prepares a real server for IPIP tunnelling: tunl0 up
// with the VIP, silent in ARP for it, and no reverse-path filtering.
func tunRealServer(t *testing.T, h *topo.Host, lanIf, vip string) {
	t.Helper()
	tunl0, err := h.Netlink().LinkByName("tunl0")
	if err != nil {
		t.Fatalf("%s has no tunl0 (is the ipip module loaded?): %v", h.Name, err)
	}
	if err := h.Netlink().LinkSetUp(tunl0); err != nil {
		t.Fatal(err)
	}
	drRealServer(h, lanIf, "tunl0", vip)
	// Decapsulated packets arrive on tunl0 from a source routed via the
	// LAN interface: strict reverse-path filtering would drop them.
	for _, i := range []string{"all", "tunl0", lanIf} {
		h.Sysctl("net.ipv4.conf."+i+".rp_filter", "0")
	}
}

// TestDirectRouting: director and real servers on one bridge; the real
// servers hold the VIP on lo and stay silent in ARP, so the client's
// packets reach the director, and the answers come straight back.
func TestDirectRouting(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	lan := n.Switch("lan")
	client, dir := n.Host("client"), n.Host("dir")
	rs1, rs2 := n.Host("rs1"), n.Host("rs2")
	lan.Plug(client, "10.0.0.1/24")
	dirIf := lan.Plug(dir, "10.0.0.2/24,10.0.0.100/24")
	for i, rs := range []*topo.Host{rs1, rs2} {
		rsIf := lan.Plug(rs, []string{"10.0.0.11/24", "10.0.0.12/24"}[i])
		drRealServer(rs, rsIf, "lo", "10.0.0.100")
		rs.ServeHTTP(":80")
	}

	virtualService(t, ipvsIn(t, dir), tcpService("10.0.0.100", 80, "rr"), ipvs.DirectRoute, "10.0.0.11:80", "10.0.0.12:80")

	roundRobin(t, client.Fetch("http://10.0.0.100/", 4), "rs1", "rs2")
	if got, want := client.Neighbor("10.0.0.100").String(), dir.MAC(dirIf).String(); got != want {
		t.Fatalf("client resolved the VIP to %s, want the director's %s: a real server answered ARP", got, want)
	}
}

// TestTunnel: the director encapsulates in IPIP to real servers that hold
// the VIP on tunl0 and answer the client directly.
func TestTunnel(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	lan := n.Switch("lan")
	client, dir := n.Host("client"), n.Host("dir")
	rs1, rs2 := n.Host("rs1"), n.Host("rs2")
	lan.Plug(client, "10.0.0.1/24")
	lan.Plug(dir, "10.0.0.2/24,10.0.0.100/24")
	for i, rs := range []*topo.Host{rs1, rs2} {
		rsIf := lan.Plug(rs, []string{"10.0.0.11/24", "10.0.0.12/24"}[i])
		tunRealServer(t, rs, rsIf, "10.0.0.100")
		rs.ServeHTTP(":80")
	}

	c := ipvsIn(t, dir)
	virtualService(t, c, tcpService("10.0.0.100", 80, "rr"), ipvs.Tunnel, "10.0.0.11:80", "10.0.0.12:80")

	roundRobin(t, client.Fetch("http://10.0.0.100/", 4), "rs1", "rs2")
}

// TestIPv6NAT: the NAT scenario over IPv6 only.
func TestIPv6NAT(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	client, dir := n.Host("client"), n.Host("dir")
	rs1, rs2 := n.Host("rs1"), n.Host("rs2")
	n.Link(client, "2001:db8:1::2/64", dir, "2001:db8:1::1/64,2001:db8:1::10/64")
	n.Link(dir, "2001:db8:2::1/64", rs1, "2001:db8:2::11/64")
	n.Link(dir, "2001:db8:3::1/64", rs2, "2001:db8:3::12/64")
	dir.Sysctl("net.ipv6.conf.all.forwarding", "1")
	rs1.Route("default", "2001:db8:2::1")
	rs2.Route("default", "2001:db8:3::1")
	rs1.ServeHTTP(":80")
	rs2.ServeHTTP(":80")

	virtualService(t, ipvsIn(t, dir), tcpService("2001:db8:1::10", 80, "rr"), ipvs.Masquerade, "[2001:db8:2::11]:80", "[2001:db8:3::12]:80")

	roundRobin(t, client.Fetch("http://[2001:db8:1::10]/", 4), "rs1", "rs2")
}

// maskFor is the persistence mask of a non-persistent service: the whole
// address. The kernel requires one on every service.
func maskFor(a netip.Addr) netmask.Mask {
	if a.Is4() {
		return netmask.MaskFrom(32, 32)
	}
	return netmask.MaskFrom(128, 128)
}

// TestRealIpvsadmSeesTheTable: the real ipvsadm, copied from the host
// with its libraries, runs in the guest and reads what we programmed. It
// is the peer later tests compare directorctl with.
func TestRealIpvsadmSeesTheTable(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	dir := n.Host("dir")
	c := ipvsIn(t, dir)
	svc := tcpService("192.0.2.10", 80, "wlc")
	virtualService(t, c, svc, ipvs.Masquerade, "10.0.1.11:8080")
	got := ipvsadmSave(t, dir)
	want := "-A -t 192.0.2.10:80 -s wlc\n-a -t 192.0.2.10:80 -r 10.0.1.11:8080 -m -w 1\n"
	if got != want {
		t.Fatalf("ipvsadm -S -n printed\n%s\nwant\n%s", got, want)
	}
}
