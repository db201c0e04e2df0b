package realserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// These tests run on the host's own kernel, in network namespaces: the
// helper needs no IPVS. TUN, which needs the ipip module, is proven in the
// lab (e2e TestRealserverForDirectord).

// runEnv makes the test binary act as the realserver command, so that it
// can be run as another user.
const runEnv = "REALSERVER_TEST_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(runEnv) == "1" {
		os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr, OpenNetlink))
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; make test runs as root")
	}
}

// runIn runs the realserver command in h's namespace, as this process.
func runIn(t *testing.T, h *topo.Host, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	if err := h.Do(func() error {
		code = Run(args, &o, &e, OpenNetlink)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return code, o.String(), e.String()
}

// snapshot is what the helper could touch in h: the IPv4 conf sysctls of
// all, default, lo and ifs, and every address and link.
func snapshot(t *testing.T, h *topo.Host, ifs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range append([]string{"all", "default", "lo"}, ifs...) {
		for _, n := range confNames {
			fmt.Fprintf(&b, "%s=%s\n", conf(d, n), h.ReadSysctl("net/ipv4/conf/"+d+"/"+n))
		}
	}
	links, err := h.Netlink().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		// Running is the carrier, which a new veth gains on its own a
		// moment after it is set up.
		fmt.Fprintf(&b, "link %s %s\n", l.Attrs().Name, l.Attrs().Flags&^net.FlagRunning)
	}
	addrs, err := h.Netlink().AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() { // the kernel adds these as links come up
			// Tentative lasts until duplicate address detection ends.
			lines = append(lines, fmt.Sprintf("addr %d %s flags %#x", a.LinkIndex, a.IPNet, a.Flags&^unix.IFA_F_TENTATIVE))
		}
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n"))
	return b.String()
}

// realServer is a namespace with one interface towards a peer and a
// default route through it, and unusual starting values.
func realServer(t *testing.T) (n *topo.Net, rs *topo.Host, rsIf string) {
	needRoot(t)
	n = topo.New(t)
	rs = n.Host("rs")
	rsIf, _ = n.Link(rs, "10.0.0.11/24", n.Host("peer"), "10.0.0.1/24")
	rs.Route("default", "10.0.0.1")
	rs.Sysctl("net.ipv4.conf.all.arp_ignore", "2")
	rs.Sysctl("net/ipv4/conf/"+rsIf+"/arp_announce", "1")
	rs.Sysctl("net.ipv4.conf.all.rp_filter", "1")
	return n, rs, rsIf
}

// TestNetnsUpDownRoundTrip: on a real kernel, up sets what DR needs (the
// IPv6 VIP without duplicate address detection), a second up changes
// nothing, down restores the unusual start and leaves alone what the
// admin changed meanwhile.
func TestNetnsUpDownRoundTrip(t *testing.T) {
	_, rs, rsIf := realServer(t)
	state := filepath.Join(t.TempDir(), "state.json")
	before := snapshot(t, rs, rsIf)
	up := []string{"up", "--mode", "dr", "--vip", "192.0.2.10,2001:db8::10", "--state", state}

	if code, out, errs := runIn(t, rs, up...); code != 0 {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	for key, want := range map[string]string{
		"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
		"net/ipv4/conf/" + rsIf + "/arp_ignore": "1", "net/ipv4/conf/" + rsIf + "/arp_announce": "2",
		"net.ipv4.conf.all.rp_filter": "1", // DR leaves it alone
	} {
		if got := rs.ReadSysctl(key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	lo, _ := rs.Netlink().LinkByName("lo")
	addrs, _ := rs.Netlink().AddrList(lo, netlink.FAMILY_ALL)
	var got []string
	for _, a := range addrs {
		got = append(got, fmt.Sprintf("%s nodad=%t", a.IPNet, a.Flags&unix.IFA_F_NODAD != 0))
	}
	for _, want := range []string{"192.0.2.10/32 nodad=false", "2001:db8::10/128 nodad=true"} {
		if !slices.Contains(got, want) {
			t.Errorf("lo holds %v, want %s", got, want)
		}
	}
	if code, out, _ := runIn(t, rs, "status", "--state", state); code != 0 {
		t.Fatalf("status after up: exit %d\n%s", code, out)
	}
	// What status sees on a real kernel: the VIP also on the LAN side,
	// and the interface's own arp_ignore lowered below all's (the kernel
	// uses the larger, so that alone is no problem) and then all's too.
	rs.Addr(rsIf, "192.0.2.10/32")
	rs.Sysctl("net/ipv4/conf/"+rsIf+"/arp_ignore", "0")
	code, out, _ := runIn(t, rs, "status", "--state", state)
	if want := "problem  VIP 192.0.2.10 is also on " + rsIf + ", which answers ARP for it"; code != 1 || !strings.Contains(out, want) || strings.Count(out, "problem") != 1 {
		t.Fatalf("status with the VIP on %s: exit %d, want 1 and only %q\n%s", rsIf, code, want, out)
	}
	rs.DelAddr(rsIf, "192.0.2.10/32")
	rs.Sysctl("net.ipv4.conf.all.arp_ignore", "0")
	code, out, _ = runIn(t, rs, "status", "--state", state)
	if want := "problem  " + rsIf + " answers ARP for the VIPs: arp_ignore is 0 (all 0, " + rsIf + " 0); it needs 1"; code != 1 || !strings.Contains(out, want) {
		t.Fatalf("status with arp_ignore 0: exit %d, want 1 and %q\n%s", code, want, out)
	}
	rs.Sysctl("net.ipv4.conf.all.arp_ignore", "1")
	rs.Sysctl("net/ipv4/conf/"+rsIf+"/arp_ignore", "1")

	afterUp := snapshot(t, rs, rsIf)
	st1, _ := os.Stat(state)
	if code, out, _ := runIn(t, rs, up...); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second up: exit %d\n%s", code, out)
	}
	if st2, _ := os.Stat(state); snapshot(t, rs, rsIf) != afterUp || !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatal("the second up changed the kernel or the state file")
	}

	// The admin's own changes, between up and down.
	rs.Addr("lo", "198.51.100.7/32")
	rs.Sysctl("net/ipv4/conf/"+rsIf+"/rp_filter", "2")

	if code, out, errs := runIn(t, rs, "down", "--state", state); code != 0 {
		t.Fatalf("down: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("down left the state file: %v", err)
	}
	if rs.ReadSysctl("net/ipv4/conf/"+rsIf+"/rp_filter") != "2" {
		t.Error("down undid the admin's rp_filter")
	}
	rs.DelAddr("lo", "198.51.100.7/32") // the admin's address must still be there to remove
	rs.Sysctl("net/ipv4/conf/"+rsIf+"/rp_filter", "0")
	if got := snapshot(t, rs, rsIf); got != before {
		t.Fatalf("down left\n%s\nwant\n%s", got, before)
	}
	code, out, _ = runIn(t, rs, "status", "--mode", "dr", "--vip", "192.0.2.10,2001:db8::10")
	if code != 1 || strings.Count(out, "problem  ") < 2 {
		t.Fatalf("status after down: exit %d, want 1 with the missing VIPs\n%s", code, out)
	}
}

// TestNetnsNotRoot: run as nobody, up and down say they need root and
// change nothing, not even the state file.
func TestNetnsNotRoot(t *testing.T) {
	_, rs, rsIf := realServer(t)
	dir := t.TempDir()
	// nobody must be able to reach and run the copy of this binary.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "realserver")
	copyFile(t, self, bin)
	state := filepath.Join(dir, "state.json")
	asNobody := func(args ...string) (int, string) {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), runEnv+"=1")
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		p, err := rs.StartCmd(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var ee *exec.ExitError
		if err := p.Wait(); err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}

	before := snapshot(t, rs, rsIf)
	code, out := asNobody("up", "--mode", "dr", "--vip", "192.0.2.10", "--state", state)
	if code != 1 || !strings.Contains(out, "realserver up: permission denied: realserver changes the kernel's network settings and must run as root") {
		t.Fatalf("up as nobody: exit %d\n%s", code, out)
	}
	if snapshot(t, rs, rsIf) != before {
		t.Fatal("up as nobody changed the kernel")
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("up as nobody wrote a state file: %v", err)
	}

	// With a real up behind it, a down as nobody must not half-undo it.
	if code, out, errs := runIn(t, rs, "up", "--mode", "dr", "--vip", "192.0.2.10", "--state", state); code != 0 {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	afterUp := snapshot(t, rs, rsIf)
	saved, _ := os.ReadFile(state)
	if code, out := asNobody("down", "--state", state); code != 1 || !strings.Contains(out, "must run as root") {
		t.Fatalf("down as nobody: exit %d\n%s", code, out)
	}
	if now, _ := os.ReadFile(state); snapshot(t, rs, rsIf) != afterUp || !bytes.Equal(now, saved) {
		t.Fatal("down as nobody changed the kernel or the state")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNetnsTunWithoutIpip: where the kernel has no ipip (the build
// machines' own), tun fails with a clear error and changes nothing.
func TestNetnsTunWithoutIpip(t *testing.T) {
	if _, err := os.Stat("/sys/module/ipip"); err == nil {
		t.Skip("this kernel has ipip; tun is proven in the lab (e2e TestRealserverForDirectord)")
	}
	_, rs, rsIf := realServer(t)
	state := filepath.Join(t.TempDir(), "state.json")
	before := snapshot(t, rs, rsIf)
	code, _, errs := runIn(t, rs, "up", "--mode", "tun", "--vip", "192.0.2.10", "--state", state)
	if code != 1 || !strings.Contains(errs, "tun mode needs tunl0") || !strings.Contains(errs, "is the ipip module available?") {
		t.Fatalf("tun without ipip: exit %d\n%s", code, errs)
	}
	if after := snapshot(t, rs, rsIf); after != before {
		t.Fatalf("a failed up changed the kernel:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed up left a state file: %v", err)
	}
}

// arpAnswers asks, from h's ifName, who has ip, and returns the MAC
// addresses of every answer heard within the window. Proving that a host
// stays silent takes a window: there is no event for an answer not sent.
func arpAnswers(t *testing.T, h *topo.Host, ifName string, ip netip.Addr, window time.Duration) []string {
	t.Helper()
	var macs []string
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetReadDeadline(time.Now().Add(window)); err != nil {
			return err
		}
		for range 3 { // a lost request must not pass for silence
			if err := c.Request(ip); err != nil {
				return err
			}
		}
		for {
			p, _, err := c.Read()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			if err != nil {
				return err
			}
			if p.Operation == arp.OperationReply && p.SenderIP == ip && !slices.Contains(macs, p.SenderHardwareAddr.String()) {
				macs = append(macs, p.SenderHardwareAddr.String())
			}
		}
	})
	if err != nil {
		t.Fatalf("arp from %s: %v", h.Name, err)
	}
	slices.Sort(macs)
	return macs
}

// TestARPOnlyTheDirectorAnswers: on one LAN, a real server holding the
// VIP naively on lo answers ARP for it alongside the director, and would
// steal the VIP's traffic. After realserver up, only the director answers;
// after down, the problem is back, because down restored the settings and
// left the admin's VIP where the admin put it.
func TestARPOnlyTheDirectorAnswers(t *testing.T) {
	needRoot(t)
	n := topo.New(t)
	lan := n.Switch("lan")
	client, dir, rs := n.Host("client"), n.Host("dir"), n.Host("rs")
	clientIf := lan.Plug(client, "10.0.0.1/24")
	dirIf := lan.Plug(dir, "10.0.0.2/24,10.0.0.100/24")
	rsIf := lan.Plug(rs, "10.0.0.11/24")
	rs.Addr("lo", "10.0.0.100/32") // naively, as from an old HOWTO's first half
	vip := netip.MustParseAddr("10.0.0.100")
	director, server := dir.MAC(dirIf).String(), rs.MAC(rsIf).String()
	const window = 500 * time.Millisecond
	state := filepath.Join(t.TempDir(), "state.json")
	// The LAN first: until the new veths carry, every request is lost
	// and silence would prove nothing (seen on a loaded machine).
	lanUp := time.Now().Add(10 * time.Second)
	for len(arpAnswers(t, client, clientIf, netip.MustParseAddr("10.0.0.2"), 100*time.Millisecond)) == 0 {
		if time.Now().After(lanUp) {
			t.Fatal("the director never answered ARP for its own address: the LAN is not up")
		}
	}

	if got, want := arpAnswers(t, client, clientIf, vip, window), sorted(director, server); !slices.Equal(got, want) {
		t.Fatalf("before up, answers for the VIP came from %v, want both the director and the real server %v", got, want)
	}
	if code, out, errs := runIn(t, rs, "up", "--mode", "dr", "--vip", "10.0.0.100", "--state", state); code != 0 {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	if got := arpAnswers(t, client, clientIf, vip, window); !slices.Equal(got, []string{director}) {
		t.Fatalf("after up, answers for the VIP came from %v, want only the director %s (real server %s)", got, director, server)
	}
	if code, out, errs := runIn(t, rs, "down", "--state", state); code != 0 {
		t.Fatalf("down: exit %d\n%s%s", code, out, errs)
	}
	if got, want := arpAnswers(t, client, clientIf, vip, window), sorted(director, server); !slices.Equal(got, want) {
		t.Fatalf("after down, answers came from %v, want both again %v", got, want)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
