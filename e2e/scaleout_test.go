//go:build lab

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/lab/topo"
)

// A bgp group in the lab: clients behind a BIRD 2 router with ECMP (L4
// multipath hashing), three directors running directord in bgp mode (BGP
// with BFD to the router; group heartbeats and connection sync on a
// second link), and DR real servers that answer the clients straight
// through the router.

const (
	soVIP      = "192.0.2.10"
	soPort     = "7"
	soClient   = "198.51.100.2"
	soSyncID   = 20
	soGroupMC  = "239.192.0.19"
	soDrain    = 3 * time.Second
	soRealSrvs = 4
)

type scaleLab struct {
	t      testing.TB
	n      *topo.Net
	router *topo.Host
	client *topo.Host
	fabric *topo.Switch
	group  *topo.Switch
	bird   *birdRouter
	rss    []*topo.Host
	echo   []func() // stops each real server's echo service
	dirs   []*soDir
	key    string // the group's auth key file
}

// soDir is one director of the group.
type soDir struct {
	lab      *scaleLab
	i        int
	h        *topo.Host
	addr     string
	fabricIf string
	groupIf  string
	dir      string
	d        *daemon
	services string // the services part of its config
	// noBFD leaves the peer's bfd key out, and hold, if set, replaces
	// hold_time's 3s: the benchmark's comparison round.
	noBFD bool
	hold  time.Duration
}

func soServices(extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `services:
  - name: echo
    vip: %s
    port: %s
    forward: dr
    check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}
    real_servers:
`, soVIP, soPort)
	for i := range soRealSrvs {
		fmt.Fprintf(&b, "      - {address: 10.0.1.%d}\n", 11+i)
	}
	b.WriteString(extra)
	return b.String()
}

func newScaleLab(t testing.TB, nDirs int) *scaleLab {
	t.Helper()
	l := &scaleLab{t: t, n: topo.New(t)}
	l.router = l.n.Host("router")
	l.client = l.n.Host("client")
	l.fabric = l.n.Switch("fabric")
	l.group = l.n.Switch("group")
	l.router.Sysctl("net.ipv4.ip_forward", "1")
	l.router.Sysctl("net.ipv4.fib_multipath_hash_policy", "1")
	l.n.Link(l.client, soClient+"/24", l.router, "198.51.100.1/24")
	l.client.Route("0.0.0.0/0", "198.51.100.1")
	// The router's multipath hash comes with the packet, from the client's
	// socket, which picks a new one at every retransmission timeout: a
	// flow stuck on a dead director would move by itself, as no real
	// router's L4 hash does. Keep the flow's hash fixed.
	l.client.Sysctl("net.core.txrehash", "0")
	l.fabric.Plug(l.router, bgpRouterAddr+"/24")
	for i := range soRealSrvs {
		rs := l.n.Host(fmt.Sprintf("rs%d", i+1))
		ifName := l.fabric.Plug(rs, fmt.Sprintf("10.0.1.%d/24", 11+i))
		drRealServer(rs, ifName, "lo", soVIP)
		rs.Route("0.0.0.0/0", bgpRouterAddr)
		l.rss = append(l.rss, rs)
		l.echo = append(l.echo, rs.ServeEcho(":"+soPort))
	}
	keyDir := t.TempDir()
	l.key = filepath.Join(keyDir, "authkey")
	if err := os.WriteFile(l.key, []byte("group-secret-for-the-lab-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range nDirs {
		g := &soDir{lab: l, i: i, addr: fmt.Sprintf("10.0.1.%d", 2+i), dir: t.TempDir(), services: soServices("")}
		g.h = l.n.Host(fmt.Sprintf("d%d", i+1))
		g.fabricIf = l.fabric.Plug(g.h, g.addr+"/24")
		g.groupIf = l.group.Plug(g.h, fmt.Sprintf("10.0.2.%d/24", 2+i))
		g.h.Route("0.0.0.0/0", bgpRouterAddr)
		l.dirs = append(l.dirs, g)
		addrs = append(addrs, g.addr)
	}
	l.bird = startBIRD(t, l.router, addrs, nil)
	return l
}

func (g *soDir) config() string {
	bfd, hold := ", bfd: {interval: 100ms, multiplier: 3}", 3*time.Second
	if g.noBFD {
		bfd = ""
	}
	if g.hold != 0 {
		hold = g.hold
	}
	return fmt.Sprintf(`node: d%d
state_dir: %s
control: {socket: %s}
metrics: {listen: ""}
ipvs: {reconcile_interval: 1s}
bgp:
  asn: %d
  router_id: %s
  hold_time: %v
  peers:
    - {address: %s, asn: %d%s}
  drain_time: %s
  sync: {interface: %s, sync_id: %d}
  group: {links: [{interface: %s, multicast: %s}], auth_key_file: %s}
`, g.i+1, filepath.Join(g.dir, "state"), filepath.Join(g.dir, "ctl.sock"), bgpDirectorASN, g.addr, hold,
		bgpRouterAddr, bgpRouterASN, bfd, soDrain, g.groupIf, soSyncID, g.groupIf, soGroupMC, g.lab.key) + g.services
}

func (g *soDir) write() string {
	return writeConfig(g.lab.t, g.dir, g.config())
}

func (g *soDir) start() {
	g.lab.t.Helper()
	g.d = startDirectord(g.lab.t, g.h, g.write())
}

func (g *soDir) status() control.Status {
	g.lab.t.Helper()
	out, code := g.d.ctl("status", "--json", "-socket", g.d.socket)
	if code != 0 {
		g.lab.t.Fatalf("d%d: status: exit %d\n%s", g.i+1, code, out)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		g.lab.t.Fatalf("d%d: status: %v\n%s", g.i+1, err, out)
	}
	return st
}

// announced reports whether the director's own status says it announces
// the VIP with its one peer established.
func (g *soDir) announced() bool {
	st := g.status()
	if st.BGP == nil || len(st.BGP.Peers) != 1 || st.BGP.Peers[0].State != "established" {
		return false
	}
	for _, v := range st.BGP.VIPs {
		if v.VIP == soVIP+"/32" {
			return v.Announced
		}
	}
	return false
}

// waitGroup waits until the director's status shows every director of
// the lab alive in its group, and mismatched the ones named.
func (g *soDir) waitGroup(mismatched []string, within time.Duration) control.GroupStatus {
	g.lab.t.Helper()
	start := time.Now()
	for {
		st := g.status()
		var bad []string
		alive := 0
		var gs control.GroupStatus
		if st.BGP != nil && st.BGP.Group != nil {
			gs = *st.BGP.Group
			for _, m := range gs.Members {
				if m.Alive || m.Self {
					alive++
				}
				if !m.DigestMatch {
					bad = append(bad, m.Node)
				}
			}
		}
		slices.Sort(bad)
		if alive == len(g.lab.dirs) && slices.Equal(bad, mismatched) && gs.Mismatched == len(mismatched) {
			return gs
		}
		if time.Since(start) > within {
			g.lab.t.Fatalf("d%d: group %+v: want %d alive, mismatched %v", g.i+1, st.BGP.Group, len(g.lab.dirs), mismatched)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// localConns counts the established connections the director scheduled
// itself (origin LOCAL in /proc/net/ip_vs_conn_sync, where the ones sync
// brought are SYNC).
func (g *soDir) localConns() int {
	g.lab.t.Helper()
	conns, err := syncdConns(g.h, "ip_vs_conn_sync")
	if err != nil {
		g.lab.t.Fatal(err)
	}
	n := 0
	for _, c := range conns {
		if c.State == "ESTABLISHED" && c.Origin == "LOCAL" {
			n++
		}
	}
	return n
}

// waitHops waits until the router routes the VIP through exactly want
// (director addresses) and returns how long it took.
func (l *scaleLab) waitHops(want []string, within time.Duration) time.Duration {
	l.t.Helper()
	return l.waitHopsSince(want, time.Now(), within)
}

// waitHopsSince is waitHops, timed from start (an event before the call).
func (l *scaleLab) waitHopsSince(want []string, start time.Time, within time.Duration) time.Duration {
	l.t.Helper()
	want = slices.Sorted(slices.Values(want))
	for {
		got := nextHops(l.t, l.router, soVIP)
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			l.t.Fatalf("router: next hops to %s are %v after %v, want %v\n%s", soVIP, got, within, want,
				l.bird.birdc("show", "protocols"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *scaleLab) addrs(skip ...int) []string {
	var out []string
	for _, g := range l.dirs {
		if !slices.Contains(skip, g.i) {
			out = append(out, g.addr)
		}
	}
	return out
}

// conns reads the director's IPVS count of connections it scheduled for
// the VIP (ipvsadm's Conns; connections learnt by sync are not counted).
func (g *soDir) conns() int {
	g.lab.t.Helper()
	out := must(g.lab.t, g.h, "ipvsadm", "-Ln", "--stats", "-t", soVIP+":"+soPort)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "TCP" && f[1] == soVIP+":"+soPort {
			n, _ := strconv.Atoi(f[2])
			return n
		}
	}
	g.lab.t.Fatalf("d%d: no stats line for the VIP:\n%s", g.i+1, out)
	return 0
}

// longLived are connections that exchange a line every 50 ms until
// stopped; every error, and every answer from another real server than
// the first, is a failure, counted.
type longLived struct {
	failures atomic.Int64
	rounds   atomic.Int64
	mu       sync.Mutex
	errs     []string
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

func (l *scaleLab) startLongLived(n int) *longLived {
	l.t.Helper()
	ll := &longLived{stop: make(chan struct{})}
	for i := range n {
		c, err := l.client.DialLines(soVIP + ":" + soPort)
		if err != nil {
			l.t.Fatalf("long-lived connection %d: %v", i, err)
		}
		first, err := c.Exchange("hello", 3*time.Second)
		if err != nil {
			l.t.Fatalf("long-lived connection %d: %v", i, err)
		}
		server := strings.Fields(first)[0]
		ll.wg.Go(func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-ll.stop:
					return
				case <-t.C:
				}
				// A lost packet costs TCP a retransmission (200 ms and
				// doubling): a connection that waits out a cut is alive.
				got, err := c.Exchange(fmt.Sprintf("line %d", k), 5*time.Second)
				ll.rounds.Add(1)
				if err == nil && strings.Fields(got)[0] != server {
					err = fmt.Errorf("answered by %s, was %s", strings.Fields(got)[0], server)
				}
				if err != nil {
					ll.failures.Add(1)
					ll.mu.Lock()
					ll.errs = append(ll.errs, fmt.Sprintf("conn %d (%s): %v", i, c.LocalAddr(), err))
					ll.mu.Unlock()
					return
				}
			}
		})
	}
	return ll
}

func (ll *longLived) check(t *testing.T, what string) {
	t.Helper()
	if n := ll.failures.Load(); n > 0 {
		ll.mu.Lock()
		defer ll.mu.Unlock()
		t.Errorf("%s: %d long-lived connection(s) failed: %s", what, n, strings.Join(ll.errs, "; "))
	}
}

func (ll *longLived) close() {
	ll.once.Do(func() { close(ll.stop) })
	ll.wg.Wait()
}

// prober opens a new connection every 20 ms, exchanges a line and
// closes it, counting failures by phase.
type prober struct {
	mu     sync.Mutex
	phase  string
	tried  map[string]int
	failed map[string][]string
	worst  map[string]time.Duration // the slowest connection of each phase
	stop   chan struct{}
	once   sync.Once
	done   chan struct{}
}

func (l *scaleLab) startProber() *prober {
	p := &prober{phase: "start", tried: map[string]int{}, failed: map[string][]string{}, worst: map[string]time.Duration{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			err := func() error {
				c, err := l.client.Dial(ctx, "tcp", soVIP+":"+soPort)
				if err != nil {
					return err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte("probe\n")); err != nil {
					return err
				}
				buf := make([]byte, 64)
				_, err = c.Read(buf)
				return err
			}()
			cancel()
			took := time.Since(start)
			p.mu.Lock()
			p.tried[p.phase]++
			p.worst[p.phase] = max(p.worst[p.phase], took)
			if err != nil {
				p.failed[p.phase] = append(p.failed[p.phase], fmt.Sprintf("%s (+%v): %v", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err))
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// enter starts a phase and returns the previous one's name, tries,
// failures and slowest connection.
func (p *prober) enter(phase string) (string, int, []string, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.phase
	p.phase = phase
	return old, p.tried[old], p.failed[old], p.worst[old]
}

func (p *prober) close() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

func (l *scaleLab) startAll() {
	l.t.Helper()
	for _, g := range l.dirs {
		g.start()
	}
	took := l.waitHops(l.addrs(), 60*time.Second)
	l.t.Logf("the router routes %s over all %d directors (%v after the last start)", soVIP, len(l.dirs), took.Round(time.Millisecond))
}

// TestScaleOut: three directors behind BIRD, every one active; the
// router spreads flows over all; long-lived connections and new ones
// survive a kill -9, a graceful stop, a node's death (cables cut), a
// drain-node and each director's return; a service with no healthy
// real server is withdrawn everywhere and comes back.
func TestScaleOut(t *testing.T) {
	l := newScaleLab(t, 3)
	l.startAll()
	for _, g := range l.dirs {
		if !g.announced() {
			t.Fatalf("d%d: status does not say the VIP is announced: %+v", g.i+1, g.status().BGP)
		}
	}
	t.Logf("router: one route to %s via %v", soVIP, nextHops(t, l.router, soVIP))

	// Spread: 60 short connections from as many source ports.
	before := make([]int, len(l.dirs))
	for i, g := range l.dirs {
		before[i] = g.conns()
	}
	for i := range 60 {
		c, err := l.client.DialLines(soVIP + ":" + soPort)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if _, err := c.Exchange("hi", 3*time.Second); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}
	// The kernel folds its per-CPU counters into what ipvsadm reads every
	// 2 s (its rate estimator): wait until all 60 are counted.
	var got []int
	for deadline := time.Now().Add(10 * time.Second); ; {
		sum := 0
		got = make([]int, len(l.dirs))
		for i, g := range l.dirs {
			got[i] = g.conns() - before[i]
			sum += got[i]
		}
		if sum >= 60 || time.Now().After(deadline) {
			t.Logf("%d of 60 connections counted by the directors", sum)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, n := range got {
		t.Logf("d%d scheduled %d of 60 new connections", i+1, n)
		if n == 0 {
			t.Errorf("d%d carried none of 60 connections: the router does not spread over it", i+1)
		}
	}
	for _, g := range l.dirs {
		gs := g.waitGroup(nil, 10*time.Second)
		for _, m := range gs.Members {
			t.Logf("d%d sees %s: alive %v, announced %v, config %s", g.i+1, m.Node, m.Alive || m.Self, m.Announced, map[bool]string{true: "same", false: "MISMATCH"}[m.DigestMatch])
			if !slices.Equal(m.Announced, []string{soVIP + "/32"}) {
				t.Errorf("d%d sees %s announcing %v, want [%s/32]", g.i+1, m.Node, m.Announced, soVIP)
			}
		}
	}

	ll := l.startLongLived(36)
	defer ll.close()
	for _, g := range l.dirs {
		n := g.localConns()
		t.Logf("d%d scheduled %d established connections itself (the others hold them by sync)", g.i+1, n)
		if n == 0 {
			t.Errorf("d%d carries none of the long-lived connections", g.i+1)
		}
	}
	pr := l.startProber()
	defer pr.close()
	report := func(next string, wantNone bool) {
		t.Helper()
		phase, tried, failed, worst := pr.enter(next)
		t.Logf("%s: %d new connections, %d failed, slowest %v", phase, tried, len(failed), worst.Round(time.Millisecond))
		if len(failed) > 0 && wantNone {
			t.Errorf("%s: %d of %d new connections failed: %s", phase, len(failed), tried, strings.Join(failed, "; "))
		} else if len(failed) > 0 {
			t.Logf("%s: failures: %s", phase, strings.Join(failed, "; "))
		}
		ll.check(t, phase)
	}
	time.Sleep(time.Second) // traffic in every phase
	report("kill -9 d1", true)

	// (1) kill -9: the kernel closes the BGP session; d1's kernel still
	// forwards what arrives until the router has moved.
	d1 := l.dirs[0]
	d1.d.proc.Kill()
	took := l.waitHops(l.addrs(0), 10*time.Second)
	t.Logf("directord on d1 killed -9 -> its next hop gone in %v", took.Round(time.Millisecond))
	time.Sleep(time.Second)
	report("d1 returns", true)
	d1.start()
	took = l.waitHops(l.addrs(), 30*time.Second)
	t.Logf("d1 restarted -> its next hop back in %v", took.Round(time.Millisecond))
	time.Sleep(time.Second)
	report("graceful stop d2", true)

	// (2) A graceful stop: withdrawn first, stopped once the router has it.
	d2 := l.dirs[1]
	start := time.Now()
	if err := d2.d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took = l.waitHops(l.addrs(1), 10*time.Second)
	t.Logf("SIGTERM to d2 -> its next hop gone in %v", took.Round(time.Millisecond))
	select {
	case <-d2.d.proc.Done():
		t.Logf("d2's directord exited %v after SIGTERM (drain_time %v)", time.Since(start).Round(time.Millisecond), soDrain)
	case <-time.After(soDrain + 10*time.Second):
		t.Fatal("d2's directord did not exit after SIGTERM")
	}
	time.Sleep(time.Second)
	report("d2 returns", true)
	d2.start()
	l.waitHops(l.addrs(), 30*time.Second)
	time.Sleep(time.Second)
	report("d3 dies (cables cut)", true)

	// (3) A node's death: its cables cut, nothing closes its sessions;
	// BFD notices. New flows the router still hashes to d3 fail until
	// then: reported, not failed.
	d3 := l.dirs[2]
	start = time.Now()
	l.fabric.SetCable(d3.h, d3.fabricIf, false)
	l.group.SetCable(d3.h, d3.groupIf, false)
	took = l.waitHops(l.addrs(2), 5*time.Second)
	t.Logf("d3's cables cut -> its next hop gone in %v (BFD 100ms x 3)", took.Round(time.Millisecond))
	time.Sleep(time.Second)
	report("d3 comes back", false)
	l.fabric.SetCable(d3.h, d3.fabricIf, true)
	l.group.SetCable(d3.h, d3.groupIf, true)
	took = time.Since(start)
	l.waitHops(l.addrs(), 60*time.Second)
	t.Logf("d3's cables back -> next hop back in %v", (time.Since(start) - took).Round(time.Millisecond))
	time.Sleep(time.Second)
	report("drain-node d1", true)

	// (4) drain-node: withdrawn, still forwarding; enable-node: back.
	if out, code := d1.d.ctl("drain-node", "-socket", d1.d.socket); code != 0 {
		t.Fatalf("drain-node: exit %d\n%s", code, out)
	} else {
		t.Logf("directorctl drain-node: %s", strings.TrimSpace(out))
	}
	l.waitHops(l.addrs(0), 10*time.Second)
	st := d1.status()
	if !st.BGP.Drained {
		t.Errorf("d1 drained, status says %+v", st.BGP)
	}
	time.Sleep(time.Second)
	report("enable-node d1", true)
	if out, code := d1.d.ctl("enable-node", "-socket", d1.d.socket); code != 0 {
		t.Fatalf("enable-node: exit %d\n%s", code, out)
	}
	l.waitHops(l.addrs(), 10*time.Second)
	time.Sleep(time.Second)
	report("end", true)
	ll.close()
	ll.check(t, "all events")
	t.Logf("long-lived: 36 connections, %d exchanges, %d failures", ll.rounds.Load(), ll.failures.Load())
	pr.close()

	// (5) No healthy real server: withdrawn from every director; one
	// back: announced again.
	for _, stop := range l.echo {
		stop()
	}
	took = l.waitHops(nil, 15*time.Second)
	t.Logf("every real server down -> the router has no route to %s after %v", soVIP, took.Round(time.Millisecond))
	for _, g := range l.dirs {
		st := g.status()
		for _, v := range st.BGP.VIPs {
			if v.Announced {
				t.Errorf("d%d still announces %s with no healthy real server", g.i+1, v.VIP)
			} else {
				t.Logf("d%d: %s not announced: %s", g.i+1, v.VIP, v.Reason)
			}
		}
	}
	l.echo[0] = l.rss[0].ServeEcho(":" + soPort)
	took = l.waitHops(l.addrs(), 15*time.Second)
	t.Logf("one real server back -> announced by all three again in %v", took.Round(time.Millisecond))

	// (6) A director whose service config differs is reported by the
	// other two: it would pick other real servers.
	before3 := d3.status().BGP.Peers[0]
	birdBefore := l.bird.protocolLine("d3")
	d3.services = strings.Replace(d3.services, "{address: 10.0.1.14}", "{address: 10.0.1.14, weight: 2}", 1)
	d3.write()
	if out, code := d3.d.ctl("reload", "-socket", d3.d.socket); code != 0 {
		t.Fatalf("d3 reload: exit %d\n%s", code, out)
	}
	for _, g := range l.dirs[:2] {
		gs := g.waitGroup([]string{"d3"}, 10*time.Second)
		t.Logf("d%d: group mismatched %d: d3 digest %s, own %s", g.i+1, gs.Mismatched, gs.Members[2].Digest, gs.Digest)
		if _, err := g.d.log.Wait(0, `group: a member's service config or kernel differs.*node=d3`, 5*time.Second); err != nil {
			t.Errorf("d%d: no warning in the log: %v", g.i+1, err)
		}
	}
	d3.waitGroup([]string{"d1", "d2"}, 10*time.Second)
	d3.services = soServices("")
	d3.write()
	if out, code := d3.d.ctl("reload", "-socket", d3.d.socket); code != 0 {
		t.Fatalf("d3 reload: exit %d\n%s", code, out)
	}
	for _, g := range l.dirs {
		g.waitGroup(nil, 10*time.Second)
	}
	t.Log("d3's config put back: no mismatch left")
	// Two reloads that touched only services left the BGP session alone:
	// the same session, seen from both ends.
	after3 := d3.status().BGP.Peers[0]
	if !after3.Since.Equal(before3.Since) || after3.Flops != before3.Flops {
		t.Errorf("d3's session was reset by a reload of its services: %+v, before %+v", after3, before3)
	}
	// BIRD prints when the session came up, from relative times: the
	// same session may show a millisecond apart.
	birdAfter := l.bird.protocolLine("d3")
	since := func(line string) time.Time {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != "Established" {
			return time.Time{}
		}
		at, _ := time.Parse("15:04:05.000", f[4])
		return at
	}
	if b, a := since(birdBefore), since(birdAfter); b.IsZero() || a.IsZero() || a.Sub(b).Abs() > 100*time.Millisecond {
		t.Errorf("BIRD's session with d3 changed across the reloads: %q, was %q", birdAfter, birdBefore)
	}
}

// TestScaleOutBadPeers: a router that is down when the directors start, a
// router that refuses a director (not its neighbor), a wrong MD5 password:
// each directord runs, says why in its status and log, and announces once
// the session is up, with nothing restarted.
func TestScaleOutBadPeers(t *testing.T) {
	l := &scaleLab{t: t, n: topo.New(t)}
	l.router = l.n.Host("router")
	l.fabric = l.n.Switch("fabric")
	l.fabric.Plug(l.router, bgpRouterAddr+"/24")
	rs := l.n.Host("rs1")
	ifName := l.fabric.Plug(rs, "10.0.1.11/24")
	drRealServer(rs, ifName, "lo", soVIP)
	rs.ServeEcho(":" + soPort)
	services := `services:
  - {name: echo, vip: ` + soVIP + `, port: 7, forward: dr, check: {type: tcp, interval: 200ms, timeout: 150ms}, real_servers: [{address: 10.0.1.11}]}
`
	var addrs []string
	for i := range 3 {
		g := &soDir{lab: l, i: i, addr: fmt.Sprintf("10.0.1.%d", 2+i), dir: t.TempDir(), services: services}
		g.h = l.n.Host(fmt.Sprintf("d%d", i+1))
		g.fabricIf = l.fabric.Plug(g.h, g.addr+"/24")
		l.dirs = append(l.dirs, g)
		addrs = append(addrs, g.addr)
	}
	// d2 talks MD5 with a password the router does not have.
	pw := filepath.Join(l.dirs[1].dir, "bgp.key")
	if err := os.WriteFile(pw, []byte("wrong-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := func(g *soDir) string {
		md5 := ""
		if g.i == 1 {
			md5 = ", password_file: " + pw
		}
		return fmt.Sprintf(`node: d%d
state_dir: %s
control: {socket: %s}
metrics: {listen: ""}
bgp:
  asn: %d
  router_id: %s
  peers: [{address: %s, asn: %d%s}]
`, g.i+1, filepath.Join(g.dir, "state"), filepath.Join(g.dir, "ctl.sock"), bgpDirectorASN, g.addr, bgpRouterAddr, bgpRouterASN, md5) + g.services
	}
	// The router is down: every directord starts all the same.
	for _, g := range l.dirs {
		g.d = startDirectord(t, g.h, writeConfig(t, g.dir, cfg(g)))
	}
	for _, g := range l.dirs {
		st := g.status()
		if st.BGP == nil || len(st.BGP.Peers) != 1 {
			t.Fatalf("d%d: status has no bgp peer: %+v", g.i+1, st.BGP)
		}
		p := st.BGP.Peers[0]
		if p.State == "established" || p.LastError == "" {
			t.Errorf("d%d: router down, peer %+v: want not established, with why", g.i+1, p)
		}
		t.Logf("d%d, router down: peer %s %s: %s", g.i+1, p.Address, p.State, p.LastError)
		if _, err := g.d.log.Wait(0, `bgp: session not established.*peer=`+bgpRouterAddr, 10*time.Second); err != nil {
			t.Errorf("d%d: no log line about the session: %v", g.i+1, err)
		}
	}

	// The router comes up, knowing d2 (with another password) and d3, not
	// d1: only d3's session comes up.
	conf := func(withD1 bool) string {
		c := birdConfig(addrs, nil)
		c = strings.Replace(c, "neighbor 10.0.1.3 as", `password "right-password"; neighbor 10.0.1.3 as`, 1)
		if !withD1 {
			c = strings.Replace(c, "protocol bgp d1 from director { neighbor 10.0.1.2", "protocol bgp d1 from director { disabled; neighbor 10.0.1.2", 1)
		}
		return c
	}
	l.bird = startBIRDWith(t, l.router, conf(false))
	took := l.waitHops([]string{l.dirs[2].addr}, 30*time.Second)
	t.Logf("router up -> d3 announced in %v", took.Round(time.Millisecond))
	time.Sleep(3 * time.Second) // d1 and d2 keep trying: nothing more may come up
	if got := nextHops(t, l.router, soVIP); !slices.Equal(got, []string{l.dirs[2].addr}) {
		t.Errorf("router: next hops %v, want only d3's: a refused director or a wrong password made a session", got)
	}
	for _, g := range l.dirs[:2] {
		p := g.status().BGP.Peers[0]
		if p.State == "established" {
			t.Errorf("d%d: established: %+v", g.i+1, p)
		}
		t.Logf("d%d: peer %s %s: %s", g.i+1, p.Address, p.State, p.LastError)
	}
	if !l.dirs[2].announced() {
		t.Errorf("d3: status does not say announced: %+v", l.dirs[2].status().BGP)
	}

	// Put both right: the router takes d1; d2 gets the right password
	// and reloads. No directord restarts.
	l.bird.reconfigure(conf(true))
	if err := os.WriteFile(pw, []byte("right-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := l.dirs[1].d.ctl("reload", "-socket", l.dirs[1].d.socket); code != 0 {
		t.Fatalf("d2 reload: exit %d\n%s", code, out)
	}
	took = l.waitHops(addrs, 30*time.Second)
	t.Logf("router takes d1, d2 has the right password -> all three announced in %v", took.Round(time.Millisecond))
}
