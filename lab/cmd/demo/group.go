package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/directorlb/director/lab/topo"
)

// The third act: scale-out. Three directors, every one active, announce
// the VIP over BGP (with BFD) to a BIRD router that spreads the clients'
// flows over them by ECMP; every director picks the same real server for
// a flow (mh) and holds the others' connections (sync), so long-lived
// connections keep going while one director is killed and comes back and
// another is drained and enabled. Each step is shown from the router's
// table and from the client's side, and the act fails if the router
// lacks a next hop or a connection breaks.

const (
	groupVIP       = "192.0.2.10"
	groupPort      = "7"
	groupRouter    = "10.0.1.1"
	groupLongLived = 30
)

// groupConfig is a director's file (%[1]d its number, %[2]s its directory,
// %[3]s its address, %[4]s its group interface, %[5]s the key directory);
// deploy/examples/group/ has the production version.
const groupConfig = `node: d%[1]d
state_dir: %[2]s/state
control: {socket: %[2]s/ctl.sock}
metrics: {listen: ""}
defaults:
  check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}
bgp:
  asn: 65001
  router_id: %[3]s
  peers:
    - address: 10.0.1.1
      asn: 65000
      bfd: {interval: 100ms, multiplier: 3}
      password_file: %[5]s/bgp.key
  drain_time: 3s
  sync: {interface: %[4]s, sync_id: 20}
  group: {links: [{interface: %[4]s, multicast: 239.192.0.19}], auth_key_file: %[5]s/authkey}
services:
  - name: echo
    vip: 192.0.2.10
    port: 7
    forward: dr                  # scheduler: mh, the default in bgp mode
    real_servers: [{address: 10.0.1.11}, {address: 10.0.1.12}, {address: 10.0.1.13}]
`

// groupBIRD is the router's BIRD 2 configuration (%[1]s its log file):
// ECMP into the kernel, BFD, one session per director taking only the
// VIP's /32 and sending nothing.
const groupBIRD = `log "%[1]s" all;
router id 10.0.1.1;
define DIRECTOR_VIPS = [ 192.0.2.10/32 ];
filter director_vips { if net ~ DIRECTOR_VIPS then accept; reject; }
protocol device { }
protocol kernel {
	ipv4 { import none; export where source = RTS_BGP; };
	merge paths on;                        # one route, a next hop per director
}
protocol bfd { interface "eth*" { interval 100 ms; multiplier 3; }; }
template bgp director {
	local as 65000;
	hold time 3;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;
	password "demo-bgp-md5";
	ipv4 { import filter director_vips; export none; };
}
protocol bgp d1 from director { neighbor 10.0.1.2 as 65001; }
protocol bgp d2 from director { neighbor 10.0.1.3 as 65001; }
protocol bgp d3 from director { neighbor 10.0.1.4 as 65001; }
`

// groupDir is one director of the group.
type groupDir struct {
	name, addr, dir, sock, cfg string
	h                          *topo.Host
	log                        *topo.LogWatch
	proc                       *topo.Proc
}

// groupAct is the act's network and the router's BIRD.
type groupAct struct {
	tb       *demoTB
	router   *topo.Host
	client   *topo.Host
	dirs     []*groupDir
	birdSock string
}

func runGroup(tb *demoTB, tmp string) {
	section("act 3: three directors behind a BIRD router (BGP + ECMP), every one active")
	actStart := time.Now()
	n := topo.New(tb)
	a := &groupAct{tb: tb, router: n.Host("router"), client: n.Host("client")}
	fabric, grp := n.Switch("fabric"), n.Switch("group")
	a.router.Sysctl("net.ipv4.ip_forward", "1")
	// ECMP by the flow's addresses and ports (L4), not by addresses only:
	// one client's connections spread over the directors too.
	a.router.Sysctl("net.ipv4.fib_multipath_hash_policy", "1")
	n.Link(a.client, "198.51.100.2/24", a.router, "198.51.100.1/24")
	a.client.Route("default", "198.51.100.1")
	fabric.Plug(a.router, groupRouter+"/24")
	fmt.Println("client 198.51.100.2 -> router 10.0.1.1 (BIRD, ECMP) -> d1 10.0.1.2, d2 10.0.1.3, d3 10.0.1.4 (VIP 192.0.2.10)")
	fmt.Println("-> rs1 10.0.1.11, rs2 10.0.1.12, rs3 10.0.1.13 (DR: they answer the client through the router);")
	fmt.Println("the directors' group heartbeats and connection sync run on a second switch (10.0.2.0/24)")

	keys := filepath.Join(tmp, "group-keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		tb.Fatalf("%v", err)
	}
	for name, body := range map[string]string{"bgp.key": "demo-bgp-md5\n", "authkey": "demo group shared secret, 32 bytes\n"} {
		if err := os.WriteFile(filepath.Join(keys, name), []byte(body), 0o600); err != nil {
			tb.Fatalf("%v", err)
		}
	}
	for i := range 3 {
		rs := n.Host(fmt.Sprintf("rs%d", i+1))
		fabric.Plug(rs, fmt.Sprintf("10.0.1.1%d/24", i+1))
		rs.Route("default", groupRouter)
		if out, err := output(rs, "/bin/realserver", "up", "--mode", "dr", "--vip", groupVIP,
			"--state="+filepath.Join(tmp, rs.Name+"-group.json")); err != nil {
			tb.Fatalf("%s: realserver up: %v\n%s", rs.Name, err, out)
		}
		rs.ServeEcho(":" + groupPort)
	}
	for i := range 3 {
		d := &groupDir{name: fmt.Sprintf("d%d", i+1), addr: fmt.Sprintf("10.0.1.%d", i+2)}
		d.h = n.Host(d.name)
		fabric.Plug(d.h, d.addr+"/24")
		groupIf := grp.Plug(d.h, fmt.Sprintf("10.0.2.%d/24", i+2))
		d.h.Route("default", groupRouter)
		d.dir = filepath.Join(tmp, "group-"+d.name)
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			tb.Fatalf("%v", err)
		}
		d.sock, d.cfg = filepath.Join(d.dir, "ctl.sock"), filepath.Join(d.dir, "director.yaml")
		if err := os.WriteFile(d.cfg, []byte(fmt.Sprintf(groupConfig, i+1, d.dir, d.addr, groupIf, keys)), 0o644); err != nil {
			tb.Fatalf("%v", err)
		}
		a.dirs = append(a.dirs, d)
	}

	section("d1's config (d2's and d3's differ in node and router_id only); the router's bird.conf")
	b, _ := os.ReadFile(a.dirs[0].cfg)
	fmt.Print(indent(string(b)))
	a.startBIRD(tmp)

	section("the three directors start; each announces the VIP once its session is up and a real server is healthy")
	for _, d := range a.dirs {
		d.start(tb)
	}
	took := a.waitHops(a.addrs(), 60*time.Second)
	fmt.Printf("  the router has three next hops %v after the last directord was ready\n", took.Round(time.Millisecond))
	a.showRoute()
	show(tb, a.router, "/bin/birdc", "-s", a.birdSock, "show", "protocols")

	section(fmt.Sprintf("the client opens %d long-lived connections, each exchanging a line every 50 ms, and a new connection every 20 ms", groupLongLived))
	tr := a.startTraffic()
	defer tr.close()
	fmt.Printf("  %s\n", tr.servers())
	a.showSpread(tr)
	tr.step(tb, "with all three")

	d1, d2 := a.dirs[0], a.dirs[1]
	section("d1's directord is killed (kill -9)")
	d1.proc.Kill()
	took = a.waitHops(a.addrs(d1), 10*time.Second)
	fmt.Printf("  router: d1's next hop gone %v after the kill (the kernel closed its BGP session)\n", took.Round(time.Millisecond))
	a.showRoute()
	time.Sleep(time.Second)
	tr.step(tb, "d1 killed")

	section("d1's directord starts again: it adopts the kernel's table and announces")
	d1.start(tb)
	took = a.waitHops(a.addrs(), 30*time.Second)
	fmt.Printf("  router: d1's next hop back %v after directord was ready\n", took.Round(time.Millisecond))
	a.showRoute()
	time.Sleep(time.Second)
	tr.step(tb, "d1 back")

	section("d2 is drained: it withdraws the VIP and keeps forwarding what still arrives")
	show(tb, d2.h, "/bin/directorctl", "drain-node", "-socket", d2.sock)
	took = a.waitHops(a.addrs(d2), 10*time.Second)
	fmt.Printf("  router: d2's next hop gone %v after drain-node answered\n", took.Round(time.Millisecond))
	a.showRoute()
	show(tb, d2.h, "/bin/directorctl", "status", "-socket", d2.sock)
	time.Sleep(time.Second)
	tr.step(tb, "d2 drained")

	section("d2 is enabled again")
	show(tb, d2.h, "/bin/directorctl", "enable-node", "-socket", d2.sock)
	took = a.waitHops(a.addrs(), 10*time.Second)
	fmt.Printf("  router: d2's next hop back %v after enable-node answered\n", took.Round(time.Millisecond))
	a.showRoute()
	time.Sleep(time.Second)
	tr.step(tb, "d2 enabled")

	tr.close()
	fmt.Printf("\n  in all: %d long-lived connections, %d exchanges, none broken, each answered by its first real server;\n",
		groupLongLived, tr.rounds.Load())
	fmt.Printf("  %d new connections, none failed (act 3 took %v)\n", tr.totalNew(), time.Since(actStart).Round(time.Second))
}

func (d *groupDir) start(tb *demoTB) {
	// Only what an admin watches for in a group: sessions, announcements,
	// drains and members.
	d.log = topo.NewLogWatch(&grep{w: os.Stdout, re: regexp.MustCompile(`bgp: (VIP announced|VIP withdrawn|node drained|node enabled)|group: member (heard|restarted|is leaving|not heard)`)}, "  ["+d.name+"] ")
	cmd := exec.Command("/bin/directord", "-config", d.cfg)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	p, err := d.h.StartCmd(cmd)
	if err != nil {
		tb.Fatalf("start %s: %v", d.name, err)
	}
	d.proc = p
	if _, err := d.log.Wait(0, "directord ready", 15*time.Second); err != nil {
		tb.Fatalf("%s: %v", d.name, err)
	}
}

// showSpread prints how many of the long-lived connections each
// director scheduled itself, and how many of the others it holds by sync
// once the sync daemons have sent them (they batch, for up to 2 s). A
// director that scheduled none fails the demo: the router would not be
// spreading over it.
func (a *groupAct) showSpread(tr *traffic) {
	var local, synced []int
	for deadline := time.Now().Add(5 * time.Second); ; {
		local, synced = nil, nil
		all := true
		for _, d := range a.dirs {
			l, s := d.conns(a.tb, tr.ports)
			local, synced = append(local, l), append(synced, s)
			all = all && l+s == groupLongLived
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the sync daemons' sending has no event to await
	}
	for i, d := range a.dirs {
		fmt.Printf("  %s scheduled %2d of them itself, and holds %2d of the others by sync\n", d.name, local[i], synced[i])
		if local[i] == 0 {
			a.tb.Fatalf("%s carries none of the %d long-lived connections: the router does not spread over it", d.name, groupLongLived)
		}
	}
}

// conns counts the director's established connections among the
// long-lived ones (by the client's port, as the kernel's %04X): those it
// scheduled itself and those it holds by sync (/proc/net/ip_vs_conn_sync
// says which: LOCAL or SYNC).
func (d *groupDir) conns(tb *demoTB, ports map[string]bool) (local, synced int) {
	var b []byte
	if err := d.h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn_sync")
		return err
	}); err != nil {
		tb.Fatalf("%s: %v", d.name, err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "TCP" || !ports[f[2]] || f[4] != "0007" || f[7] != "ESTABLISHED" {
			continue
		}
		switch f[8] {
		case "LOCAL":
			local++
		case "SYNC":
			synced++
		}
	}
	return local, synced
}

func (a *groupAct) startBIRD(tmp string) {
	dir := filepath.Join(tmp, "bird")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		a.tb.Fatalf("%v", err)
	}
	conf := filepath.Join(dir, "bird.conf")
	body := fmt.Sprintf(groupBIRD, filepath.Join(dir, "bird.log"))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		a.tb.Fatalf("%v", err)
	}
	fmt.Print(indent(body))
	a.birdSock = filepath.Join(dir, "bird.ctl")
	cmd := exec.Command("/bin/bird", "-f", "-c", conf, "-s", a.birdSock, "-P", filepath.Join(dir, "bird.pid"))
	log := topo.NewLogWatch(os.Stdout, "  [bird] ")
	cmd.Stdout, cmd.Stderr = log, log
	p, err := a.router.StartCmd(cmd)
	if err != nil {
		a.tb.Fatalf("start bird: %v", err)
	}
	a.tb.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(a.birdSock); err == nil {
			return
		}
		select {
		case <-p.Done():
			a.tb.Fatalf("bird exited: %v", p.Wait())
		default:
		}
		if time.Now().After(deadline) {
			a.tb.Fatalf("bird made no control socket within 10s")
		}
		time.Sleep(50 * time.Millisecond) // BIRD signals readiness by its socket only
	}
}

// addrs is the directors' addresses but those of skip.
func (a *groupAct) addrs(skip ...*groupDir) []string {
	var out []string
	for _, d := range a.dirs {
		if !slices.Contains(skip, d) {
			out = append(out, d.addr)
		}
	}
	return out
}

// route reads the router's kernel route to the VIP over netlink (the
// guest has no ip command) and renders it as `ip route show VIP` does;
// hops are its gateways, sorted. More than one route is a failure: ECMP
// is one route with several next hops.
func (a *groupAct) route() (text string, hops []string) {
	nl := a.router.Netlink()
	dst := &net.IPNet{IP: net.ParseIP(groupVIP).To4(), Mask: net.CIDRMask(32, 32)}
	routes, err := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst, Table: syscall.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		a.tb.Fatalf("router: list routes: %v", err)
	}
	if len(routes) > 1 {
		a.tb.Fatalf("router: %d routes to %s, want one: %v", len(routes), groupVIP, routes)
	}
	dev := func(index int) string {
		if l, err := nl.LinkByIndex(index); err == nil {
			return l.Attrs().Name
		}
		return fmt.Sprint(index)
	}
	var b strings.Builder
	for _, r := range routes {
		b.WriteString(groupVIP)
		if r.Gw != nil {
			fmt.Fprintf(&b, " via %s dev %s", r.Gw, dev(r.LinkIndex))
			hops = append(hops, r.Gw.String())
		}
		fmt.Fprintf(&b, " proto %s", r.Protocol)
		if r.Priority != 0 {
			fmt.Fprintf(&b, " metric %d", r.Priority)
		}
		b.WriteString("\n")
		for _, nh := range r.MultiPath {
			fmt.Fprintf(&b, "\tnexthop via %s dev %s weight %d\n", nh.Gw, dev(nh.LinkIndex), nh.Hops+1)
			hops = append(hops, nh.Gw.String())
		}
	}
	slices.Sort(hops)
	return b.String(), hops
}

func (a *groupAct) showRoute() {
	text, _ := a.route()
	fmt.Printf("  router# ip route show %s\n%s", groupVIP, indent(text))
}

// waitHops waits until the router routes the VIP through exactly want
// and returns how long that took.
func (a *groupAct) waitHops(want []string, within time.Duration) time.Duration {
	start := time.Now()
	for {
		text, got := a.route()
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			protos, _ := output(a.router, "/bin/birdc", "-s", a.birdSock, "show", "protocols")
			a.tb.Fatalf("router: next hops to %s are %v after %v, want %v\n%s%s", groupVIP, got, within, want, indent(text), indent(protos))
		}
		time.Sleep(5 * time.Millisecond) // route changes have no event here worth the code
	}
}

// traffic is the client's side: long-lived connections that must keep
// their real server, and new connections counted per step.
type traffic struct {
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	rounds atomic.Int64

	mu       sync.Mutex
	server   map[int]string  // long-lived connection -> its real server
	ports    map[string]bool // the long-lived connections' client ports, %04X
	broken   []string
	ok, fail int // new connections since the last step
	errs     []string
	total    int
	last     int64 // rounds at the last step
}

func (a *groupAct) startTraffic() *traffic {
	tr := &traffic{stop: make(chan struct{}), server: map[int]string{}, ports: map[string]bool{}}
	for i := range groupLongLived {
		c, err := a.client.DialLines(groupVIP + ":" + groupPort)
		if err != nil {
			a.tb.Fatalf("long-lived connection %d: %v", i, err)
		}
		first, err := c.Exchange("hello", 3*time.Second)
		if err != nil {
			a.tb.Fatalf("long-lived connection %d: %v", i, err)
		}
		server := strings.Fields(first)[0]
		tr.server[i] = server
		tr.ports[fmt.Sprintf("%04X", netip.MustParseAddrPort(c.LocalAddr().String()).Port())] = true
		tr.wg.Go(func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-tr.stop:
					return
				case <-t.C:
				}
				// A lost packet costs TCP a retransmission, not the
				// connection: wait for it.
				got, err := c.Exchange(fmt.Sprintf("line %d", k), 5*time.Second)
				if err == nil && strings.Fields(got)[0] != server {
					err = fmt.Errorf("answered by %s, was %s", strings.Fields(got)[0], server)
				}
				if err != nil {
					tr.mu.Lock()
					tr.broken = append(tr.broken, fmt.Sprintf("connection %d (%s): %v", i, c.LocalAddr(), err))
					tr.mu.Unlock()
					return
				}
				tr.rounds.Add(1)
			}
		})
	}
	tr.wg.Go(func() {
		for {
			select {
			case <-tr.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			err := a.probe()
			tr.mu.Lock()
			if err != nil {
				tr.fail++
				tr.errs = append(tr.errs, err.Error())
			} else {
				tr.ok++
			}
			tr.mu.Unlock()
		}
	})
	return tr
}

// probe opens a new connection, exchanges a line and closes it.
func (a *groupAct) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := a.client.Dial(ctx, "tcp", groupVIP+":"+groupPort)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("probe\n")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 64))
	return err
}

// servers says how the long-lived connections spread over the real servers.
func (tr *traffic) servers() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	count := map[string]int{}
	for _, s := range tr.server {
		count[s]++
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%s %d", s, count[s]))
	}
	return fmt.Sprintf("long-lived connections by real server: %s", strings.Join(parts, ", "))
}

// step prints the client's side since the last step and fails the demo
// if a long-lived connection broke or a new one failed.
func (tr *traffic) step(tb *demoTB, what string) {
	tr.mu.Lock()
	ok, fail, errs, broken := tr.ok, tr.fail, tr.errs, slices.Clone(tr.broken)
	tr.total += ok + fail
	tr.ok, tr.fail, tr.errs = 0, 0, nil
	tr.mu.Unlock()
	rounds := tr.rounds.Load()
	fmt.Printf("  client (%s): %d long-lived connections going, %d exchanges since the last step, %d broken, each on its first real server;\n",
		what, groupLongLived-len(broken), rounds-tr.last, len(broken))
	fmt.Printf("  client (%s): new connections %d ok, %d failed\n", what, ok, fail)
	tr.last = rounds
	if len(broken) > 0 {
		tb.Fatalf("%s: %d long-lived connection(s) broke: %s", what, len(broken), strings.Join(broken, "; "))
	}
	if fail > 0 {
		tb.Fatalf("%s: %d of %d new connections failed: %s", what, fail, ok+fail, strings.Join(errs, "; "))
	}
}

func (tr *traffic) totalNew() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.total
}

func (tr *traffic) close() {
	tr.once.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

// output runs a command inside h and returns what it printed.
func output(h *topo.Host, argv ...string) (string, error) {
	var out strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	p, err := h.StartCmd(cmd)
	if err != nil {
		return "", err
	}
	err = p.Wait()
	return out.String(), err
}
