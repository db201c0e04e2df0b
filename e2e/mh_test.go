//go:build lab

package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/directorlb/director/lab/topo"
)

// TestMHSameChoiceEverywhere: two directors in bgp mode (the router is
// down: nobody answers at the peer's address) with the same mh service,
// reached by different histories, pick the same real server for each of
// 400 flows with a server down, and 400 once it is up again. d1 starts fresh. d2 starts with one server short and another
// failing its check, sees it recover, is reloaded with the missing server
// (a key in the middle), then is killed -9 while someone reorders its
// table with ipvsadm (a server re-added at 0, another's weight edited),
// and restarts adopting that table.
func TestMHSameChoiceEverywhere(t *testing.T) {
	t.Parallel()
	const vip = "192.0.2.10"
	n := topo.New(t)
	lan := n.Switch("lan")
	d1, d2, rs := n.Host("d1"), n.Host("d2"), n.Host("rs")
	lan.Plug(d1, "10.0.0.2/24")
	lan.Plug(d2, "10.0.0.3/24")
	rsIf := lan.Plug(rs, "10.0.0.21/24,10.0.0.23/24,10.0.0.24/24,10.0.0.25/24")
	rs.ServeHTTP(":80") // the checks' target; the SYNs below are dropped there
	// Each director has its own client, with the same addresses: a flow
	// is the same (source, port) on both.
	var clients []*topo.Host
	for _, d := range []*topo.Host{d1, d2} {
		c := n.Host("c" + d.Name)
		n.Link(c, "10.1.0.1/24,10.1.0.101/24,10.1.0.102/24,10.1.0.103/24", d, "10.1.0.2/24")
		c.Route(vip+"/32", "10.1.0.2")
		d.Addr("lo", vip+"/32")
		clients = append(clients, c)
	}
	servers := []string{"10.0.0.21", "10.0.0.22", "10.0.0.23", "10.0.0.24", "10.0.0.25"}
	config := func(h *topo.Host, dir string, reals []string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "state_dir: %s\ncontrol: {socket: %s}\nmetrics: {listen: \"\"}\nipvs: {reconcile_interval: 1s}\n",
			filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock"))
		fmt.Fprintf(&b, "bgp:\n  asn: 65001\n  router_id: %s\n  peers: [{address: 10.0.0.254, asn: 65000}]\n", map[string]string{"d1": "10.0.0.2", "d2": "10.0.0.3"}[h.Name])
		fmt.Fprintf(&b, "services:\n  - name: web\n    vip: %s\n    port: 80\n    forward: dr\n    check: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}\n    real_servers:\n", vip)
		// Weights follow the server, not its place in the list.
		for _, a := range reals {
			fmt.Fprintf(&b, "      - {address: %s, weight: %d}\n", a, 1+slices.Index(servers, a)%3)
		}
		return b.String()
	}

	dir1, dir2 := t.TempDir(), t.TempDir()
	// d2: .23 missing from the config, .22 failing its check (its address
	// is not up yet).
	short := []string{"10.0.0.21", "10.0.0.22", "10.0.0.24", "10.0.0.25"}
	p2 := writeConfig(t, dir2, config(d2, dir2, short))
	dd2 := startDirectord(t, d2, p2)
	waitWeight(t, d2, "10.0.0.22:80", 0)
	time.Sleep(time.Second) // a few failed checks
	rs.Addr(rsIf, "10.0.0.22/24")
	waitWeight(t, d2, "10.0.0.22:80", 2)
	// Reload with .23, whose key sorts in the middle.
	writeConfig(t, dir2, config(d2, dir2, servers))
	if err := dd2.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitWeight(t, d2, "10.0.0.23:80", 3)
	// Killed -9; someone re-adds .21 at weight 0 (to the head, last_weight
	// 0) and edits .24's weight; the restart adopts that.
	dd2.proc.Kill()
	svc := vip + ":80"
	must(t, d2, "/bin/ipvsadm", "-d", "-t", svc, "-r", "10.0.0.21:80")
	must(t, d2, "/bin/ipvsadm", "-a", "-t", svc, "-r", "10.0.0.21:80", "-g", "-w", "0")
	must(t, d2, "/bin/ipvsadm", "-e", "-t", svc, "-r", "10.0.0.24:80", "-g", "-w", "7")
	must(t, d2, "/bin/ipvsadm", "-e", "-t", svc, "-r", "10.0.0.24:80", "-g", "-w", "0")
	if got := listOrder(t, d2); got[0] != "10.0.0.21:80" {
		t.Fatalf("the table was not reordered before the restart: %v", got)
	}
	// .24 fails while d2 is down and before d1 starts: both learn it
	// down, d2 from a table where it was quiesced with another weight,
	// d1 never having seen it up.
	rs.DelAddr(rsIf, "10.0.0.24/24")
	startDirectord(t, d2, p2)
	startDirectord(t, d1, writeConfig(t, dir1, config(d1, dir1, servers)))

	weight := map[string]int{"10.0.0.21": 1, "10.0.0.22": 2, "10.0.0.23": 3, "10.0.0.24": 1, "10.0.0.25": 2}
	dirs := []*topo.Host{d1, d2}
	settle := func(down string) {
		t.Helper()
		for _, d := range dirs {
			for _, s := range servers {
				w := weight[s]
				if s == down {
					w = 0
				}
				waitWeight(t, d, s+":80", w)
			}
		}
	}
	settle("10.0.0.24")
	want := []string{"10.0.0.25:80", "10.0.0.24:80", "10.0.0.23:80", "10.0.0.22:80", "10.0.0.21:80"}
	for _, d := range dirs {
		if got := listOrder(t, d); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: kernel list %v, want the canonical %v", d.Name, got, want)
		}
		if got := d.ReadSysctl("net.ipv4.vs.sloppy_tcp"); got != "1" {
			t.Errorf("%s: net.ipv4.vs.sloppy_tcp = %s, want 1", d.Name, got)
		}
	}
	// With .24 down (its flows fall back), then up again.
	sameChoices(t, clients, dirs, netip.MustParseAddrPort(svc), 31000, 4)
	rs.Addr(rsIf, "10.0.0.24/24")
	settle("")
	sameChoices(t, clients, dirs, netip.MustParseAddrPort(svc), 32000, 5)
}

// sameChoices sends 400 flows (4 source addresses × 100 ports from
// base), one SYN each, through each client to its director, and fails
// unless every director's connection table shows the same real server
// for each flow, with servers of them in use.
func sameChoices(t *testing.T, clients, dirs []*topo.Host, vip netip.AddrPort, base uint16, servers int) {
	t.Helper()
	var flows []netip.AddrPort
	for _, a := range []string{"10.1.0.1", "10.1.0.101", "10.1.0.102", "10.1.0.103"} {
		for p := range uint16(100) {
			flows = append(flows, netip.AddrPortFrom(netip.MustParseAddr(a), base+p))
		}
	}
	chose := make([]map[string]string, len(dirs))
	for i, c := range clients {
		sendSYNs(t, c, flows, vip)
		deadline := time.Now().Add(5 * time.Second)
		for {
			chose[i] = connDests(t, dirs[i])
			if len(chose[i]) >= len(flows) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	differ, used := 0, map[string]int{}
	for _, f := range flows {
		a, b := chose[0][f.String()], chose[1][f.String()]
		if a == "" || b == "" {
			t.Errorf("flow %s: not scheduled (d1 %q, d2 %q)", f, a, b)
			continue
		}
		used[a]++
		if a != b {
			differ++
			if differ <= 5 {
				t.Errorf("flow %s: d1 chose %s, d2 chose %s", f, a, b)
			}
		}
	}
	t.Logf("ports from %d: %d flows, %d chosen differently; spread %v", base, len(flows), differ, used)
	if differ > 0 {
		t.Fatalf("%d of %d flows reach another real server on d2", differ, len(flows))
	}
	if len(used) != servers {
		t.Fatalf("the flows did not reach %d real servers: %v", servers, used)
	}
}

// waitWeight waits until the kernel in h holds the destination at weight.
func waitWeight(t *testing.T, h *topo.Host, dest string, weight int) {
	t.Helper()
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out = must(t, h, "/bin/ipvsadm", "-Ln")
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == "->" && f[1] == dest && f[3] == fmt.Sprint(weight) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s never at weight %d:\n%s", h.Name, dest, weight, out)
}

// listOrder is the destinations of the only service in h, in the
// kernel's list order: /proc/net/ip_vs walks the list from its head
// (ipvsadm may sort).
func listOrder(t *testing.T, h *topo.Host) []string {
	t.Helper()
	var b []byte
	if err := h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/ip_vs")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		// "  -> 0A000015:0050      Route   1      0          0"
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "->" {
			continue
		}
		ip, port, ok := strings.Cut(f[1], ":")
		if !ok || len(ip) != 8 {
			continue
		}
		out = append(out, hexAddrPort(ip, port))
	}
	return out
}

// hexAddrPort reads an IPv4 address and port as /proc/net/ip_vs* print them.
func hexAddrPort(ipHex, portHex string) string {
	var ip uint32
	var port uint16
	if _, err := fmt.Sscanf(ipHex+" "+portHex, "%x %x", &ip, &port); err != nil {
		return ""
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, ip))), port).String()
}

// sendSYNs sends one SYN per flow from c to dst: a non-blocking connect
// from each flow's source, closed again once all are sent (nobody answers:
// the real servers do not hold the VIP).
func sendSYNs(t *testing.T, c *topo.Host, flows []netip.AddrPort, dst netip.AddrPort) {
	t.Helper()
	err := c.Do(func() error {
		var fds []int
		defer func() {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}()
		for i, f := range flows {
			if i > 0 && i%200 == 0 { // stay well under the open files limit
				time.Sleep(200 * time.Millisecond)
				for _, fd := range fds {
					unix.Close(fd)
				}
				fds = fds[:0]
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return err
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(f.Port()), Addr: f.Addr().As4()}); err != nil {
				return fmt.Errorf("bind %s: %w", f, err)
			}
			if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}); err != nil && err != unix.EINPROGRESS {
				return fmt.Errorf("connect from %s: %w", f, err)
			}
		}
		time.Sleep(300 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// connDests maps each client (address:port) in h's IPVS connection table
// to the real server it was scheduled to.
func connDests(t *testing.T, h *topo.Host) map[string]string {
	t.Helper()
	var b []byte
	if err := h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		// Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires ...
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != "TCP" || f[3] != "C000020A" {
			continue
		}
		out[hexAddrPort(f[1], f[2])] = hexAddrPort(f[5], f[6])
	}
	return out
}
