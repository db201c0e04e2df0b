//go:build lab

package e2e

import (
	"net"
	"strings"
	"testing"

	"github.com/directorlb/director/lab/topo"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// markTo makes h's netfilter mark every IPv4 packet to dst with mark, as
// an admin's "iptables -t mangle -A PREROUTING -d VIP -j MARK" would.
func markTo(t *testing.T, h *topo.Host, dst string, mark uint32) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(h.NS())))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "mangle"})
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		// ip daddr (offset 16 in the IPv4 header) == dst
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.ParseIP(dst).To4()},
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables in %s: %v", h.Name, err)
	}
}

// TestDirectordFwmarkPersistence: a fwmark service groups every port of
// the VIP, and persistence with a /24 netmask keeps a client on one real
// server even under round robin.
func TestDirectordFwmarkPersistence(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	markTo(t, dir, "192.0.2.10", 42)
	runDirectord(t, dir, `
services:
  - name: marked
    fwmark: 42
    scheduler: rr
    persistence: 300s
    persistence_netmask: 255.255.255.0
    real_servers:
      - address: 10.0.1.11
      - address: 10.0.2.12
`)
	save := ipvsadmSave(t, dir)
	if !strings.Contains(save, "-A -f 42 -s rr -p 300 -M 255.255.255.0") {
		t.Fatalf("kernel table:\n%s", save)
	}
	got := client.Fetch("http://192.0.2.10/", 6)
	for _, g := range got[1:] {
		if g != got[0] {
			t.Fatalf("persistence broken: the client saw %v", got)
		}
	}
	// Another port of the same VIP carries the same mark, so the same
	// persistent template sends the client to the same server.
	conn, err := client.DialLines("192.0.2.10:7")
	if err != nil {
		t.Fatal(err)
	}
	echo, err := conn.Exchange("hello", 2e9)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(echo, got[0]+" ") {
		t.Fatalf("port 7 went to %q, port 80 to %q: fwmark persistence spans ports", echo, got[0])
	}
}
