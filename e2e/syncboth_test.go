//go:build lab

package e2e

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/ipvssync"
	"github.com/directorlb/director/lab/topo"
)

// Connection sync among all directors of a bgp group (bgp.sync): every
// director runs the master and the backup daemon at once
// (ipvssync.StartBoth), so a connection any one of them schedules is in
// every other's table, and each still forwards.

const (
	syncBothVIP    = "192.0.2.10"
	syncBothReal   = "10.0.0.11:80"
	syncBothID     = 20
	syncBothGroup  = "224.0.0.81" // the kernel's default, which StartBoth keeps
	syncBothMcPort = 8848
)

// syncBothDirector is one director of the group and the client whose
// route to the VIP goes through it (the router's ECMP choice, fixed).
type syncBothDirector struct {
	h                 *topo.Host
	lanAddr, syncAddr string
	syncIf, lanIf     string
	c                 *ipvssync.SyncConn
	client            *topo.Host
	conn              *topo.Conn
	clientAP          netip.AddrPort
	heard             *syncHeard
	log               *slog.Logger
}

// startBoth runs StartBoth from a thread inside the director, where
// backup_only is read.
func (d *syncBothDirector) startBoth() error {
	return d.h.Do(func() error { return ipvssync.StartBoth(d.c, d.syncIf, syncBothID, d.log) })
}

// syncHeard records the sync messages a director's sync link delivers to
// an ordinary socket of its namespace: sender address and sync id.
type syncHeard struct {
	mu   sync.Mutex
	from map[netip.Addr][]byte // sender -> the sync ids heard from it
}

func (s *syncHeard) ids(a string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.from[netip.MustParseAddr(a)]...)
}

// syncListen joins the sync group on ifName inside h, beside the kernel's
// backup socket (both allow address reuse, and a multicast datagram goes
// to every socket bound to its group and port).
func syncListen(t *testing.T, h *topo.Host, ifName string) *syncHeard {
	t.Helper()
	var pc *net.UDPConn
	if err := h.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		pc, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.ParseIP(syncBothGroup), Port: syncBothMcPort})
		return err
	}); err != nil {
		t.Fatalf("listen to the sync group in %s: %v", h.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &syncHeard{from: map[netip.Addr][]byte{}}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			// struct ip_vs_sync_mesg: reserved, syncid, size, nr_conns,
			// version (1), spare.
			if n < 8 || buf[0] != 0 || buf[5] != 1 {
				continue
			}
			s.mu.Lock()
			a := from.Addr().Unmap()
			s.from[a] = append(s.from[a], buf[1])
			s.mu.Unlock()
		}
	}()
	return s
}

// TestSyncBoth: three directors on a traffic switch and a sync switch,
// each with the same DR service, each running master and backup via
// StartBoth. A connection scheduled by any director appears, synced, in
// the tables of the other two; no director hears its own sync messages;
// each director still forwards new and established connections
// (backup_only stays 0). StartBoth refuses backup_only=1, restarts
// daemons of another configuration and adopts its own.
func TestSyncBoth(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	lan, syncSw := n.Switch("lan"), n.Switch("sync")
	rs := n.Host("rs")
	rsIf := lan.Plug(rs, "10.0.0.11/24")
	drRealServer(rs, rsIf, "lo", syncBothVIP)
	rs.ServeEcho(":80")

	vip := netip.AddrPortFrom(netip.MustParseAddr(syncBothVIP), 80)
	real := netip.MustParseAddrPort(syncBothReal)
	svc := tcpService(syncBothVIP, 80, "rr")

	var ds []*syncBothDirector
	for i := range 3 {
		d := &syncBothDirector{
			h:        n.Host(fmt.Sprintf("d%d", i+1)),
			lanAddr:  fmt.Sprintf("10.0.0.%d", 2+i),
			syncAddr: fmt.Sprintf("10.0.1.%d", 2+i),
			client:   n.Host(fmt.Sprintf("c%d", i+1)),
		}
		d.lanIf = lan.Plug(d.h, d.lanAddr+"/24")
		d.syncIf = syncSw.Plug(d.h, d.syncAddr+"/24")
		// Held on lo as in bgp mode; nobody asks ARP for it: the
		// clients route it through their director.
		d.h.Addr("lo", syncBothVIP+"/32")
		virtualService(t, ipvsIn(t, d.h), svc, ipvs.DirectRoute, real.String())
		d.c = syncdOpen(t, d.h)
		d.log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("director", d.h.Name)
		lan.Plug(d.client, fmt.Sprintf("10.0.0.%d/24", 21+i))
		d.client.Route(syncBothVIP+"/32", d.lanAddr)
		ds = append(ds, d)
	}
	d1, d2, d3 := ds[0], ds[1], ds[2]
	want := func(d *syncBothDirector) []ipvssync.SyncDaemon {
		return []ipvssync.SyncDaemon{
			{State: ipvssync.SyncMaster, Interface: d.syncIf, SyncID: syncBothID},
			{State: ipvssync.SyncBackup, Interface: d.syncIf, SyncID: syncBothID},
		}
	}

	// Why backup_only must stay 0: with it set, a running backup daemon
	// turns IPVS off and the VIP's packets go to the local stack.
	d3.h.Sysctl("net.ipv4.vs.backup_only", "1")
	if err := d3.c.Start(ipvssync.SyncDaemon{State: ipvssync.SyncBackup, Interface: d3.syncIf, SyncID: syncBothID}); err != nil {
		t.Fatal(err)
	}
	if c, err := d3.client.DialLines(vip.String()); err == nil {
		got, err := c.Exchange("hello", 2*time.Second)
		c.Close()
		if err == nil {
			t.Fatalf("backup_only=1 with a backup daemon: d3 still forwarded (%q); the premise of the check is wrong", got)
		}
	} else {
		t.Logf("backup_only=1 with a backup daemon, d3 forwards nothing: %v", err)
	}
	// StartBoth refuses it, stopping the backup, and runs the master.
	err := d3.startBoth()
	if !errors.Is(err, ipvssync.ErrBackupOnly) {
		t.Fatalf("StartBoth with backup_only=1: %v, want ErrBackupOnly", err)
	}
	t.Logf("StartBoth with backup_only=1: %v", err)
	syncdExpect(t, syncdList(t, d3.c), want(d3)[0])
	d3.h.Sysctl("net.ipv4.vs.backup_only", "0")

	// d2 runs daemons of another configuration, as left by an older
	// config or by hand: StartBoth restarts them.
	for _, st := range []ipvssync.SyncState{ipvssync.SyncMaster, ipvssync.SyncBackup} {
		if err := d2.c.Start(ipvssync.SyncDaemon{State: st, Interface: d2.lanIf, SyncID: syncBothID + 1}); err != nil {
			t.Fatal(err)
		}
	}

	for _, d := range ds {
		if err := d.startBoth(); err != nil {
			t.Fatalf("StartBoth in %s: %v", d.h.Name, err)
		}
		syncdExpect(t, syncdList(t, d.c), want(d)...)
	}
	// A directord restart: the daemons are adopted as they run.
	for _, d := range ds {
		if err := d.startBoth(); err != nil {
			t.Fatalf("StartBoth again in %s: %v", d.h.Name, err)
		}
		syncdExpect(t, syncdList(t, d.c), want(d)...)
	}

	for _, d := range ds {
		d.heard = syncListen(t, d.h, d.syncIf)
	}

	// One connection through each director.
	for _, d := range ds {
		c, err := d.client.DialLines(vip.String())
		if err != nil {
			t.Fatalf("%s through %s: %v", d.client.Name, d.h.Name, err)
		}
		for range 2 {
			if got, err := c.Exchange("hello", 5*time.Second); err != nil || got != "rs hello" {
				t.Fatalf("%s through %s: %q, %v; want %q", d.client.Name, d.h.Name, got, err, "rs hello")
			}
		}
		d.conn = c
		ap := c.LocalAddr().(*net.TCPAddr).AddrPort()
		d.clientAP = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}

	// Each connection is local on its director and synced into the
	// other two.
	for _, d := range ds {
		conns, err := syncdConns(d.h, "ip_vs_conn_sync")
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := syncdFind(conns, d.clientAP, vip, real); !ok || c.Origin != "LOCAL" {
			t.Fatalf("%s's table %+v lacks %v -> %v -> %v of local origin", d.h.Name, conns, d.clientAP, vip, real)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, from := range ds {
		for _, to := range ds {
			if to == from {
				continue
			}
			for {
				conns, err := syncdConns(to.h, "ip_vs_conn_sync")
				if err != nil {
					t.Fatal(err)
				}
				c, ok := syncdFind(conns, from.clientAP, vip, real)
				if ok && c.Origin == "SYNC" {
					t.Logf("%s holds %s's %v -> %v -> %v, %s, origin %s", to.h.Name, from.h.Name, c.Client, c.Virtual, c.Real, c.State, c.Origin)
					break
				}
				if ok {
					t.Fatalf("%s holds %s's connection %+v, but not of SYNC origin", to.h.Name, from.h.Name, c)
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never held %s's %v -> %v -> %v; it holds %+v", to.h.Name, from.h.Name, from.clientAP, vip, real, conns)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	// Every director heard the other two masters, all with the group's
	// sync id, and never its own: the kernel's master socket has
	// IP_MULTICAST_LOOP off (make_send_sock). By now each master has sent
	// (the others hold its connection), so its own silence is not a race.
	time.Sleep(500 * time.Millisecond)
	for _, d := range ds {
		if own := d.heard.ids(d.syncAddr); len(own) != 0 {
			t.Errorf("%s heard %d of its own sync messages", d.h.Name, len(own))
		}
		for _, o := range ds {
			if o == d {
				continue
			}
			ids := d.heard.ids(o.syncAddr)
			if len(ids) == 0 {
				t.Errorf("%s heard no sync message from %s", d.h.Name, o.h.Name)
			}
			for _, id := range ids {
				if id != syncBothID {
					t.Errorf("%s heard sync id %d from %s, want %d", d.h.Name, id, o.h.Name, syncBothID)
				}
			}
		}
		t.Logf("%s heard %d, %d and %d messages from %s, %s and %s", d.h.Name,
			len(d.heard.ids(d1.syncAddr)), len(d.heard.ids(d2.syncAddr)), len(d.heard.ids(d3.syncAddr)),
			d1.h.Name, d2.h.Name, d3.h.Name)
	}

	// Forwarding goes on: the established connections and new ones,
	// through every director, with backup_only still 0.
	for _, d := range ds {
		if v := strings.TrimSpace(d.h.ReadSysctl("net.ipv4.vs.backup_only")); v != "0" {
			t.Errorf("%s: backup_only is %s, want 0", d.h.Name, v)
		}
		if got, err := d.conn.Exchange("again", 5*time.Second); err != nil || got != "rs again" {
			t.Errorf("established connection through %s: %q, %v", d.h.Name, got, err)
		}
		c, err := d.client.DialLines(vip.String())
		if err != nil {
			t.Errorf("new connection through %s: %v", d.h.Name, err)
			continue
		}
		if got, err := c.Exchange("new", 5*time.Second); err != nil || got != "rs new" {
			t.Errorf("new connection through %s: %q, %v", d.h.Name, got, err)
		}
		c.Close()
	}
}
