//go:build lab

package e2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/directorlb/director/bgp"
	"github.com/directorlb/director/lab/topo"
)

// The bgp package proven against a router nobody here wrote: Debian's
// BIRD 2 in a router namespace, with ECMP over three directors that each
// run a bgp.Speaker, and BFD on every session.
//
// Each speaker runs in a process of its own (this test binary, playing the
// bgpspeak helper) started inside its director's namespace: gobgp creates
// its sockets from goroutines of its own, which Go schedules on any thread,
// so a speaker run in-process under Host.Do would open them in the wrong
// namespace.

const (
	bgpRouterASN   = 65000
	bgpDirectorASN = 65001
	bgpRouterAddr  = "10.0.1.1"
	bgpRouterAddr6 = "fd00:1::1"
	bgpVIP         = "192.0.2.10"
	bgpVIP6        = "2001:db8::10"
	// bgpHold is long next to BFD's 300 ms detection, so that a next hop
	// dropped within bgpBFDBound was dropped by BFD, not the hold timer.
	bgpHold     = 9 * time.Second
	bgpBFDBound = 2 * time.Second
	bgpBFDRound = 5
)

func init() { e2eHelpers["bgpspeak"] = bgpSpeakHelper }

// bgpSpeakHelper runs one bgp.Speaker from flags. It prints a line
// "peer ADDR STATE BFD" whenever a peer's state changes and reads
// commands on stdin: "announce PREFIX", "withdraw PREFIX", each answered
// with "ok" or "error ...".
func bgpSpeakHelper(args []string) int {
	fs := flag.NewFlagSet("bgpspeak", flag.ContinueOnError)
	asn := fs.Uint("asn", bgpDirectorASN, "")
	routerID := fs.String("router-id", "", "")
	hold := fs.Duration("hold", bgpHold, "")
	peerAddrs := fs.String("peer", bgpRouterAddr+","+bgpRouterAddr6, "comma-separated addresses")
	peerASN := fs.Uint("peer-asn", bgpRouterASN, "")
	bfdInterval := fs.Duration("bfd", 0, "BFD interval; 0 for none")
	bfdMult := fs.Int("bfd-mult", 3, "")
	announce := fs.String("announce", "", "comma-separated prefixes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var peers []bgp.Peer
	for _, a := range strings.Split(*peerAddrs, ",") {
		p := bgp.Peer{Address: netip.MustParseAddr(a), ASN: uint32(*peerASN)}
		if *bfdInterval > 0 {
			p.BFD = &bgp.BFD{Interval: *bfdInterval, Multiplier: *bfdMult}
		}
		peers = append(peers, p)
	}
	s, err := bgp.New(bgp.Config{
		ASN: uint32(*asn), RouterID: netip.MustParseAddr(*routerID), HoldTime: *hold,
		Peers: peers, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	for _, a := range strings.Split(*announce, ",") {
		if a == "" {
			continue
		}
		if err := s.Announce(ctx, netip.MustParsePrefix(a)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	go func() {
		last := map[netip.Addr]string{}
		for {
			ps, err := s.Peers(ctx)
			if err == nil {
				for _, p := range ps {
					bfd := p.BFD
					if bfd == "" {
						bfd = "-"
					}
					if line := fmt.Sprintf("peer %v %s %s", p.Address, p.State, bfd); line != last[p.Address] {
						last[p.Address] = line
						say("%s", line)
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		prefix, err := netip.ParsePrefix(arg)
		if err == nil {
			switch verb {
			case "announce":
				err = s.Announce(ctx, prefix)
			case "withdraw":
				err = s.Withdraw(ctx, prefix)
			default:
				err = fmt.Errorf("unknown command %q", verb)
			}
		}
		if err != nil {
			say("error %v", err)
		} else {
			say("ok")
		}
	}
	// stdin closed: the test is done with this speaker.
	return 0
}

// bgpSpeaker is a running bgpspeak helper, seen from the test.
type bgpSpeaker struct {
	t    *testing.T
	name string
	proc *topo.Proc
	in   io.WriteCloser

	mu    sync.Mutex
	state map[string]string // peer address -> its last "peer ..." line
	acks  chan string
}

// startBGPSpeaker starts a speaker with the router as its IPv4 and IPv6
// peers, announcing both VIPs.
func startBGPSpeaker(t *testing.T, h *topo.Host, addr string) *bgpSpeaker {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-router-id", addr, "-bfd", "100ms", "-bfd-mult", "3",
		"-hold", bgpHold.String(), "-announce", bgpVIP+"/32,"+bgpVIP6+"/128")
	cmd.Env = append(os.Environ(), helperEnv+"=bgpspeak")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	s := &bgpSpeaker{t: t, name: h.Name, in: in, acks: make(chan string, 1), state: map[string]string{}}
	s.proc, err = h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-s.proc.Done()
		pw.Close()
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Printf("[%s bgpspeak] %s\n", s.name, line)
			if f := strings.Fields(line); len(f) == 4 && f[0] == "peer" {
				s.mu.Lock()
				s.state[f[1]] = line
				s.mu.Unlock()
			} else {
				s.acks <- line
			}
		}
	}()
	t.Cleanup(func() { in.Close(); s.proc.Kill() })
	return s
}

func (s *bgpSpeaker) peerState(addr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[addr]
}

// each sends a command for both VIPs, e.g. each("withdraw").
func (s *bgpSpeaker) each(verb string) {
	s.t.Helper()
	s.do(verb + " " + bgpVIP + "/32")
	s.do(verb + " " + bgpVIP6 + "/128")
}

// do sends a command and waits for its answer.
func (s *bgpSpeaker) do(cmd string) {
	s.t.Helper()
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		s.t.Fatalf("%s: %s: %v", s.name, cmd, err)
	}
	select {
	case a := <-s.acks:
		if a != "ok" {
			s.t.Fatalf("%s: %s: %s", s.name, cmd, a)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatalf("%s: %s: no answer", s.name, cmd)
	}
}

// birdConfig is the router's configuration: per director one eBGP session
// over IPv4 (dN) and one over IPv6 (dN6), each carrying its own family
// (as the speaker's peers do), all with BFD; ECMP into the kernel; and a
// static route per family exported to the directors, which their speakers
// must refuse.
func birdConfig(directors, directors6 []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `log stderr { info, remote, warning, error, auth, fatal, bug };
router id %s;
protocol device { }
protocol kernel {
	ipv4 { import none; export where source = RTS_BGP; };
	merge paths on;
}
protocol kernel {
	ipv6 { import none; export where source = RTS_BGP; };
	merge paths on;
}
protocol static { ipv4; route 198.51.100.0/24 blackhole; }
protocol static { ipv6; route 2001:db8:ffff::/48 blackhole; }
protocol bfd {
	interface "eth*" { interval 100 ms; multiplier 3; };
}
template bgp director {
	local as %d;
	hold time %d;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
	bfd on;
}
`, bgpRouterAddr, bgpRouterASN, int(bgpHold/time.Second))
	for i, d := range directors {
		fmt.Fprintf(&b, "protocol bgp d%d from director { neighbor %s as %d; ipv4 { import all; export where source = RTS_STATIC; }; }\n",
			i+1, d, bgpDirectorASN)
	}
	for i, d := range directors6 {
		fmt.Fprintf(&b, "protocol bgp d%d6 from director { neighbor %s as %d; ipv6 { import all; export where source = RTS_STATIC; }; }\n",
			i+1, d, bgpDirectorASN)
	}
	return b.String()
}

// birdPath finds a BIRD program: the lab copies the host's into /bin
// (lab -host-tools); Debian installs them in /usr/sbin.
func birdPath(name string) (string, error) {
	for _, p := range []string{"/bin/" + name, "/usr/sbin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (make deps installs bird2; lab -host-tools must include bird and birdc)", name)
}

// birdRouter is BIRD running in the router namespace.
type birdRouter struct {
	t    testing.TB
	host *topo.Host
	sock string
	conf string
}

// reconfigure replaces BIRD's configuration and has it read it again
// (birdc configure): sessions whose protocol did not change stay up.
func (r *birdRouter) reconfigure(config string) {
	r.t.Helper()
	if err := os.WriteFile(r.conf, []byte(config), 0o644); err != nil {
		r.t.Fatal(err)
	}
	out := r.birdc("configure")
	if !strings.Contains(out, "Reconfigured") {
		r.t.Fatalf("birdc configure:\n%s", out)
	}
}

func startBIRD(t testing.TB, h *topo.Host, directors, directors6 []string) *birdRouter {
	t.Helper()
	return startBIRDWith(t, h, birdConfig(directors, directors6))
}

// startBIRDWith starts BIRD in h on config.
func startBIRDWith(t testing.TB, h *topo.Host, config string) *birdRouter {
	t.Helper()
	birdBin, err := birdPath("bird")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("bird.conf:\n%s", config)
	r := &birdRouter{t: t, host: h, sock: filepath.Join(dir, "bird.ctl"), conf: conf}
	p := h.Start(birdBin, "-f", "-c", conf, "-s", r.sock, "-P", filepath.Join(dir, "bird.pid"))
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(r.sock); err == nil {
			return r
		}
		select {
		case <-p.Done():
			t.Fatalf("bird exited: %v", p.Wait())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("bird made no control socket within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// birdc runs a command through BIRD's control socket.
func (r *birdRouter) birdc(args ...string) string {
	r.t.Helper()
	birdc, err := birdPath("birdc")
	if err != nil {
		r.t.Fatal(err)
	}
	out, err := exec.Command(birdc, append([]string{"-s", r.sock}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("birdc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// protocolLine is name's line of `show protocols`, e.g.
// "d1 BGP --- up 20:05:01.123 Established".
func (r *birdRouter) protocolLine(name string) string {
	r.t.Helper()
	for _, line := range strings.Split(r.birdc("show", "protocols", name), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return strings.Join(f, " ")
		}
	}
	return ""
}

// nextHops is what the router's kernel routes vip through, sorted: the
// gateways of `ip route show VIP`, one per `nexthop via` line. More than
// one route to vip fails the test: ECMP is one route.
func nextHops(t testing.TB, h *topo.Host, vip string) []string {
	t.Helper()
	ip := net.ParseIP(vip)
	fam, dst := netlink.FAMILY_V6, &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
	if ip4 := ip.To4(); ip4 != nil {
		fam, dst = netlink.FAMILY_V4, &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}
	}
	routes, err := h.Netlink().RouteListFiltered(fam,
		&netlink.Route{Dst: dst, Table: syscall.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("router: list routes: %v", err)
	}
	if len(routes) > 1 {
		t.Fatalf("router: %d routes to %s, want one: %v", len(routes), vip, routes)
	}
	var gws []string
	for _, r := range routes {
		if r.Gw != nil {
			gws = append(gws, r.Gw.String())
		}
		for _, nh := range r.MultiPath {
			gws = append(gws, nh.Gw.String())
		}
	}
	slices.Sort(gws)
	return gws
}

// waitNextHops polls the router's kernel table until the next hops of the
// IPv4 VIP are want and those of the IPv6 VIP want6, and returns how long
// each took from start.
func waitNextHops(t *testing.T, h *topo.Host, start time.Time, want, want6 []string, within time.Duration) (took, took6 time.Duration) {
	t.Helper()
	for took == 0 || took6 == 0 {
		got, got6 := nextHops(t, h, bgpVIP), nextHops(t, h, bgpVIP6)
		now := time.Since(start)
		if took == 0 && slices.Equal(got, want) {
			took = now
		}
		if took6 == 0 && slices.Equal(got6, want6) {
			took6 = now
		}
		if now > within {
			t.Fatalf("router: after %v next hops to %s are %v (want %v), to %s %v (want %v)",
				within, bgpVIP, got, want, bgpVIP6, got6, want6)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return took, took6
}

func without(all []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == drop })
}

// TestBGPWithBIRD: three directors' speakers peer with BIRD over eBGP,
// IPv4 and IPv6, with BFD; BIRD installs one ECMP route per VIP with a next
// hop per director; a withdrawal, a killed speaker and a cut cable each
// take exactly that director's next hops away, the cut within BFD's
// detection time.
func TestBGPWithBIRD(t *testing.T) {
	n := topo.New(t)
	router := n.Host("router")
	sw := n.Switch("fabric")
	router.Sysctl("net.ipv4.ip_forward", "1")
	router.Sysctl("net.ipv6.conf.all.forwarding", "1")
	router.Sysctl("net.ipv4.fib_multipath_hash_policy", "1")
	router.Sysctl("net.ipv6.fib_multipath_hash_policy", "1")
	sw.Plug(router, bgpRouterAddr+"/24,"+bgpRouterAddr6+"/64")
	addrs := []string{"10.0.1.2", "10.0.1.3", "10.0.1.4"}
	addrs6 := []string{"fd00:1::2", "fd00:1::3", "fd00:1::4"}
	hosts := make([]*topo.Host, len(addrs))
	ifs := make([]string, len(addrs))
	for i := range addrs {
		hosts[i] = n.Host(fmt.Sprintf("d%d", i+1))
		ifs[i] = sw.Plug(hosts[i], addrs[i]+"/24,"+addrs6[i]+"/64")
	}
	bird := startBIRD(t, router, addrs, addrs6)
	speakers := make([]*bgpSpeaker, len(addrs))
	for i, a := range addrs {
		speakers[i] = startBGPSpeaker(t, hosts[i], a)
	}

	// (a) Every session up, seen from both ends, BFD up on the directors'.
	waitUp := func(i int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			up := true
			var why []string
			for _, s := range []struct{ proto, peer string }{{fmt.Sprintf("d%d", i+1), bgpRouterAddr}, {fmt.Sprintf("d%d6", i+1), bgpRouterAddr6}} {
				info := bird.protocolLine(s.proto)
				st := speakers[i].peerState(s.peer)
				if !strings.HasSuffix(info, " Established") || st != fmt.Sprintf("peer %s established up", s.peer) {
					up = false
				}
				why = append(why, fmt.Sprintf("BIRD %q, speaker %q", info, st))
			}
			if up {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("d%d: not up after %v: %s", i+1, within, strings.Join(why, "; "))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range addrs {
		t.Logf("d%d: both sessions established with BFD up after %v", i+1, waitUp(i, 60*time.Second).Round(time.Millisecond))
	}
	t.Logf("birdc show protocols:\n%s", bird.birdc("show", "protocols"))
	t.Logf("birdc show bfd sessions:\n%s", bird.birdc("show", "bfd", "sessions"))

	// (b) One route per VIP, three next hops each.
	waitNextHops(t, router, time.Now(), addrs, addrs6, 10*time.Second)
	t.Logf("router's kernel: one route to %s via %v, one to %s via %v",
		bgpVIP, nextHops(t, router, bgpVIP), bgpVIP6, nextHops(t, router, bgpVIP6))
	t.Logf("birdc show route for %s all:\n%s", bgpVIP, bird.birdc("show", "route", "for", bgpVIP, "all"))

	// The router exports a route to every session; the sessions stay up
	// with it (the speakers' refusal is proven on the host, where the RIB
	// can be read).
	for i := range addrs {
		for _, proto := range []string{fmt.Sprintf("d%d", i+1), fmt.Sprintf("d%d6", i+1)} {
			if all := bird.birdc("show", "protocols", "all", proto); !strings.Contains(all, "1 exported") {
				t.Errorf("%s: BIRD exported no route to the director:\n%s", proto, all)
			}
		}
	}

	all := [2][]string{addrs, addrs6}
	lose := func(i int) ([]string, []string) { return without(addrs, addrs[i]), without(addrs6, addrs6[i]) }

	// (c1) A withdrawal takes only that director's next hops away.
	start := time.Now()
	speakers[0].each("withdraw")
	w4, w6 := lose(0)
	took, took6 := waitNextHops(t, router, start, w4, w6, 10*time.Second)
	t.Logf("withdrawal on d1 -> next hop gone from the router's table in %v (IPv6 %v)", took.Round(time.Millisecond), took6.Round(time.Millisecond))
	start = time.Now()
	speakers[0].each("announce")
	took, took6 = waitNextHops(t, router, start, all[0], all[1], 10*time.Second)
	t.Logf("announcement on d1 -> next hop back in %v (IPv6 %v)", took.Round(time.Millisecond), took6.Round(time.Millisecond))

	// (c2) A speaker killed -9: the kernel closes its TCP sessions.
	start = time.Now()
	speakers[1].proc.Kill()
	w4, w6 = lose(1)
	took, took6 = waitNextHops(t, router, start, w4, w6, 5*time.Second)
	t.Logf("speaker on d2 killed -9 -> next hop gone in %v (IPv6 %v)", took.Round(time.Millisecond), took6.Round(time.Millisecond))
	speakers[1] = startBGPSpeaker(t, hosts[1], addrs[1])
	waitUp(1, 60*time.Second)
	waitNextHops(t, router, time.Now(), all[0], all[1], 10*time.Second)

	// (c3) A cut cable: nothing closes the sessions, only BFD (100 ms x 3)
	// notices; the hold timer would take bgpHold.
	var cuts []time.Duration
	for round := range bgpBFDRound {
		i := round % len(addrs)
		w4, w6 := lose(i)
		start := time.Now()
		sw.SetCable(hosts[i], ifs[i], false)
		took, took6 := waitNextHops(t, router, start, w4, w6, bgpHold+5*time.Second)
		t.Logf("round %d: d%d cable cut -> next hop gone from the router's table in %v (IPv6 %v); BIRD: %s",
			round+1, i+1, took.Round(time.Millisecond), took6.Round(time.Millisecond), bird.protocolLine(fmt.Sprintf("d%d", i+1)))
		cuts = append(cuts, took, took6)
		if max(took, took6) > bgpBFDBound {
			t.Errorf("round %d: next hops dropped after %v (IPv6 %v), not within BFD's bound %v (hold time %v)",
				round+1, took, took6, bgpBFDBound, bgpHold)
		}
		sw.SetCable(hosts[i], ifs[i], true)
		back := waitUp(i, 60*time.Second)
		waitNextHops(t, router, time.Now(), all[0], all[1], 10*time.Second)
		t.Logf("round %d: d%d cable restored -> sessions and BFD up in %v", round+1, i+1, back.Round(time.Millisecond))
	}
	slices.Sort(cuts)
	t.Logf("BFD cut -> next hop removed, %d rounds x 2 families: min %v, median %v, max %v",
		bgpBFDRound, cuts[0].Round(time.Millisecond), cuts[len(cuts)/2].Round(time.Millisecond), cuts[len(cuts)-1].Round(time.Millisecond))
}
