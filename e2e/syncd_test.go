//go:build lab

package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/ipvssync"
	"github.com/directorlb/director/lab/topo"
)

// syncdOpen opens a sync daemon connection inside a host: the netlink
// socket belongs to the namespace it is created in.
func syncdOpen(t *testing.T, h *topo.Host) *ipvssync.SyncConn {
	t.Helper()
	var c *ipvssync.SyncConn
	if err := h.Do(func() (err error) {
		c, err = ipvssync.OpenSync()
		return err
	}); err != nil {
		t.Fatalf("sync daemon connection in %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func syncdList(t *testing.T, c *ipvssync.SyncConn) []ipvssync.SyncDaemon {
	t.Helper()
	ds, err := c.Daemons()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// syncdExpect checks that exactly the given daemons run, as the kernel
// reports them: state, interface and sync id as started, and the
// kernel's defaults for what was left unset.
func syncdExpect(t *testing.T, got []ipvssync.SyncDaemon, want ...ipvssync.SyncDaemon) {
	t.Helper()
	t.Logf("kernel reports %+v", got)
	if got == nil {
		t.Fatal("Daemons returned a nil slice")
	}
	if len(got) != len(want) {
		t.Fatalf("kernel reports %d daemons %+v, want %d", len(got), got, len(want))
	}
	defaultGroup := netip.MustParseAddr("224.0.0.81")
	for _, w := range want {
		found := false
		for _, g := range got {
			if g.State != w.State {
				continue
			}
			found = true
			if g.Interface != w.Interface || g.SyncID != w.SyncID {
				t.Errorf("%s runs on %s syncid %d, want %s syncid %d", g.State, g.Interface, g.SyncID, w.Interface, w.SyncID)
			}
			if g.Group != defaultGroup || g.Port != 8848 || g.TTL != 1 || g.MaxLen == 0 {
				t.Errorf("%s reports group %v port %d ttl %d maxlen %d, want the defaults %v, 8848, 1 and a payload size",
					g.State, g.Group, g.Port, g.TTL, g.MaxLen, defaultGroup)
			}
		}
		if !found {
			t.Errorf("no %s daemon in %+v", w.State, got)
		}
	}
}

// TestSyncDaemonControl: master and backup daemons start, list, restart
// idempotently, stop one at a time, and a missing interface is ENODEV.
func TestSyncDaemonControl(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	dir := n.Host("dir")
	ifName := n.Switch("lan").Plug(dir, "10.0.0.2/24")
	c := syncdOpen(t, dir)

	syncdExpect(t, syncdList(t, c))

	master := ipvssync.SyncDaemon{State: ipvssync.SyncMaster, Interface: ifName, SyncID: 10}
	backup := ipvssync.SyncDaemon{State: ipvssync.SyncBackup, Interface: ifName, SyncID: 10}
	for _, d := range []ipvssync.SyncDaemon{master, backup} {
		if err := c.Start(d); err != nil {
			t.Fatal(err)
		}
	}
	syncdExpect(t, syncdList(t, c), master, backup)

	for _, d := range []ipvssync.SyncDaemon{master, backup} {
		if err := c.Start(d); err != nil {
			t.Fatalf("starting a running %s again: %v", d.State, err)
		}
	}
	other := master
	other.SyncID = 11
	if err := c.Start(other); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("starting a master with another sync id while one runs: %v, want EEXIST", err)
	} else {
		t.Logf("another sync id: %v", err)
	}
	syncdExpect(t, syncdList(t, c), master, backup)

	if err := c.Stop(ipvssync.SyncMaster); err != nil {
		t.Fatal(err)
	}
	syncdExpect(t, syncdList(t, c), backup)
	if err := c.Stop(ipvssync.SyncMaster); err != nil {
		t.Fatalf("stopping a stopped master: %v", err)
	}

	missing := ipvssync.SyncDaemon{State: ipvssync.SyncMaster, Interface: "nosuch0", SyncID: 10}
	err := c.Start(missing)
	if !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("master on a missing interface: %v, want ENODEV", err)
	}
	if want := "start IPVS sync daemon (master on nosuch0, syncid 10): "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q lacks the context %q", err, want)
	}
	t.Logf("missing interface: %v", err)
	syncdExpect(t, syncdList(t, c), backup)

	if err := c.Stop(ipvssync.SyncBackup); err != nil {
		t.Fatal(err)
	}
	syncdExpect(t, syncdList(t, c))
}

// syncdConn is one entry of a namespace's IPVS connection table.
type syncdConn struct {
	Proto                 string
	Client, Virtual, Real netip.AddrPort
	State                 string
	Origin                string // LOCAL or SYNC; only ip_vs_conn_sync has it
}

// syncdConns reads the connection table of h from a thread inside it:
// /proc/net follows the thread-group leader's namespace, thread-self the
// thread's own. file is ip_vs_conn or ip_vs_conn_sync (which adds the
// origin column).
func syncdConns(h *topo.Host, file string) ([]syncdConn, error) {
	var b []byte
	if err := h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/" + file)
		return err
	}); err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var out []syncdConn
	for _, l := range lines[1:] { // the first is the header
		f := strings.Fields(l)
		if len(f) < 9 {
			return nil, fmt.Errorf("%s: short line %q", file, l)
		}
		var ap [3]netip.AddrPort
		for i := range ap {
			a, err := syncdAddrPort(f[1+2*i], f[2+2*i])
			if err != nil {
				return nil, fmt.Errorf("%s: line %q: %w", file, l, err)
			}
			ap[i] = a
		}
		c := syncdConn{Proto: f[0], Client: ap[0], Virtual: ap[1], Real: ap[2], State: f[7]}
		if file == "ip_vs_conn_sync" {
			c.Origin = f[8]
		}
		out = append(out, c)
	}
	return out, nil
}

// syncdAddrPort parses the kernel's %08X address (or %pI6) and %04X port.
func syncdAddrPort(addr, port string) (netip.AddrPort, error) {
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(addr) == 8 {
		v, err := strconv.ParseUint(addr, 16, 32)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), uint16(p)), nil
	}
	a, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// syncdFind returns the entry for the given client, if the table has it.
func syncdFind(conns []syncdConn, client, vip, real netip.AddrPort) (syncdConn, bool) {
	for _, c := range conns {
		if c.Proto == "TCP" && c.Client == client && c.Virtual == vip && c.Real == real {
			return c, true
		}
	}
	return syncdConn{}, false
}

// TestSyncDaemonSyncsConnections: a connection through the director
// running the master daemon appears, marked as synced, in the connection
// table of the director running the backup, which never saw a packet of
// it.
func TestSyncDaemonSyncsConnections(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	lan := n.Switch("lan")
	client, d1, d2, rs := n.Host("client"), n.Host("d1"), n.Host("d2"), n.Host("rs")
	lan.Plug(client, "10.0.0.1/24")
	d1If := lan.Plug(d1, "10.0.0.2/24,10.0.0.100/24")
	d2If := lan.Plug(d2, "10.0.0.3/24")
	rsIf := lan.Plug(rs, "10.0.0.11/24")
	drRealServer(rs, rsIf, "lo", "10.0.0.100")
	rs.ServeEcho(":80")

	vip, real := netip.MustParseAddrPort("10.0.0.100:80"), netip.MustParseAddrPort("10.0.0.11:80")
	svc := tcpService(vip.Addr().String(), vip.Port(), "rr")
	virtualService(t, ipvsIn(t, d1), svc, ipvs.DirectRoute, real.String())
	virtualService(t, ipvsIn(t, d2), svc, ipvs.DirectRoute, real.String())

	// The backup listens before the master speaks.
	if err := syncdOpen(t, d2).Start(ipvssync.SyncDaemon{State: ipvssync.SyncBackup, Interface: d2If, SyncID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := syncdOpen(t, d1).Start(ipvssync.SyncDaemon{State: ipvssync.SyncMaster, Interface: d1If, SyncID: 7}); err != nil {
		t.Fatal(err)
	}

	conn, err := client.DialLines(vip.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := conn.Exchange("hello", 5*time.Second); err != nil || got != "rs hello" {
		t.Fatalf("exchange through d1: %q, %v; want %q", got, err, "rs hello")
	}
	clientAP := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	clientAP = netip.AddrPortFrom(clientAP.Addr().Unmap(), clientAP.Port())

	d1Conns, err := syncdConns(d1, "ip_vs_conn_sync")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := syncdFind(d1Conns, clientAP, vip, real); !ok || c.Origin != "LOCAL" {
		t.Fatalf("d1's table %+v lacks %v -> %v -> %v of local origin", d1Conns, clientAP, vip, real)
	}

	// The master sends what it has every couple of seconds at most.
	deadline := time.Now().Add(30 * time.Second)
	var d2Conns []syncdConn
	for {
		d2Conns, err = syncdConns(d2, "ip_vs_conn")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := syncdFind(d2Conns, clientAP, vip, real); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("d2's table never held %v -> %v -> %v; it holds %+v", clientAP, vip, real, d2Conns)
		}
		time.Sleep(100 * time.Millisecond)
	}
	withOrigin, err := syncdConns(d2, "ip_vs_conn_sync")
	if err != nil {
		t.Fatal(err)
	}
	c, ok := syncdFind(withOrigin, clientAP, vip, real)
	if !ok || c.Origin != "SYNC" {
		t.Fatalf("d2's entry for %v is %+v (found %v), want one of SYNC origin", clientAP, c, ok)
	}
	t.Logf("d2 holds %v -> %v -> %v in state %s, origin %s", c.Client, c.Virtual, c.Real, c.State, c.Origin)
}
