//go:build lab

package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// TestIpvsadmHabits (issue 21, item 5): what ipvsadm users type works
// on directorctl and prints what ipvsadm 1.31 prints, byte for byte,
// against the real kernel in the same namespace: the connection list
// (-Lnc, in several TCP states, UDP and persistence templates), the
// timeouts and the sync daemons. And every binary answers -version.
func TestIpvsadmHabits(t *testing.T) {
	// Not parallel, as TestIpvsadmCompatList (the same table).
	n := topo.New(t)
	client, dir := compatTopology(t, n)
	c := ipvsIn(t, dir)
	compatProgram(t, c, compatTable)
	compatTraffic(t, client, c)
	// A connection no real server answers (the DR and tunnel servers of
	// :443 do not exist): SYN_RECV, one more TCP state.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if conn, err := client.Dial(ctx, "tcp", "192.0.2.10:443"); err == nil {
		conn.Close()
	}

	conns := []struct{ ipvsadm, ours []string }{
		{[]string{"-L", "-n", "-c"}, []string{"list", "-c", "-n"}},
		{[]string{"-L", "-n", "-c"}, []string{"list", "-Lnc"}},
		{[]string{"-Lnc"}, []string{"-Lnc"}},
		{[]string{"-L", "-n", "-c"}, []string{"-L", "-n", "-c"}},
		{[]string{"-L", "-n", "-c", "--persistent-conn"}, []string{"list", "-Lnc", "--persistent-conn"}},
		// No DNS and no /etc/services in the guest: names fall back to
		// numbers for both.
		{[]string{"-L", "-c"}, []string{"list", "-c"}},
	}
	for _, v := range conns {
		want, got := habitsSandwich(t, dir, v.ipvsadm, v.ours)
		compatSame(t, "ipvsadm "+strings.Join(v.ipvsadm, " ")+" vs directorctl "+strings.Join(v.ours, " "), got, want)
	}
	// The listing really covers several states and the templates.
	out := compatMustIpvsadm(t, dir, "", "-L", "-n", "-c")
	states := map[string]bool{}
	for _, l := range strings.Split(out, "\n")[2:] {
		if f := strings.Fields(l); len(f) >= 3 {
			states[f[0]+" "+f[2]] = true
		}
	}
	if len(states) < 3 || !strings.Contains(out, "ESTABLISHED") || !strings.Contains(out, ":0 ") {
		t.Errorf("the connection list lacks the states it should cover (%v):\n%s", states, out)
	}
	t.Logf("ipvsadm -L -n -c:\n%s", out)

	// Timeouts: the defaults, then others.
	for _, set := range [][]string{nil, {"--set", "901", "121", "301"}} {
		if set != nil {
			compatMustIpvsadm(t, dir, "", set...)
		}
		want := compatMustIpvsadm(t, dir, "", "-L", "--timeout")
		for _, ours := range [][]string{{"list", "--timeout"}, {"-L", "--timeout"}, {"list", "-L", "--timeout"}} {
			compatSame(t, "directorctl "+strings.Join(ours, " "), must(t, dir, append([]string{"/bin/directorctl"}, ours...)...), want)
		}
	}
	if !strings.Contains(must(t, dir, "/bin/directorctl", "list", "--timeout"), " 901 121 301\n") {
		t.Errorf("--set did not take")
	}

	// Sync daemons: none, a master, then a backup as well. In a
	// namespace of their own: the kernel refuses sync daemons (EINVAL)
	// where a service mixes address families, as compatTable's tunnel
	// service does.
	peer := n.Host("peer")
	syncIf, _ := n.Link(peer, "10.9.0.2/24", dir, "10.9.0.1/24")
	for _, start := range [][]string{
		nil,
		{"--start-daemon", "master", "--mcast-interface", syncIf, "--syncid", "5"},
		{"--start-daemon", "backup", "--mcast-interface", syncIf, "--syncid", "6"},
	} {
		if start != nil {
			compatMustIpvsadm(t, peer, "", start...)
		}
		want := compatMustIpvsadm(t, peer, "", "-L", "--daemon")
		for _, ours := range [][]string{{"list", "--daemon"}, {"-L", "--daemon"}} {
			compatSame(t, "directorctl "+strings.Join(ours, " ")+" after ipvsadm "+strings.Join(start, " "),
				must(t, peer, append([]string{"/bin/directorctl"}, ours...)...), want)
		}
	}
	if out := must(t, peer, "/bin/directorctl", "list", "--daemon"); !strings.Contains(out, "backup sync daemon (mcast="+syncIf+", syncid=6") {
		t.Errorf("the daemons did not start:\n%s", out)
	} else {
		t.Logf("ipvsadm -L --daemon:\n%s", out)
	}

	// -version: what the lab's build put in, git's description in the
	// Debian form the package has too (packaging/version.sh), such as
	// 0.0~git20261205.7729b41; without git it would say 0.0~devel.
	for _, bin := range []string{"directorctl", "directord", "realserver"} {
		out := must(t, dir, "/bin/"+bin, "-version")
		if !regexp.MustCompile(`^`+bin+` [0-9][0-9a-zA-Z.+~-]*\n$`).MatchString(out) || strings.Contains(out, "devel") {
			t.Errorf("%s -version printed %q, want %s and git's version", bin, out, bin)
		}
	}
}

// habitsSandwich runs ipvsadm, directorctl, then ipvsadm again, until
// both ipvsadm runs agree: the expiry column counts down each second,
// so only a listing that stayed still across our run is comparable.
func habitsSandwich(t *testing.T, h *topo.Host, ipvsadmArgs, ours []string) (want, got string) {
	t.Helper()
	for range 20 {
		before := compatMustIpvsadm(t, h, "", ipvsadmArgs...)
		got = must(t, h, append([]string{"/bin/directorctl"}, ours...)...)
		after := compatMustIpvsadm(t, h, "", ipvsadmArgs...)
		if before == after {
			return before, got
		}
	}
	t.Fatalf("ipvsadm %s never printed the same twice around our run", strings.Join(ipvsadmArgs, " "))
	return "", ""
}
