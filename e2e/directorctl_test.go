//go:build lab

package e2e

import (
	"strings"
	"testing"

	"github.com/directorlb/director/lab/topo"
)

// ctlTable is a varied table in ipvsadm's own restore format.
const ctlTable = `-A -t 192.0.2.10:80 -s wlc
-a -t 192.0.2.10:80 -r 10.0.1.11:80 -m -w 3
-a -t 192.0.2.10:80 -r 10.0.2.12:8080 -m -w 1
-A -t 192.0.2.10:443 -s sh -b sh-port,sh-fallback -p 300 -M 255.255.255.0
-a -t 192.0.2.10:443 -r 10.0.1.11:443 -g -w 1
-a -t 192.0.2.10:443 -r 10.0.2.12:443 -g -w 0
-A -u 192.0.2.53:53 -s rr -o
-a -u 192.0.2.53:53 -r 10.0.3.1:53 -i -w 5
-A -f 42 -s mh -b mh-port
-a -f 42 -r 10.0.4.1:0 -g -w 1
-A -t [2001:db8::10]:80 -s lc
-a -t [2001:db8::10]:80 -r [2001:db8:2::11]:80 -m -w 2
-A --sctp-service 192.0.2.20:3868 -s wrr
-a --sctp-service 192.0.2.20:3868 -r 10.0.5.1:3868 -m -w 1
`

// TestDirectorctlMatchesIpvsadm: directorctl reads the kernel directly
// and prints what real ipvsadm prints, byte for byte.
func TestDirectorctlMatchesIpvsadm(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	a := n.Host("a")
	if out, code := run(t, a, ctlTable, "/bin/ipvsadm", "-R"); code != 0 {
		t.Fatalf("ipvsadm -R: %s", out)
	}
	for _, args := range [][]string{
		{"-n"}, {"-n", "--stats"}, {"-n", "--rate"}, {"-n", "--stats", "--exact"},
		{"-n", "--thresholds"}, {"-n", "--persistent-conn"},
	} {
		want := settled(t, a, append([]string{"/bin/ipvsadm", "-L"}, args...)...)
		got := must(t, a, append([]string{"/bin/directorctl", "list"}, args...)...)
		if got != want {
			t.Errorf("directorctl list %s differs from ipvsadm -L %[1]s:\n--- directorctl\n%s--- ipvsadm\n%s", strings.Join(args, " "), got, want)
		}
	}
	if got, want := must(t, a, "/bin/directorctl", "save"), ipvsadmSave(t, a); got != want {
		t.Errorf("directorctl save differs from ipvsadm -S -n:\n--- directorctl\n%s--- ipvsadm\n%s", got, want)
	}
	if out := must(t, a, "/bin/directorctl", "list", "--json"); !strings.Contains(out, `"scheduler"`) || !strings.Contains(out, "2001:db8::10") {
		t.Errorf("list --json:\n%s", out)
	}
}

// TestDirectorctlSaveRestoreRoundTrips: directorctl save fed to real
// ipvsadm -R in a clean namespace rebuilds the same table, and real
// ipvsadm -S fed to directorctl restore does too.
func TestDirectorctlSaveRestoreRoundTrips(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	a, b, c := n.Host("a"), n.Host("b"), n.Host("c")
	if out, code := run(t, a, ctlTable, "/bin/ipvsadm", "-R"); code != 0 {
		t.Fatalf("ipvsadm -R: %s", out)
	}
	orig := ipvsadmSave(t, a)

	saved := must(t, a, "/bin/directorctl", "save")
	if out, code := run(t, b, saved, "/bin/ipvsadm", "-R"); code != 0 {
		t.Fatalf("ipvsadm -R of directorctl save: %s", out)
	}
	if got := ipvsadmSave(t, b); got != orig {
		t.Errorf("ipvsadm -R of directorctl save gave\n%s\nwant\n%s", got, orig)
	}

	if out, code := run(t, c, orig, "/bin/directorctl", "restore"); code != 0 {
		t.Fatalf("directorctl restore: exit %d: %s", code, out)
	}
	if got := ipvsadmSave(t, c); got != orig {
		t.Errorf("directorctl restore of ipvsadm -S gave\n%s\nwant\n%s", got, orig)
	}

	// A bad line is reported with its number, and exit is non-zero.
	out, code := run(t, c, "-A -t 192.0.2.99:80 -s wlc\n-a -t 192.0.2.99:80 -r 10.0.0.1:80 -m -w heavy\n", "/bin/directorctl", "restore")
	if code != 1 || !strings.Contains(out, "line 2") {
		t.Errorf("restore of a bad line: exit %d: %s", code, out)
	}
}
