//go:build lab

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
	"github.com/directorlb/director/vip"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a VIP guard and as a director holding VIPs
// under one, chosen by its first argument (see vipHelpers).
const (
	vipGuardArg  = "__e2e_vip_guard"
	vipParentArg = "__e2e_vip_parent" // then: IFNAME CIDR...
)

func init() {
	// init, not TestMain, so that no other file's TestMain is needed.
	if len(os.Args) >= 2 {
		switch os.Args[1] {
		case vipGuardArg:
			os.Exit(vipGuardMain())
		case vipParentArg:
			os.Exit(vipParentMain(os.Args[2:]))
		}
	}
}

// vipGuardMain is what directord -vip-guard does.
func vipGuardMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := vip.RunGuard(os.Stdin, log); err != nil {
		log.Error("guard", "err", err)
		return 1
	}
	return 0
}

// vipParentMain plays directord: it starts a guard, acquires the VIPs
// under it, says "held" on stdout and waits for its stdin to end.
func vipParentMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(args) < 2 {
		log.Error("usage: IFNAME CIDR...")
		return 2
	}
	var vips []vip.VIP
	for _, c := range args[1:] {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			log.Error("parse", "err", err)
			return 2
		}
		vips = append(vips, vip.VIP{Prefix: p, Interface: args[0]})
	}
	self, err := os.Executable()
	if err != nil {
		log.Error("executable", "err", err)
		return 2
	}
	ctx := context.Background()
	g, err := vip.StartGuard(ctx, []string{self, vipGuardArg}, log)
	if err != nil {
		log.Error("guard", "err", err)
		return 2
	}
	if err := vip.NewVIPs(vips, log, vip.WithGuard(g)).Acquire(ctx); err != nil {
		log.Error("acquire", "err", err)
		return 2
	}
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func vipLogger(host string) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", host)
}

// vipAcquire acquires inside h, whose namespace the announcement
// sockets must be opened in.
func vipAcquire(t *testing.T, h *topo.Host, v *vip.VIPs) {
	t.Helper()
	if err := h.Do(func() error { return v.Acquire(t.Context()) }); err != nil {
		t.Fatalf("%s acquires: %v", h.Name, err)
	}
}

func vipHeld(t *testing.T, who string, v *vip.VIPs, want []vip.VIP) {
	t.Helper()
	got, err := v.Held()
	if err != nil {
		t.Fatalf("%s Held: %v", who, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %v, want %v", who, got, want)
	}
}

// vipAddrsOn lists the addresses on ifName, as the kernel has them.
func vipAddrsOn(t *testing.T, h *topo.Host, ifName string) []string {
	t.Helper()
	l, err := h.Netlink().LinkByName(ifName)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.Netlink().AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

// vipNeighbour reads h's neighbour entry for ip: hardware address and
// NUD state.
func vipNeighbour(t *testing.T, h *topo.Host, ip string) (net.HardwareAddr, int) {
	t.Helper()
	want := net.ParseIP(ip)
	fam := netlink.FAMILY_V4
	if want.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	neighs, err := h.Netlink().NeighList(0, fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.Equal(want) {
			return n.HardwareAddr, n.State
		}
	}
	return nil, 0
}

// vipEcho has the client talk to the echo service at addr and returns
// the name of the host that answered. The connection ends with a reset,
// so the client has nothing left to send to that address afterwards: no
// FIN to retransmit, nothing that would make it resolve the address
// again.
func vipEcho(t *testing.T, client *topo.Host, addr string) string {
	t.Helper()
	c, err := client.DialLines(addr)
	if err != nil {
		t.Fatalf("client connects to %s: %v", addr, err)
	}
	got, err := c.Exchange("hi", 5*time.Second)
	if err != nil {
		t.Fatalf("echo on %s: %v", addr, err)
	}
	if err := c.Conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	name, rest, _ := strings.Cut(got, " ")
	if rest != "hi" {
		t.Fatalf("echo on %s answered %q", addr, got)
	}
	return name
}

// TestVIPTakeoverAnnounces: two directors and a client on one switch.
// d1 holds the VIPs and the client talks to it; d1 releases and d2
// acquires, and the client's neighbour entries for both VIPs turn to
// d2's hardware address without the client asking: the gratuitous ARP
// and the unsolicited neighbour advertisement did it. Then the client
// reaches d2 on the VIPs.
func TestVIPTakeoverAnnounces(t *testing.T) {
	n := topo.New(t)
	d1, d2, client := n.Host("d1"), n.Host("d2"), n.Host("client")
	sw := n.Switch("lan")
	if1 := sw.Plug(d1, "192.0.2.1/24,2001:db8::1/64")
	if2 := sw.Plug(d2, "192.0.2.2/24,2001:db8::2/64")
	sw.Plug(client, "192.0.2.100/24,2001:db8::100/64")
	v4, v6 := netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")
	on1 := []vip.VIP{{Prefix: v4, Interface: if1}, {Prefix: v6, Interface: if1}}
	on2 := []vip.VIP{{Prefix: v4, Interface: if2}, {Prefix: v6, Interface: if2}}
	vips1 := vip.NewVIPs(on1, vipLogger("d1"), vip.WithAddrTable(d1.Netlink()))
	vips2 := vip.NewVIPs(on2, vipLogger("d2"), vip.WithAddrTable(d2.Netlink()))
	mac1, mac2 := d1.MAC(if1), d2.MAC(if2)
	echo4, echo6 := "192.0.2.10:7", "[2001:db8::10]:7"

	// Left there before: acquiring it anyway is fine.
	d1.Addr(if1, "192.0.2.10/24")
	vipAcquire(t, d1, vips1)
	vipHeld(t, "d1", vips1, on1)
	vipHeld(t, "d2", vips2, nil)

	d1.ServeEcho(echo4)
	d1.ServeEcho(echo6)
	for _, addr := range []string{echo4, echo6} {
		if who := vipEcho(t, client, addr); who != "d1" {
			t.Fatalf("%s answered on %s, want d1", who, addr)
		}
	}
	for _, ip := range []string{"192.0.2.10", "2001:db8::10"} {
		if got := client.Neighbor(ip); !bytes.Equal(got, mac1) {
			t.Fatalf("client has %s at %v, want d1's %s", ip, got, mac1)
		}
	}

	if err := vips1.Release(nil); err != nil {
		t.Fatalf("d1 releases: %v", err)
	}
	vipHeld(t, "d1", vips1, nil)
	if err := vips1.Release(nil); err != nil {
		t.Errorf("d1 releases again, holding nothing: %v", err)
	}

	// Watch the client's neighbour table from before d2 acquires.
	updates := make(chan netlink.NeighUpdate, 64)
	stop := make(chan struct{})
	defer close(stop)
	ns := client.NS()
	if err := netlink.NeighSubscribeWithOptions(updates, stop, netlink.NeighSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	vipAcquire(t, d2, vips2)
	vipHeld(t, "d2", vips2, on2)

	pending := map[string]bool{"192.0.2.10": true, "2001:db8::10": true}
	timeout := time.After(15 * time.Second)
	for len(pending) > 0 {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("neighbour subscription ended")
			}
			if u.Type == unix.RTM_NEWNEIGH && pending[u.IP.String()] && bytes.Equal(u.HardwareAddr, mac2) {
				t.Logf("client: %s now at %s, %v after d2 began to acquire", u.IP, mac2, time.Since(start))
				delete(pending, u.IP.String())
			}
		case <-timeout:
			t.Fatalf("client's neighbour entries for %v never turned to d2's %s", pending, mac2)
		}
	}
	for _, ip := range []string{"192.0.2.10", "2001:db8::10"} {
		mac, state := vipNeighbour(t, client, ip)
		if !bytes.Equal(mac, mac2) {
			t.Errorf("client has %s at %s, want d2's %s", ip, mac, mac2)
		}
		// An answer to the client's own solicitation would have made
		// the entry REACHABLE; an unsolicited announcement leaves it
		// STALE.
		if state != netlink.NUD_STALE {
			t.Errorf("client's entry for %s is in state %#x, want STALE %#x (learnt unasked)", ip, state, netlink.NUD_STALE)
		}
	}

	d2.ServeEcho(echo4)
	d2.ServeEcho(echo6)
	for _, addr := range []string{echo4, echo6} {
		if who := vipEcho(t, client, addr); who != "d2" {
			t.Errorf("%s answered on %s after the takeover, want d2", who, addr)
		}
	}

	// A VIP left on d2 from before, at another prefix length, is still
	// the VIP: Held sees it and Release removes it.
	if err := vips2.Release(nil); err != nil {
		t.Fatalf("d2 releases: %v", err)
	}
	d2.Addr(if2, "192.0.2.10/32")
	d2.Addr(if2, "2001:db8::10/128")
	vipHeld(t, "d2 (by hand)", vips2, on2)
	if err := vips2.Release(nil); err != nil {
		t.Fatalf("d2 releases what was left: %v", err)
	}
	vipHeld(t, "d2", vips2, nil)
	for _, a := range vipAddrsOn(t, d2, if2) {
		if strings.HasPrefix(a, "192.0.2.10/") || strings.HasPrefix(a, "2001:db8::10/") {
			t.Errorf("d2 still has %s on %s", a, if2)
		}
	}
}

// TestVIPGuardRemovesOnParentDeath: a director (this binary as
// vipParentMain) acquires the VIPs under a guard and is killed with
// SIGKILL, its whole process group with it; the guard, in a group of its
// own, removes the VIPs from the interface and exits.
func TestVIPGuardRemovesOnParentDeath(t *testing.T) {
	n := topo.New(t)
	dir, peer := n.Host("dir"), n.Host("peer")
	ifName, _ := n.Link(dir, "192.0.2.1/24,2001:db8::1/64", peer, "192.0.2.2/24,2001:db8::2/64")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, vipParentArg, ifName, "192.0.2.10/24", "2001:db8::10/64")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil { // held open: the director waits on it
		t.Fatal(err)
	}
	p, err := dir.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("director said %q, %v; want held", line, err)
	}
	has := func(ip string) bool {
		return slices.ContainsFunc(vipAddrsOn(t, dir, ifName), func(a string) bool { return strings.HasPrefix(a, ip+"/") })
	}
	if !has("192.0.2.10") || !has("2001:db8::10") {
		t.Fatalf("director holds %v, want both VIPs", vipAddrsOn(t, dir, ifName))
	}

	updates := make(chan netlink.AddrUpdate, 64)
	stop := make(chan struct{})
	defer close(stop)
	ns := dir.NS()
	if err := netlink.AddrSubscribeWithOptions(updates, stop, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pending := map[string]bool{"192.0.2.10": true, "2001:db8::10": true}
	timeout := time.After(15 * time.Second)
	for len(pending) > 0 {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("address subscription ended")
			}
			if !u.NewAddr {
				delete(pending, u.LinkAddress.IP.String())
			}
		case <-timeout:
			t.Fatalf("%v still on %s after the director's death: %v", pending, ifName, vipAddrsOn(t, dir, ifName))
		}
	}
	if has("192.0.2.10") || has("2001:db8::10") {
		t.Errorf("VIPs back on %s: %v", ifName, vipAddrsOn(t, dir, ifName))
	}
	if !has("192.0.2.1") || !has("2001:db8::1") {
		t.Errorf("the guard removed more than the VIPs: %v", vipAddrsOn(t, dir, ifName))
	}
	// The director's stderr, which the guard shares, ends only when the
	// guard has exited too.
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Error("the guard did not exit after removing the VIPs")
	}
}

// TestProbeVIPsSeesHolders: before a takeover, the probe finds every VIP
// another host still holds, IPv4 (ARP) and IPv6 (neighbour solicitation),
// each for the whole window, and finds nothing once they are gone.
func TestProbeVIPsSeesHolders(t *testing.T) {
	n := topo.New(t)
	prober, holder := n.Host("prober"), n.Host("holder")
	for _, h := range []*topo.Host{prober, holder} {
		// The neighbour solicitation goes out from the link-local
		// address, which is usable only once duplicate address
		// detection is over: on a fresh link, skip it.
		h.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	}
	sw := n.Switch("lan")
	ifP := sw.Plug(prober, "192.0.2.1/24,2001:db8::1/64")
	ifH := sw.Plug(holder, "192.0.2.2/24,2001:db8::2/64")
	prober.WaitIPv6(ifP, 5*time.Second)
	holder.WaitIPv6(ifH, 5*time.Second)
	cidrs := []string{"192.0.2.10/24", "192.0.2.11/24", "2001:db8::10/64", "2001:db8::11/64"}
	var vips []vip.VIP
	for _, c := range cidrs {
		vips = append(vips, vip.VIP{Prefix: netip.MustParsePrefix(c), Interface: ifP})
	}
	probe := func() map[netip.Addr]string {
		t.Helper()
		var answers []vip.VIPAnswer
		if err := prober.Do(func() (err error) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			answers, err = vip.ProbeVIPs(ctx, vips)
			return err
		}); err != nil {
			t.Fatalf("probe: %v", err)
		}
		got := map[netip.Addr]string{}
		for _, a := range answers {
			got[a.VIP.Prefix.Addr()] = a.MAC.String()
		}
		return got
	}
	if got := probe(); len(got) != 0 {
		t.Fatalf("nobody holds the VIPs, yet the probe found %v", got)
	}
	for _, c := range cidrs {
		holder.Addr(ifH, c)
	}
	got := probe()
	mac := holder.MAC(ifH).String()
	for _, v := range vips {
		if got[v.Prefix.Addr()] != mac {
			t.Errorf("%s: answered by %q, want the holder's %s (all answers: %v)", v.Prefix.Addr(), got[v.Prefix.Addr()], mac, got)
		}
	}
	for _, c := range cidrs {
		holder.DelAddr(ifH, c)
	}
	if got := probe(); len(got) != 0 {
		t.Errorf("the holder let the VIPs go, yet the probe found %v", got)
	}
}
